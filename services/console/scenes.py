"""What the console's frame view draws of point clouds and audio clips, made from their media bytes: no
gRPC here (the routes in :mod:`shoal.console.web` read the media and answer).

- A point cloud is read by :func:`shoal.common.pointclouds.read` (x, y, z, intensity in its sensor's or the
  ego vehicle's frame) and, above ``max_points``, subsampled uniformly at random (with a fixed seed, so
  the same cloud always shows the same points), then sent as little-endian float32, 4 values a point.
- An audio clip is decoded to mono float samples in [-1, 1] (WAV with the standard library's ``wave``;
  FLAC, OGG and WAVs ``wave`` cannot read with ``soundfile``), and summarised for drawing: the waveform as
  the minimum and maximum of each of ``columns`` stretches of samples, and a magnitude spectrogram (short-
  time Fourier transform, Hann window of about 23 ms) in decibels, scaled to bytes over an 80 dB range
  below its peak, with at most ``max_frames`` time frames and ``max_bins`` frequency bins.
"""

from __future__ import annotations

import base64
import io
import wave
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import signal

from shoal.common import pointclouds

#: the most points sent to a browser for one cloud
MAX_POINTS = 200_000
#: the spectrogram's dynamic range: values this far below its peak and lower are drawn black
DYNAMIC_RANGE_DB = 80.0


class AudioError(ValueError):
    """A clip the console cannot decode, with why."""


@dataclass(frozen=True)
class Points:
    #: little-endian float32, ``sent`` x 4 (x, y, z, intensity)
    body: bytes
    total: int
    sent: int


def point_cloud(data: bytes, name: str, *, max_points: int = MAX_POINTS, seed: int = 0) -> Points:
    """The points of a .pcd or .bin cloud (``name`` tells which), at most ``max_points`` of them, as
    little-endian float32 x, y, z, intensity. Raises :class:`shoal.common.pointclouds.PointCloudError`."""
    points = pointclouds.read(data, name)
    total = int(points.shape[0])
    if total > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(total, size=max_points, replace=False))
        points = points[keep]
    body = np.ascontiguousarray(points, dtype="<f4").tobytes()
    return Points(body, total, int(points.shape[0]))


def audio_content_type(data: bytes, name: str) -> str:
    """The MIME type a browser's ``<audio>`` plays these bytes as."""
    head = data[:12]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[:4] == b"fLaC":
        return "audio/flac"
    if head[:4] == b"OggS":
        return "audio/ogg"
    low = name.lower().split("?", 1)[0]
    for ext, kind in ((".wav", "audio/wav"), (".flac", "audio/flac"), (".ogg", "audio/ogg"), (".oga", "audio/ogg")):
        if low.endswith(ext):
            return kind
    return "application/octet-stream"


def decode_audio(data: bytes) -> tuple[np.ndarray, int]:
    """A clip's samples, mixed down to mono float32 in [-1, 1], and its sample rate."""
    if data[:4] == b"RIFF":
        try:
            return _decode_wav(data)
        except (wave.Error, EOFError, ValueError):
            pass  # e.g. a float or extensible WAV: soundfile reads those
    try:
        import soundfile
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise AudioError("FLAC and OGG clips need the soundfile package") from exc
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise AudioError(f"the clip cannot be decoded: {exc}") from exc
    return np.ascontiguousarray(samples.mean(axis=1), dtype=np.float32), int(rate)


def _decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as w:
        channels, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
        raw = w.readframes(n)
    n = len(raw) // (width * channels)
    raw = raw[: n * width * channels]
    if width == 1:  # unsigned 8-bit
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = (np.where(v >= 1 << 23, v - (1 << 24), v)).astype(np.float32) / float(1 << 23)
    elif width == 4:
        x = np.frombuffer(raw, dtype="<i4").astype(np.float32) / float(1 << 31)
    else:
        raise ValueError(f"{width}-byte samples")
    return np.ascontiguousarray(x.reshape(n, channels).mean(axis=1), dtype=np.float32), int(rate)


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


def sound_view(
    samples: np.ndarray, rate: int, *, columns: int = 1600, max_frames: int = 1600, max_bins: int = 256
) -> dict[str, Any]:
    """The waveform and the spectrogram of mono ``samples`` at ``rate`` Hz, for drawing.

    Returns
    -------
    dict
        ``sample_rate``, ``duration_seconds``; ``waveform``: ``columns`` and base64 little-endian float32
        ``min`` and ``max`` of each column's samples; ``spectrogram``: ``frames`` (time, evenly over the
        clip), ``bins`` (frequency, evenly from 0 to ``max_frequency``), ``db_max`` (the peak) and
        ``db_range``, and ``values``: base64 uint8, frame-major (frames x bins), 255 at the peak and 0 at
        ``db_range`` below it or lower.
    """
    x = np.asarray(samples, dtype=np.float32).ravel()
    n = x.size
    if rate <= 0:
        raise AudioError("the clip has no sample rate")
    out: dict[str, Any] = {"sample_rate": rate, "duration_seconds": n / rate}
    cols = max(1, min(columns, n))
    edges = np.linspace(0, n, cols + 1).astype(np.int64)
    if n:
        starts = edges[:-1]
        lo, hi = np.minimum.reduceat(x, starts), np.maximum.reduceat(x, starts)
    else:
        lo = hi = np.zeros(1, dtype=np.float32)
    out["waveform"] = {"columns": int(lo.size), "min": _b64(lo.astype("<f4")), "max": _b64(hi.astype("<f4"))}

    nperseg = int(2 ** max(6, round(np.log2(max(rate, 1) * 0.023))))  # ~23 ms, a power of two
    nperseg = max(8, min(nperseg, n)) if n else 8
    hop = max(1, nperseg // 4, -(-n // max_frames))
    if n >= nperseg:
        _, _, z = signal.stft(x, fs=rate, window="hann", nperseg=nperseg, noverlap=max(0, nperseg - hop),
                              boundary=None, padded=False)  # fmt: skip
        power = np.abs(z).astype(np.float64) ** 2  # (bins, frames)
    else:
        power = np.zeros((nperseg // 2 + 1, 1))
    bins = power.shape[0]
    if bins > max_bins:  # average neighbouring bins down to at most max_bins
        group = -(-bins // max_bins)
        pad = (-bins) % group
        power = np.pad(power, ((0, pad), (0, 0)), mode="edge").reshape(-1, group, power.shape[1]).mean(axis=1)
    db = 10.0 * np.log10(power + 1e-20)
    peak = float(db.max()) if db.size else 0.0
    scaled = np.clip((db - (peak - DYNAMIC_RANGE_DB)) / DYNAMIC_RANGE_DB, 0.0, 1.0)
    values = np.round(scaled * 255).astype(np.uint8).T  # frames x bins
    out["spectrogram"] = {
        "frames": int(values.shape[0]),
        "bins": int(values.shape[1]),
        "max_frequency": rate / 2,
        "db_max": peak,
        "db_range": DYNAMIC_RANGE_DB,
        "values": _b64(values),
    }
    return out


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(out, "PNG", optimize=True)
    return out.getvalue()


#: viridis at five stops, for heights and spectrogram levels
_VIRIDIS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64)


def _viridis(t: np.ndarray) -> np.ndarray:
    x = np.clip(t, 0.0, 1.0) * (len(_VIRIDIS) - 1)
    i = np.minimum(np.floor(x).astype(np.int64), len(_VIRIDIS) - 2)
    f = (x - i)[..., None]
    return np.round(_VIRIDIS[i] + (_VIRIDIS[i + 1] - _VIRIDIS[i]) * f).astype(np.uint8)


def bev_png(data: bytes, name: str, *, size: int = 320, extent: float | None = None) -> bytes:
    """A square PNG of ``size`` pixels of a cloud seen from above, as the frame view draws it: x (forward)
    up, y (left) to the left, centred on the origin, ``extent`` metres from it to each side (by default
    the 98th percentile of the points' distance in the ground plane), each pixel coloured by the height
    of its highest point."""
    pts = pointclouds.read(data, name)
    img = np.full((size, size, 3), 17, dtype=np.uint8)
    if not pts.shape[0]:
        return _png(img)
    x, y, z = pts[:, 0].astype(np.float64), pts[:, 1].astype(np.float64), pts[:, 2].astype(np.float64)
    if extent is None:
        extent = max(1.0, float(np.percentile(np.hypot(x, y), 98)))
    scale = size / (2 * extent)
    col = np.floor(size / 2 - y * scale).astype(np.int64)
    row = np.floor(size / 2 - x * scale).astype(np.int64)
    inside = (col >= 0) & (col < size) & (row >= 0) & (row < size)
    col, row, z = col[inside], row[inside], z[inside]
    lo, hi = np.percentile(z, [2, 98]) if z.size else (0.0, 1.0)
    order = np.argsort(z)  # the highest point of a pixel is written last
    img[row[order], col[order]] = _viridis((z[order] - lo) / max(hi - lo, 1e-6))
    return _png(img)


def spectrogram_png(data: bytes, *, size: int = 320) -> bytes:
    """A PNG of an audio clip's spectrogram, ``size`` pixels wide and half as high: time to the right,
    frequency up, levels in viridis."""
    samples, rate = decode_audio(data)
    view = sound_view(samples, rate, columns=size, max_frames=size, max_bins=size // 2)
    spec = view["spectrogram"]
    values = np.frombuffer(base64.b64decode(spec["values"]), dtype=np.uint8).reshape(spec["frames"], spec["bins"])
    from PIL import Image

    rgb = _viridis(values.T[::-1] / 255.0)  # bins x frames, the highest frequency on top
    img = Image.fromarray(rgb, "RGB").resize((size, size // 2), Image.Resampling.BILINEAR)
    return _png(np.asarray(img))
