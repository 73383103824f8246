"""Point clouds as lidar datasets ship them, read into one float32 array of x, y, z, intensity a point,
and the points inside cuboids counted.

Two formats are read:

- **PCD** (the Point Cloud Library's format, versions 0.5-0.7): a text header naming the fields,
  their sizes, types and counts, then the points as ``ascii``, ``binary`` (one packed record a
  point) or ``binary_compressed`` (LZF-compressed, each field's values stored together).
- **Raw float32 ``.bin``**: a flat array of records, 4 values a point (x, y, z, intensity: KITTI) or
  5 (x, y, z, intensity, ring index: nuScenes, whose files are named ``*.pcd.bin``).

Points whose x, y or z is not finite (an organised cloud's missing returns) are dropped. A field
``intensity`` (or ``i``) gives the intensity column, 0 without one.

Counting the points inside cuboids takes cuboids as rows of :data:`shoal.common.cuboids.COLUMNS`
(x, y, z, w, l, h, yaw) in the points' coordinate frame; a point on a face counts as inside, as
nuScenes' ``points_in_box`` counts it.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["PointCloudError", "points_in_cuboids", "read", "read_bin", "read_pcd"]

#: the biggest cloud read: 50M points (800 MB as float32 x, y, z, intensity)
MAX_POINTS = 50_000_000
_PCD_TYPES = {("F", 4): np.float32, ("F", 8): np.float64, ("I", 1): np.int8, ("I", 2): np.int16,
              ("I", 4): np.int32, ("I", 8): np.int64, ("U", 1): np.uint8, ("U", 2): np.uint16,
              ("U", 4): np.uint32, ("U", 8): np.uint64}  # fmt: skip
_HEADER_KEYS = ("VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS", "DATA")


class PointCloudError(ValueError):
    """A point cloud that cannot be read, with what is wrong in it."""


def read(data: bytes, name: str, *, columns: int | None = None) -> np.ndarray:
    """The points of a ``.pcd`` or raw float32 ``.bin`` file (told apart by ``name``'s extension,
    else by a PCD header at the start) as an (N, 4) float32 array of x, y, z, intensity.
    ``columns`` says how many float32 values a ``.bin`` record has (default: 5 for ``*.pcd.bin``,
    else 4)."""
    low = name.lower().split("?", 1)[0]
    if low.endswith(".bin"):
        return read_bin(data, columns=columns or (5 if low.endswith(".pcd.bin") else 4))
    if low.endswith(".pcd") or data[:64].lstrip().startswith((b"#", b"VERSION", b"FIELDS")):
        return read_pcd(data)
    raise PointCloudError(f"{name!r} is neither a .pcd nor a raw float32 .bin point cloud")


def read_bin(data: bytes, *, columns: int = 4) -> np.ndarray:
    """A raw float32 cloud of ``columns`` values a point (the first four x, y, z, intensity)."""
    if columns < 3:
        raise PointCloudError(f"a .bin record has at least x, y, z: {columns} columns is too few")
    record = 4 * columns
    if len(data) % record:
        raise PointCloudError(
            f"{len(data)} bytes is not a whole number of {columns}-float32 records ({record} bytes each)"
        )
    n = len(data) // record
    _check_size(n)
    arr = np.frombuffer(data, dtype="<f4").reshape(n, columns)
    out = np.zeros((n, 4), dtype=np.float32)
    out[:, : min(columns, 4)] = arr[:, :4]
    return _finite(out)


def _check_size(n: int) -> None:
    if n > MAX_POINTS:
        raise PointCloudError(f"{n:,} points is more than the {MAX_POINTS:,} read at once")


def _finite(points: np.ndarray) -> np.ndarray:
    keep = np.isfinite(points[:, :3]).all(axis=1)
    return points if keep.all() else np.ascontiguousarray(points[keep])


def _header(data: bytes) -> tuple[dict[str, list[str]], int]:
    """The PCD header's entries and where the points start."""
    entries: dict[str, list[str]] = {}
    pos = 0
    while "DATA" not in entries:
        end = data.find(b"\n", pos)
        if end < 0:
            raise PointCloudError("the PCD header has no DATA line")
        line = data[pos:end].decode("ascii", errors="replace").strip()
        pos = end + 1
        if not line or line.startswith("#"):
            continue
        key, *values = line.split()
        if key.upper() in _HEADER_KEYS:
            entries[key.upper()] = values
        if pos > 65_536:
            raise PointCloudError("the PCD header is longer than 64 KiB")
    return entries, pos


def read_pcd(data: bytes) -> np.ndarray:
    """A PCD cloud (``ascii``, ``binary`` or ``binary_compressed``)."""
    h, start = _header(data)
    fields = h.get("FIELDS", [])
    if not {"x", "y", "z"} <= set(fields):
        raise PointCloudError(f"a PCD cloud has fields x, y and z; this one has {' '.join(fields) or 'none'}")
    n_fields = len(fields)
    sizes = [int(s) for s in h.get("SIZE", ["4"] * n_fields)]
    types = [t.upper() for t in h.get("TYPE", ["F"] * n_fields)]
    counts = [int(c) for c in h.get("COUNT", ["1"] * n_fields)]
    if not len(sizes) == len(types) == len(counts) == n_fields:
        raise PointCloudError("the PCD header's FIELDS, SIZE, TYPE and COUNT differ in length")
    for f, t, s in zip(fields, types, sizes, strict=True):
        if (t, s) not in _PCD_TYPES:
            raise PointCloudError(f"field {f!r} has type {t} of size {s}, which PCD does not define")
    width = int(h.get("WIDTH", ["0"])[0])
    height = int(h.get("HEIGHT", ["1"])[0])
    n = int(h.get("POINTS", [str(width * height)])[0])
    _check_size(n)
    kind = h["DATA"][0].lower() if h["DATA"] else ""
    dtype = np.dtype([(f"{f}_{k}" if c > 1 else f, _PCD_TYPES[(t, s)], (c,) if c > 1 else ())
                      for k, (f, t, s, c) in enumerate(zip(fields, types, sizes, counts, strict=True))])  # fmt: skip
    dtype = dtype.newbyteorder("<")
    body = data[start:]
    if kind == "ascii":
        text = np.loadtxt(body.decode("ascii", errors="replace").splitlines(), dtype=np.float64, ndmin=2)
        if text.shape[0] < n:
            raise PointCloudError(f"the PCD header says {n} points; the data holds {text.shape[0]}")
        values = {f: text[:n, i] for i, f in enumerate(_columns(fields, counts))}
    elif kind == "binary":
        if len(body) < n * dtype.itemsize:
            raise PointCloudError(f"the PCD header says {n} points of {dtype.itemsize} bytes; the data is shorter")
        rec = np.frombuffer(body, dtype=dtype, count=n)
        values = {f: rec[f] for f in fields if f in rec.dtype.names}
    elif kind == "binary_compressed":
        values = _compressed(body, fields, types, sizes, counts, n)
    else:
        raise PointCloudError(f"PCD data {kind!r}: ascii, binary or binary_compressed are read")
    intensity = values.get("intensity", values.get("i"))
    out = np.zeros((n, 4), dtype=np.float32)
    for j, f in enumerate(("x", "y", "z")):
        out[:, j] = values[f]
    if intensity is not None:
        out[:, 3] = np.asarray(intensity).reshape(n, -1)[:, 0]
    return _finite(out)


def _columns(fields: list[str], counts: list[int]) -> list[str]:
    """The name of each text column: a field of count c takes c columns, only the first named."""
    out: list[str] = []
    for f, c in zip(fields, counts, strict=True):
        out.extend([f] + [f"{f}#{k}" for k in range(1, c)])
    return out


def _compressed(body: bytes, fields: list[str], types: list[str], sizes: list[int], counts: list[int],
                n: int) -> dict[str, np.ndarray]:  # fmt: skip
    if len(body) < 8:
        raise PointCloudError("a binary_compressed PCD body starts with its two sizes")
    packed, unpacked = (int(v) for v in np.frombuffer(body[:8], dtype="<u4"))
    expected = n * sum(s * c for s, c in zip(sizes, counts, strict=True))
    if unpacked != expected:
        raise PointCloudError(f"the PCD data unpacks to {unpacked} bytes; {n} points of these fields are {expected}")
    if len(body) < 8 + packed:
        raise PointCloudError(f"the PCD data is {len(body) - 8} bytes of the {packed} compressed bytes it says")
    out = np.zeros(unpacked, dtype=np.uint8)
    got = _lzf(np.frombuffer(body, dtype=np.uint8, count=packed, offset=8), out)
    if got != unpacked:
        raise PointCloudError(f"the PCD data's LZF stream is corrupt (unpacked {got} of {unpacked} bytes)")
    values: dict[str, np.ndarray] = {}
    pos = 0
    for f, t, s, c in zip(fields, types, sizes, counts, strict=True):  # each field's values together
        size = n * s * c
        values[f] = out[pos : pos + size].view(np.dtype(_PCD_TYPES[(t, s)]).newbyteorder("<")).reshape(n, c)[:, 0]
        pos += size
    return values


@numba.njit(cache=True, nogil=True)
def _lzf(src: np.ndarray, dst: np.ndarray) -> int:
    """LZF-decompresses ``src`` into ``dst``; the bytes written, or -1 for a corrupt stream."""
    ip, op, n_in, n_out = 0, 0, src.shape[0], dst.shape[0]
    while ip < n_in:
        ctrl = int(src[ip])
        ip += 1
        if ctrl < 32:  # a literal run of ctrl + 1 bytes
            length = ctrl + 1
            if op + length > n_out or ip + length > n_in:
                return -1
            dst[op : op + length] = src[ip : ip + length]
            ip += length
            op += length
        else:  # a back reference
            length = ctrl >> 5
            if length == 7:
                if ip >= n_in:
                    return -1
                length += int(src[ip])
                ip += 1
            if ip >= n_in:
                return -1
            ref = op - ((ctrl & 0x1F) << 8) - 1 - int(src[ip])
            ip += 1
            length += 2
            if ref < 0 or op + length > n_out:
                return -1
            for _ in range(length):  # may overlap what it writes
                dst[op] = dst[ref]
                op += 1
                ref += 1
    return op


@numba.njit(cache=True, nogil=True)
def _count(points: np.ndarray, boxes: np.ndarray, out: np.ndarray) -> None:
    for k in range(boxes.shape[0]):
        cx, cy, cz = boxes[k, 0], boxes[k, 1], boxes[k, 2]
        hw, hl, hh = boxes[k, 3] / 2, boxes[k, 4] / 2, boxes[k, 5] / 2
        c, s = np.cos(boxes[k, 6]), np.sin(boxes[k, 6])
        reach = np.sqrt(hw * hw + hl * hl)
        n = 0
        for i in range(points.shape[0]):
            dx, dy, dz = points[i, 0] - cx, points[i, 1] - cy, points[i, 2] - cz
            if abs(dx) > reach or abs(dy) > reach or abs(dz) > hh:
                continue
            along = dx * c + dy * s
            across = -dx * s + dy * c
            if abs(along) <= hl and abs(across) <= hw:
                n += 1
        out[k] = n


def points_in_cuboids(points: np.ndarray, cuboids: np.ndarray) -> np.ndarray:
    """How many of ``points`` ((N, >=3): x, y, z first) lie inside each of ``cuboids`` ((K, 7): x, y,
    z, w, l, h, yaw, in the points' frame), faces included."""
    pts = np.ascontiguousarray(np.asarray(points, dtype=np.float64)[:, :3])
    boxes = np.ascontiguousarray(np.asarray(cuboids, dtype=np.float64).reshape(-1, 7))
    out = np.zeros(boxes.shape[0], dtype=np.int64)
    if boxes.shape[0] and pts.shape[0]:
        _count(pts, boxes, out)
    return out
