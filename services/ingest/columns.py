"""The columnar block of an upload chunk (``UploadChunk.columns``): checked with numpy, written
to ClickHouse as Arrow tables, and cut into rows for the dead-letter topic.

A block carries frames, their class labels and their class probabilities as one array per
column. The rules are those of the per-item lists (see :mod:`shoal.ingest.validate`), applied
to whole columns at once; only the rows that fail are looked at one by one, to name what is
wrong.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from shoal.common.errors import Datapoint, InvalidArgument, ShoalError, shown
from shoal.common.timeutil import END_TIME_S, MIN_TIME_S, TIME_RANGE, time_problem
from shoal.ingest.v1 import ingest_pb2 as pb

if TYPE_CHECKING:
    from shoal.ingest.validate import Context, Rejection

WHERE = "chunk.columns"
NO_TIME = np.iinfo(np.int64).min
NO_BOOL = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_FRAME_COLUMNS = ("splits", "media_uris", "widths_i32", "heights_i32", "metadata", "capture_times_ms_i64")
#: longest id or name of a chunk (frame, object and split ids, provenance source and author)
MAX_ID = 256
#: longest free text of a chunk (URIs, metadata and attribute strings, provenance reason)
MAX_TEXT = 4096
PROBABILITY_TOLERANCE = 1e-3

MIN_TIME_MS = MIN_TIME_S * 1000
MAX_TIME_MS = END_TIME_S * 1000 - 1

#: the type of a metadata value, by Value oneof case and by MetadataColumn oneof case
VALUE_TYPES = {"string_value": "string", "number_value": "number", "bool_value": "bool", "timestamp_value": "timestamp"}
COLUMN_TYPES = {"strings": "string", "numbers_f64": "number", "bools_u8": "bool", "timestamps_ms_i64": "timestamp"}


def ms_out_of_range(values: np.ndarray) -> np.ndarray:
    """Per value of an int64 milliseconds column: set (not :data:`NO_TIME`) and outside the store's range."""
    return (values != NO_TIME) & ((values < MIN_TIME_MS) | (values > MAX_TIME_MS))


class KeyTypes:
    """The type of each metadata key of a dataset ("string", "number", "bool" or "timestamp"):
    the types stored before, and those a chunk gives keys it writes first. A key keeps the type it
    was first written with."""

    def __init__(self, stored: Mapping[str, str] | None = None) -> None:
        self.stored = stored or {}
        #: keys this chunk writes first, with their types
        self.new: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.stored.get(key) or self.new.get(key)

    def learn(self, key: str, kind: str) -> None:
        if self.get(key) is None:
            self.new[key] = kind

    def conflict(self, key: str, kind: str, dataset: str, where: str) -> InvalidArgument | None:
        """The error for a value of ``kind`` under ``key`` when the key holds another type."""
        known = self.get(key)
        if known is None or known == kind:
            return None
        return InvalidArgument(
            f"metadata key {shown(key)} holds {known} values in dataset {shown(dataset)}; this value is a {kind}. "
            f"A key keeps the type it was first written with: send a {known}, or use another key",
            field=where,
        )


@dataclass
class MetaColumn:
    key: str
    kind: str  # "strings", "numbers_f64", "bools_u8", "timestamps_ms_i64"
    values: list[str] | np.ndarray


@dataclass
class CheckedColumns:
    """A checked block: the columns as arrays and, per row, which of its parts are written."""

    frame_ids: list[str]
    frames_stored: bool
    #: per row: the frame is written (always False when frames_stored)
    frame_ok: np.ndarray
    #: per row: a label is written
    label_ok: np.ndarray
    #: per row: an inference is written
    inference_ok: np.ndarray
    splits: list[str] | None = None
    media_uris: list[str] | None = None
    media_type: str = ""
    widths: np.ndarray | None = None
    heights: np.ndarray | None = None
    metadata: list[MetaColumn] = field(default_factory=list)
    capture_ms: np.ndarray | None = None
    class_ids: np.ndarray | None = None
    provenance: pb.Provenance | None = None
    probabilities: np.ndarray | None = None
    #: class id of each position of a probability row (the ontology's order)
    ontology: np.ndarray | None = None

    def counts(self) -> tuple[int, int, int]:
        return int(self.frame_ok.sum()), int(self.label_ok.sum()), int(self.inference_ok.sum())

    def sizes(self) -> Iterable[tuple[str, tuple[int, int]]]:
        """(frame id, (width, height)) of the frames written."""
        n = len(self.frame_ids)
        rows = np.flatnonzero(self.frame_ok)
        ids = self.frame_ids if len(rows) == n else [self.frame_ids[r] for r in rows.tolist()]
        w = self.widths[rows].tolist() if self.widths is not None else [0] * len(rows)
        h = self.heights[rows].tolist() if self.heights is not None else [0] * len(rows)
        return zip(ids, zip(w, h, strict=True), strict=True)


def column_sizes(cols: pb.FrameColumns) -> dict[str, int]:
    """Items per kind the block carries (for the chunk size limit and for rejected counts)."""
    n = len(cols.frame_ids)
    labels = 0
    if cols.label_class_ids_i32:
        ids = np.frombuffer(cols.label_class_ids_i32, dtype="<i4") if len(cols.label_class_ids_i32) % 4 == 0 else None
        labels = int((ids != -1).sum()) if ids is not None else n
    return {
        "frames": 0 if cols.frames_stored else n,
        "labels": labels,
        "inferences": n if cols.probabilities_f32 else 0,
    }


def column_frame_ids(cols: pb.FrameColumns) -> tuple[list[str], list[str]]:
    """(frame ids the block brings, frame ids it refers to as stored before)."""
    ids = list(cols.frame_ids)
    return ([], ids) if cols.frames_stored else (ids, [])


class _Rejector:
    """Collects the rejections of a block: one per (row, part) that fails."""

    def __init__(self, ids: Sequence[str], dataset: str, out: list[Rejection], make: Callable[..., Rejection]):
        self.ids = ids
        self.dataset = dataset
        self.out = out
        self.make = make

    def reject(self, rows: Iterable[int], parts: Sequence[str], error: Callable[[int], ShoalError]) -> None:
        for r in rows:
            err = error(r)
            if err.datapoint is None:
                err.datapoint = Datapoint(self.dataset, self.ids[r] if r < len(self.ids) else "", "")
            for kind in parts:
                self.out.append(self.make(kind, r, 0, err, columns=True))


def probability_rows_ok(p: np.ndarray, *, summing: bool = True) -> np.ndarray:
    """Per row of a (rows, classes) float64 matrix: finite, each in [0, 1], and (``summing``: one
    class per frame) summing to 1 within :data:`PROBABILITY_TOLERANCE`."""
    finite = np.isfinite(p).all(axis=1)
    in_range = ((p >= 0) & (p <= 1)).all(axis=1)
    if not summing:  # multi-label: a score per class, on its own
        return finite & in_range
    total = np.where(finite, p.sum(axis=1), np.nan)
    return finite & in_range & (np.abs(total - 1.0) <= PROBABILITY_TOLERANCE)


def probability_problem(p: np.ndarray, where: str, *, summing: bool = True) -> InvalidArgument | None:
    """What is wrong with one row of probabilities (checked in the order users read them)."""
    if not np.isfinite(p).all():
        return InvalidArgument("probabilities must be finite", field=where)
    if (p < 0).any() or (p > 1).any():
        return InvalidArgument("probabilities must lie in [0, 1]", field=where)
    if not summing:
        return None
    total = float(p.sum())
    if abs(total - 1.0) > PROBABILITY_TOLERANCE:
        return InvalidArgument(
            f"probabilities sum to {total:.6f}, not 1 (tolerance {PROBABILITY_TOLERANCE})", field=where
        )
    return None


def _bytes_column(data: bytes, dtype: str, n: int, name: str) -> np.ndarray:
    width = np.dtype(dtype).itemsize
    if len(data) != n * width:
        raise InvalidArgument(
            f"has {len(data)} bytes; {n} rows need {n * width} ({np.dtype(dtype).name}, little-endian)",
            field=f"{WHERE}.{name}",
        )
    return np.frombuffer(data, dtype=dtype)


def _ids_ok(ids: Sequence[str]) -> np.ndarray:
    """Per id: 1 to 256 characters without control characters."""
    n = len(ids)
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=n)
    ok = (lengths >= 1) & (lengths <= MAX_ID)
    if _CONTROL.search("".join(ids)):
        ok &= np.fromiter((_CONTROL.search(s) is None for s in ids), dtype=bool, count=n)
    return ok


def _parse_structure(cols: pb.FrameColumns, ctx: Context, inference_set: bool) -> CheckedColumns:
    """The block's columns as arrays; raises for a problem of the whole block."""
    ids = list(cols.frame_ids)
    n = len(ids)
    if cols.frames_stored:
        for name in _FRAME_COLUMNS:
            if len(getattr(cols, name)):
                raise InvalidArgument(
                    f"frames_stored blocks carry no frame columns; {name} is set", field=f"{WHERE}.{name}"
                )
    out = CheckedColumns(
        frame_ids=ids,
        frames_stored=cols.frames_stored,
        frame_ok=np.zeros(n, dtype=bool),
        label_ok=np.zeros(n, dtype=bool),
        inference_ok=np.zeros(n, dtype=bool),
    )
    for name in ("splits", "media_uris"):
        values = getattr(cols, name)
        if values:
            if len(values) != n:
                raise InvalidArgument(f"has {len(values)} entries for {n} frame ids", field=f"{WHERE}.{name}")
            setattr(out, name, list(values))
    if cols.media_type:
        out.media_type = pb.MediaType.Name(cols.media_type).removeprefix("MEDIA_TYPE_")
    if cols.widths_i32 or cols.heights_i32:
        out.widths = _bytes_column(cols.widths_i32, "<i4", n, "widths_i32")
        out.heights = _bytes_column(cols.heights_i32, "<i4", n, "heights_i32")
    if cols.capture_times_ms_i64:
        out.capture_ms = _bytes_column(cols.capture_times_ms_i64, "<i8", n, "capture_times_ms_i64")
    keys: set[str] = set()
    for j, mc in enumerate(cols.metadata):
        where = f"{WHERE}.metadata[{j}]"
        if not _KEY_RE.match(mc.key):
            raise InvalidArgument(f"key {shown(mc.key)} must match {_KEY_RE.pattern}", field=f"{where}.key")
        if mc.key in keys:
            raise InvalidArgument(f"key {shown(mc.key)} appears twice", field=f"{where}.key")
        keys.add(mc.key)
        kind = mc.WhichOneof("values")
        if kind is None:
            raise InvalidArgument("no values", field=f"{where}.values")
        if kind == "strings":
            if len(mc.strings.values) != n:
                raise InvalidArgument(
                    f"has {len(mc.strings.values)} entries for {n} frame ids", field=f"{where}.strings"
                )
            values: list[str] | np.ndarray = list(mc.strings.values)
        else:
            dtype = {"numbers_f64": "<f8", "bools_u8": "u1", "timestamps_ms_i64": "<i8"}[kind]
            values = _bytes_column(getattr(mc, kind), dtype, n, f"metadata[{j}].{kind}")
        out.metadata.append(MetaColumn(mc.key, kind, values))
    if len(cols.metadata) > 64:
        raise InvalidArgument(f"{len(cols.metadata)} keys is more than 64", field=f"{WHERE}.metadata")
    if cols.label_class_ids_i32:
        if ctx.project.task_type != "CLASSIFICATION":
            raise InvalidArgument(
                f"class labels in columns are for classification projects; project {ctx.project.name!r} is "
                f"{ctx.project.task_type}: send its labels in chunk.labels",
                field=f"{WHERE}.label_class_ids_i32",
            )
        out.class_ids = _bytes_column(cols.label_class_ids_i32, "<i4", n, "label_class_ids_i32")
        out.provenance = cols.label_provenance
    if cols.probabilities_f32:
        if not inference_set:
            raise InvalidArgument("probabilities need chunk.inference_set", field="chunk.inference_set")
        if ctx.project.task_type == "SEGMENTATION":
            raise InvalidArgument(
                f"project {ctx.project.name!r} is SEGMENTATION: it predicts pixels, in chunk.inferences"
                " (segmentation, probabilities_uri), not a frame's class probabilities",
                field=f"{WHERE}.probabilities_f32",
            )
        k = len(ctx.project.classes)
        if k == 0 or len(cols.probabilities_f32) != n * k * 4:
            got = len(cols.probabilities_f32) / 4 / max(n, 1)
            raise InvalidArgument(
                f"{n} rows need {n} x {k} float32 probabilities (one per class), got {got:g} per row",
                field=f"{WHERE}.probabilities_f32",
            )
        out.probabilities = np.frombuffer(cols.probabilities_f32, dtype="<f4").reshape(n, k)
        out.ontology = np.array([c.id for c in ctx.project.classes], dtype=np.int32)
    return out


def check_columns(
    cols: pb.FrameColumns,
    ctx: Context,
    *,
    taken: set[str],
    dims: MutableMapping[str, tuple[int, int]],
    record_sizes: bool,
    rejections: list[Rejection],
    make_rejection: Callable[..., Rejection],
    inference_set: bool,
    key_types: KeyTypes | None = None,
) -> CheckedColumns | None:
    """Checks a block; appends a rejection per failing (row, part) and returns what is written.

    ``taken`` holds the frame ids the chunk's frame list already brings; ``dims`` holds the sizes
    of the frames stored before and, with ``record_sizes`` (other items of the chunk refer to
    frames), receives those of the block's frames. ``key_types`` holds the types of the dataset's
    metadata keys and learns those of the keys the block writes first.
    """
    key_types = key_types if key_types is not None else KeyTypes()
    n = len(cols.frame_ids)
    ids = list(cols.frame_ids)
    ds = ctx.dataset.name
    rej = _Rejector(ids, ds, rejections, make_rejection)
    parts_all = [
        *([] if cols.frames_stored else ["frame"]),
        *(["labels"] if cols.label_class_ids_i32 else []),
        *(["inference"] if cols.probabilities_f32 else []),
    ]
    try:
        out = _parse_structure(cols, ctx, inference_set)
    except InvalidArgument as err:
        whole = err
    else:
        whole = None
    if whole is not None:
        rej.reject(range(max(n, 1)), parts_all or ["frame"], lambda _r: _copy(whole))
        return None
    if n == 0:
        return out

    # -- ids -------------------------------------------------------------------------------
    id_ok = _ids_ok(ids)
    bad = np.flatnonzero(~id_ok)
    rej.reject(
        bad.tolist(),
        parts_all,
        lambda r: InvalidArgument(
            f"frame id must be 1 to {MAX_ID} characters without control characters",
            field=f"{WHERE}.frame_ids[{r}]",
        ),
    )
    row_ok = id_ok.copy()
    if len(set(ids)) != n or taken:
        counts = Counter(ids)
        dup = [r for r in np.flatnonzero(row_ok).tolist() if counts[ids[r]] > 1 or ids[r] in taken]
        rej.reject(
            dup,
            parts_all,
            lambda r: InvalidArgument(
                f"frame id {ids[r]!r} appears {counts[ids[r]]} times in the block"
                if counts[ids[r]] > 1
                else f"frame id {ids[r]!r} is also in chunk.frames",
                field=f"{WHERE}.frame_ids[{r}]",
            ),
        )
        row_ok[dup] = False

    # -- frames ----------------------------------------------------------------------------
    if cols.frames_stored:
        known = np.fromiter((fid in dims for fid in ids), dtype=bool, count=n)
        missing = np.flatnonzero(row_ok & ~known)
        rej.reject(
            missing.tolist(),
            parts_all,
            lambda r: InvalidArgument(
                f"frame {ids[r]!r} is not stored; upload the frame first (or clear frames_stored)",
                field=f"{WHERE}.frame_ids[{r}]",
            ),
        )
        row_ok &= known
    else:
        problems = _frame_problems(out, ctx, n, key_types)
        for r, err in sorted(problems.items()):
            if row_ok[r]:
                rej.reject([r], parts_all, lambda _r, e=err: e)  # type: ignore[misc]
                row_ok[r] = False
        out.frame_ok = row_ok.copy()
        for mc in out.metadata:
            if key_types.get(mc.key) is None and (_present(mc) & row_ok).any():
                key_types.learn(mc.key, COLUMN_TYPES[mc.kind])
        if record_sizes:
            dims.update(out.sizes())

    # -- labels ----------------------------------------------------------------------------
    if out.class_ids is not None:
        has = out.class_ids != -1
        known_class = np.isin(out.class_ids, np.array([c.id for c in ctx.project.classes], dtype=np.int64))
        bad = np.flatnonzero(row_ok & has & ~known_class)
        rej.reject(
            bad.tolist(),
            ["labels"],
            lambda r: InvalidArgument(
                f"unknown class id {int(out.class_ids[r])}",  # type: ignore[index]
                field=f"{WHERE}.label_class_ids_i32[{r}]",
            ),
        )
        out.label_ok = row_ok & has & known_class
        problem = provenance_problem(cols.label_provenance, f"{WHERE}.label_provenance")
        if problem is not None:
            rej.reject(np.flatnonzero(out.label_ok).tolist(), ["labels"], lambda _r: _copy(problem))
            out.label_ok[:] = False

    # -- probabilities ---------------------------------------------------------------------
    if out.probabilities is not None:
        p = out.probabilities.astype(np.float64)
        summing = ctx.project.task_type != "MULTI_LABEL"
        good = probability_rows_ok(p, summing=summing)
        bad = np.flatnonzero(row_ok & ~good)

        def prob_error(r: int) -> ShoalError:
            problem = probability_problem(p[r], f"{WHERE}.probabilities_f32[{r}]", summing=summing)
            assert problem is not None  # the row failed probability_rows_ok
            return problem

        rej.reject(bad.tolist(), ["inference"], prob_error)
        out.inference_ok = row_ok & good
    return out


def _copy(err: InvalidArgument) -> InvalidArgument:
    return InvalidArgument(err.message, field=err.field)


def provenance_problem(prov: pb.Provenance, where: str) -> InvalidArgument | None:
    """What is wrong with a label's provenance: lengths, and a time the store holds."""
    for name, limit in (("source", MAX_ID), ("author", MAX_ID), ("reason", MAX_TEXT)):
        if len(getattr(prov, name)) > limit:
            return InvalidArgument(f"is longer than {limit} characters", field=f"{where}.{name}")
    if prov.HasField("time"):
        return time_problem(prov.time.seconds, prov.time.nanos, f"{where}.time")
    return None


def _present(mc: MetaColumn) -> np.ndarray:
    """Per row: the column holds a value for that row."""
    if mc.kind == "strings":
        return np.ones(len(mc.values), dtype=bool)
    v = np.asarray(mc.values)
    if mc.kind == "numbers_f64":
        return ~np.isnan(v)
    if mc.kind == "bools_u8":
        return v != NO_BOOL
    return v != NO_TIME


def _frame_problems(out: CheckedColumns, ctx: Context, n: int, key_types: KeyTypes) -> dict[int, ShoalError]:
    """The first problem of each bad frame row."""
    problems: dict[int, ShoalError] = {}

    def add(rows: Iterable[int], make: Callable[[int], ShoalError]) -> None:
        for r in rows:
            problems.setdefault(int(r), make(int(r)))

    if out.splits is not None:
        allowed = set(ctx.dataset.splits) | {""}
        if not set(out.splits) <= allowed:
            declared = ", ".join(ctx.dataset.splits) or "none declared"
            add(
                (r for r, s in enumerate(out.splits) if s not in allowed),
                lambda r: InvalidArgument(
                    f"split {shown(out.splits[r])} is not one of dataset {ctx.dataset.name!r}'s splits ({declared})",  # type: ignore[index]
                    field=f"{WHERE}.splits[{r}]",
                ),
            )
    if out.widths is not None and out.heights is not None:
        w, h = out.widths, out.heights
        add(
            np.flatnonzero((w < 0) | (h < 0)).tolist(),
            lambda r: InvalidArgument(f"image size {w[r]}x{h[r]} is negative", field=f"{WHERE}.widths_i32[{r}]"),
        )
    if out.capture_ms is not None:
        cap = out.capture_ms
        add(
            np.flatnonzero(ms_out_of_range(cap)).tolist(),
            lambda r: InvalidArgument(
                f"{cap[r]} ms since the Unix epoch is outside the range Shoal stores ({TIME_RANGE})",
                field=f"{WHERE}.capture_times_ms_i64[{r}]",
            ),
        )
    if out.media_uris is not None and max(map(len, out.media_uris), default=0) > MAX_TEXT:
        add(
            (r for r, u in enumerate(out.media_uris) if len(u) > MAX_TEXT),
            lambda r: InvalidArgument(f"is longer than {MAX_TEXT} characters", field=f"{WHERE}.media_uris[{r}]"),
        )
    for j, mc in enumerate(out.metadata):
        where = f"{WHERE}.metadata[{j}]"
        conflict = key_types.conflict(mc.key, COLUMN_TYPES[mc.kind], ctx.dataset.name, "")
        if conflict is not None:
            add(
                np.flatnonzero(_present(mc)).tolist(),
                lambda r, c=conflict, where=where, kind=mc.kind: InvalidArgument(
                    c.message, field=f"{where}.{kind}[{r}]"
                ),
            )
        if mc.kind == "timestamps_ms_i64":
            v = mc.values
            add(
                np.flatnonzero(ms_out_of_range(v)).tolist(),  # type: ignore[arg-type]
                lambda r, v=v, where=where: InvalidArgument(
                    f"{v[r]} ms since the Unix epoch is outside the range Shoal stores ({TIME_RANGE})",
                    field=f"{where}.timestamps_ms_i64[{r}]",
                ),
            )
        if mc.kind == "numbers_f64":
            v = mc.values
            add(
                np.flatnonzero(np.isinf(v)).tolist(),  # type: ignore[arg-type]
                lambda r, v=v, where=where: InvalidArgument(
                    f"must be finite, got {v[r]}", field=f"{where}.numbers_f64[{r}]"
                ),
            )
        elif mc.kind == "bools_u8":
            v = mc.values
            add(
                np.flatnonzero((v > 1) & (v != NO_BOOL)).tolist(),  # type: ignore[operator]
                lambda r, v=v, where=where: InvalidArgument(
                    f"must be 0, 1 or {NO_BOOL} (no value), got {v[r]}", field=f"{where}.bools_u8[{r}]"
                ),
            )
        elif mc.kind == "strings" and max(map(len, mc.values), default=0) > MAX_TEXT:
            add(
                (r for r, s in enumerate(mc.values) if len(s) > MAX_TEXT),
                lambda r, where=where: InvalidArgument(
                    f"is longer than {MAX_TEXT} characters", field=f"{where}.strings[{r}]"
                ),
            )
    return problems


# -- the rejected rows, for the dead-letter topic ----------------------------------------------


def take_rows(cols: pb.FrameColumns, rows: Sequence[int]) -> pb.FrameColumns:
    """A block with only ``rows`` of ``cols`` (the whole block when its columns do not line up)."""
    n = len(cols.frame_ids)
    if not rows:
        return pb.FrameColumns()
    if any(r >= n for r in rows):
        return cols
    idx = np.asarray(rows, dtype=np.int64)
    out = pb.FrameColumns(
        frame_ids=[cols.frame_ids[r] for r in rows],
        frames_stored=cols.frames_stored,
        media_type=cols.media_type,
    )
    out.label_provenance.CopyFrom(cols.label_provenance)

    def take_bytes(data: bytes, dtype: str, width: int = 1) -> bytes:
        if not data:
            return b""
        arr = np.frombuffer(data, dtype=dtype)
        if arr.size != n * width:
            return data
        return arr.reshape(n, width)[idx].tobytes()

    for name in ("splits", "media_uris"):
        values = getattr(cols, name)
        if len(values) == n:
            getattr(out, name).extend(values[r] for r in rows)
    out.widths_i32 = take_bytes(cols.widths_i32, "<i4")
    out.heights_i32 = take_bytes(cols.heights_i32, "<i4")
    out.capture_times_ms_i64 = take_bytes(cols.capture_times_ms_i64, "<i8")
    out.label_class_ids_i32 = take_bytes(cols.label_class_ids_i32, "<i4")
    k = len(cols.probabilities_f32) // 4 // n if n else 0
    out.probabilities_f32 = take_bytes(cols.probabilities_f32, "<f4", max(k, 1))
    for mc in cols.metadata:
        part = out.metadata.add(key=mc.key)
        kind = mc.WhichOneof("values")
        if kind == "strings":
            part.strings.values.extend(mc.strings.values[r] for r in rows if r < len(mc.strings.values))
        elif kind is not None:
            dtype = {"numbers_f64": "<f8", "bools_u8": "u1", "timestamps_ms_i64": "<i8"}[kind]
            setattr(part, kind, take_bytes(getattr(mc, kind), dtype))
    return out


# -- Arrow tables for ClickHouse ---------------------------------------------------------------


def constant(value: str, n: int) -> pa.Array:
    """A column of ``n`` times the same string, dictionary-encoded (one value, n small indices)."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([value]))


def _map(
    keys: Sequence[str], values: Sequence[tuple[np.ndarray, pa.Array]], n: int, item_type: pa.DataType
) -> pa.Array:
    """A Map column: ``values[j] = (present rows mask, values of those rows)`` for ``keys[j]``."""
    if not keys:
        return pa.MapArray.from_arrays(
            pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], pa.string()), pa.array([], item_type)
        )
    present = np.stack([m for m, _ in values], axis=1)  # (n, K)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(present.sum(axis=1), out=offsets[1:])
    # entries in row-major order: row 0's keys, row 1's keys, ...; each key's values are those of
    # its present rows, in row order
    rows, cols = np.nonzero(present)
    key_arr = pa.DictionaryArray.from_arrays(pa.array(cols.astype(np.int32)), pa.array(list(keys)))
    position = np.cumsum(present, axis=0) - 1  # (n, K): index among the key's present rows
    items = pa.concat_arrays([v for _, v in values]) if len(values) > 1 else values[0][1]
    starts = np.concatenate([[0], np.cumsum([len(v) for _, v in values])[:-1]]).astype(np.int64)
    take = starts[cols] + position[rows, cols]
    return pa.MapArray.from_arrays(pa.array(offsets), key_arr.cast(pa.string()), items.take(pa.array(take)))


def _metadata_maps(cols: CheckedColumns, rows: np.ndarray) -> dict[str, pa.Array]:
    n = len(rows)
    groups: dict[str, tuple[list[str], list[tuple[np.ndarray, pa.Array]]]] = {
        "meta_str": ([], []),
        "meta_num": ([], []),
        "meta_bool": ([], []),
        "meta_time": ([], []),
    }
    for mc in cols.metadata:
        if mc.kind == "strings":
            vals = [mc.values[r] for r in rows.tolist()]
            groups["meta_str"][0].append(mc.key)
            groups["meta_str"][1].append((np.ones(n, dtype=bool), pa.array(vals, pa.string())))
        elif mc.kind == "numbers_f64":
            v = np.asarray(mc.values)[rows]
            mask = ~np.isnan(v)
            groups["meta_num"][0].append(mc.key)
            groups["meta_num"][1].append((mask, pa.array(v[mask], pa.float64())))
        elif mc.kind == "bools_u8":
            v = np.asarray(mc.values)[rows]
            mask = v != NO_BOOL
            groups["meta_bool"][0].append(mc.key)
            groups["meta_bool"][1].append((mask, pa.array(v[mask], pa.uint8())))
        else:
            v = np.asarray(mc.values)[rows]
            mask = v != NO_TIME
            groups["meta_time"][0].append(mc.key)
            groups["meta_time"][1].append((mask, pa.array(v[mask], pa.timestamp("ms", tz="UTC"))))
    types = {
        "meta_str": pa.string(),
        "meta_num": pa.float64(),
        "meta_bool": pa.uint8(),
        "meta_time": pa.timestamp("ms", tz="UTC"),
    }
    return {name: _map(keys, vals, n, types[name]) for name, (keys, vals) in groups.items()}


@dataclass(frozen=True)
class BlockMeta:
    project: str
    dataset: str
    inference_set: str
    upload_id: str
    label_version: str
    produced_ns: int


def frame_table(meta: BlockMeta, cols: CheckedColumns) -> pa.Table | None:
    rows = np.flatnonzero(cols.frame_ok)
    n = len(rows)
    if n == 0:
        return None
    ids = [cols.frame_ids[r] for r in rows.tolist()]
    zeros = np.zeros(n, dtype=np.uint32)
    if cols.capture_ms is not None:
        cap = cols.capture_ms[rows]
        capture = pa.array(cap, pa.timestamp("ms", tz="UTC"), mask=cap == NO_TIME)
    else:
        capture = pa.nulls(n, pa.timestamp("ms", tz="UTC"))
    columns = {
        "project": constant(meta.project, n),
        "dataset": constant(meta.dataset, n),
        "frame_id": pa.array(ids, pa.string()),
        "split": pa.array([cols.splits[r] for r in rows.tolist()]) if cols.splits is not None else constant("", n),
        "media_uri": (
            pa.array([cols.media_uris[r] for r in rows.tolist()]) if cols.media_uris is not None else constant("", n)
        ),
        "media_type": constant(cols.media_type, n),
        "width": pa.array(cols.widths[rows].astype(np.uint32)) if cols.widths is not None else pa.array(zeros),
        "height": pa.array(cols.heights[rows].astype(np.uint32)) if cols.heights is not None else pa.array(zeros),
        **_metadata_maps(cols, rows),
        "capture_time": capture,
        "upload_id": constant(meta.upload_id, n),
        "version": pa.array(np.full(n, meta.produced_ns, dtype=np.uint64)),
    }
    return pa.table(columns)


def label_table(meta: BlockMeta, cols: CheckedColumns) -> pa.Table | None:
    rows = np.flatnonzero(cols.label_ok)
    n = len(rows)
    if n == 0 or cols.class_ids is None:
        return None
    prov = cols.provenance or pb.Provenance()
    when_us = prov.time.ToMicroseconds() if prov.HasField("time") else meta.produced_ns // 1000
    return pa.table(
        {
            "project": constant(meta.project, n),
            "dataset": constant(meta.dataset, n),
            "frame_id": pa.array([cols.frame_ids[r] for r in rows.tolist()], pa.string()),
            "label_version": constant(meta.label_version, n),
            "version_time": pa.array(np.full(n, when_us, dtype=np.int64), pa.timestamp("us", tz="UTC")),
            "class_id": pa.array(cols.class_ids[rows].astype(np.int32)),
            "num_objects": pa.array(np.zeros(n, dtype=np.uint32)),
            "source": constant(prov.source or "sdk", n),
            "author": constant(prov.author, n),
            "reason": constant(prov.reason, n),
            "upload_id": constant(meta.upload_id, n),
        }
    )


def inference_table(meta: BlockMeta, cols: CheckedColumns) -> pa.Table | None:
    rows = np.flatnonzero(cols.inference_ok)
    n = len(rows)
    if n == 0 or cols.probabilities is None or cols.ontology is None:
        return None
    p = np.ascontiguousarray(cols.probabilities[rows], dtype=np.float32)
    k = p.shape[1]
    top = p.argmax(axis=1)
    probs = pa.ListArray.from_arrays(pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32)), pa.array(p.ravel()))
    return pa.table(
        {
            "project": constant(meta.project, n),
            "inference_set": constant(meta.inference_set, n),
            "dataset": constant(meta.dataset, n),
            "frame_id": pa.array([cols.frame_ids[r] for r in rows.tolist()], pa.string()),
            "pred_class": pa.array(cols.ontology[top]),
            "confidence": pa.array(p[np.arange(n), top]),
            "probs": probs,
            "num_objects": pa.array(np.zeros(n, dtype=np.uint32)),
            "upload_id": constant(meta.upload_id, n),
            "version": pa.array(np.full(n, meta.produced_ns, dtype=np.uint64)),
        }
    )


def concat(tables: Sequence[pa.Table | None]) -> pa.Table | None:
    """One table of several blocks' tables."""
    present = [t for t in tables if t is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    # one dictionary per column: an Arrow stream may not replace a dictionary between batches
    return pa.concat_tables(present).unify_dictionaries().combine_chunks()
