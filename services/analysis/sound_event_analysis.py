"""Sound-event analysis of an inference set's stored clips: the clips read in chunks, sed_eval's
segment- and event-based metrics (:mod:`shoal.analysis.sound_events`), the event confusion matrix, the
events behind its cells, and what comparisons, slices and gates read of them.

**Which clips count.** The clips of the set's dataset that have a label version (the latest one is read; a
version without events is a clip where nothing happens) and that the set predicts (a prediction may hold no
event), among those a frame filter keeps. Predicted events scored below the confidence threshold are left
out. A clip's length, for the segment-based metrics, is its ``duration_seconds``; its latest offset when an
event ends after it (ingest lets an offset pass the duration by a microsecond) or when it has none.

**Memory.** Clips are read :data:`CHUNK` at a time in frame id order (keyset pages on ``frame_id``), so
memory holds one chunk's events whatever the number of clips; the metrics keep counts only.

**The event confusion matrix.** In each clip every labeled event is matched to at most one predicted event
that *hits* it, by the event-based metric's rules (onset within ``t_collar``, offset within ``max(t_collar,
percentage_of_length x the labeled event's length)``, either condition can be turned off), whatever their
classes. First the hits of the same class: a maximum matching (augmenting paths, each labeled event trying
its hits by temporal IoU, best first), so that the diagonal holds each class's event-based true positives.
Then each labeled event still unmatched, in its clip's order, takes the unmatched prediction of another class
that hits it with the highest tIoU (the higher score among equals): a class confusion. Labeled events left
over are *missed* (the last column), predictions left over are *false positives* (the last row). A row sums
to the labeled events of its class, a column to the predicted events of its class.

Vocabulary as in :mod:`shoal.analysis.sound_events`: C clips, N labeled and M predicted intervals, K classes
(positions in the project's ontology).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from types import SimpleNamespace
from typing import Any

import numba
import numpy as np
import pyarrow as pa

from shoal.analysis.sound_events import (
    DEFAULT_PERCENTAGE_OF_LENGTH,
    DEFAULT_T_COLLAR,
    DEFAULT_TIME_RESOLUTION,
    EventMetrics,
    Intervals,
    Report,
    SegmentMetrics,
)
from shoal.analysis.sound_events import _hits as hits  # the event-based metric's own test of a hit
from shoal.common.stores.metrics import MetricsStore

#: clips read per query (their events are in memory together)
CHUNK = 4_000
#: the shortest segment the segment-based metrics take, in seconds (a clip's segments are held per class)
MIN_TIME_RESOLUTION = 0.01
#: the tables the clips are read from (with the filter's: see ``shoal.common.data.query.VIEW_TABLES``)
TABLES = ("label_versions", "inferences", "frames")


@dataclass(frozen=True)
class Matching:
    """When a predicted event hits a labeled one (sed_eval's event-based rules)."""

    t_collar: float = DEFAULT_T_COLLAR
    percentage_of_length: float = DEFAULT_PERCENTAGE_OF_LENGTH
    evaluate_onset: bool = True
    evaluate_offset: bool = True


@dataclass(frozen=True)
class Clips:
    """C clips read from the store, in frame id order."""

    frame_ids: list[str]
    #: (C,) each clip's stored duration in seconds, NaN where it has none
    durations: np.ndarray
    #: the latest labels' events
    labeled: Intervals
    #: per inference set read, in the order asked: its predicted events, with their scores
    predicted: tuple[Intervals, ...]
    #: (N,) each labeled event's position among its clip's labeled events, as stored
    label_index: np.ndarray
    #: each clip's group (slices), or None
    groups: list[str] | None = None

    @property
    def clips(self) -> int:
        return len(self.frame_ids)

    def lengths(self) -> np.ndarray:
        """(C,) the lengths the segment-based metrics count: the duration, or the latest offset when an
        event ends after it; NaN where the clip has no duration (sed_eval: its latest offset)."""
        latest = np.zeros(self.clips)
        for side in (self.labeled, *self.predicted):
            if len(side):
                np.maximum.at(latest, side.clip_of(), side.offset)
        return np.where(np.isnan(self.durations), np.nan, np.fmax(self.durations, latest))


def _text(values: pa.ChunkedArray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values.to_pylist()]


def _lists(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A list column as its values and bounds (C + 1,)."""
    col = table.column(name).combine_chunks()
    offsets = col.offsets.to_numpy().astype(np.int64)
    return np.array(col.flatten().to_numpy(zero_copy_only=False)), offsets - offsets[0]  # writable: numba types it so


def _kept(bounds: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The bounds of the intervals ``keep`` selects."""
    clip_of = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))
    return np.r_[0, np.cumsum(np.bincount(clip_of[keep], minlength=len(bounds) - 1))].astype(np.int64)


class ClipReader:
    """The clips of a dataset that have labels and a prediction in each of ``inference_sets``, among those
    ``frames_sql`` selects (a SELECT of frame ids, "" for all), a chunk at a time in frame id order.

    With ``groups_sql`` (a SELECT of ``frame_id, g``), only the clips it names, each with its group."""

    def __init__(
        self,
        metrics: MetricsStore,
        project: str,
        dataset: str,
        inference_sets: Sequence[str],
        ontology: Sequence[int],
        *,
        frames_sql: str = "",
        frames_params: dict[str, Any] | None = None,
        confidence_threshold: float = 0.0,
        groups_sql: str = "",
        groups_params: dict[str, Any] | None = None,
        chunk: int | None = None,
    ) -> None:
        self.metrics = metrics
        self.k = len(ontology)
        self.sets = list(inference_sets)
        self.threshold = float(confidence_threshold)
        self.chunk = chunk or CHUNK
        self.grouped = bool(groups_sql)
        ids = np.asarray(ontology, dtype=np.int64)
        self._order = np.argsort(ids, kind="stable")
        self._sorted = ids[self._order]
        self.params: dict[str, Any] = {"project": project, "dataset": dataset, **(frames_params or {}),
                                       **(groups_params or {})}  # fmt: skip
        self.params.update({f"set{n}": name for n, name in enumerate(self.sets)})
        within = f" AND frame_id IN ({frames_sql})" if frames_sql else ""
        self._sql = {op: self._select(op, within, groups_sql) for op in (">", ">=")}
        self._count = self._select(">", within, groups_sql, count=True)

    def _select(self, op: str, within: str, groups_sql: str, *, count: bool = False) -> str:
        keys = f" AND frame_id {op} {{after:String}}{within}"
        mine = "project = {project:String} AND dataset = {dataset:String}"
        columns = ["l.frame_id AS frame_id", "tupleElement(l.ev, 1) AS l_on", "tupleElement(l.ev, 2) AS l_off",
                   "tupleElement(l.ev, 3) AS l_cls", "f.duration_seconds AS duration"]  # fmt: skip
        joins = []
        for n in range(len(self.sets)):
            columns += [f"e{n}.ev_onsets AS p{n}_on", f"e{n}.ev_offsets AS p{n}_off", f"e{n}.ev_classes AS p{n}_cls",
                        f"e{n}.ev_scores AS p{n}_score"]  # fmt: skip
            joins.append(
                " INNER JOIN (SELECT frame_id, ev_onsets, ev_offsets, ev_classes, ev_scores FROM inferences FINAL"
                f" WHERE project = {{project:String}} AND inference_set = {{set{n}:String}}{keys}) AS e{n}"
                f" ON e{n}.frame_id = l.frame_id"
            )
        if groups_sql:
            columns.append("toString(s.g) AS g")
            joins.append(f" INNER JOIN ({groups_sql}) AS s ON s.frame_id = l.frame_id")
        labels = "SELECT frame_id" + (
            "" if count else ", argMax((ev_onsets, ev_offsets, ev_classes), (version_time, label_version)) AS ev"
        )
        clips = f"FROM ({labels} FROM label_versions WHERE {mine}{keys} GROUP BY frame_id) AS l{''.join(joins)}"
        if count:
            return f"SELECT count() {clips}"
        return (
            f"SELECT {', '.join(columns)} {clips}"
            f" LEFT JOIN (SELECT frame_id, duration_seconds FROM frames FINAL WHERE {mine}{keys}) AS f"
            " ON f.frame_id = l.frame_id ORDER BY frame_id LIMIT {chunk:UInt32}"
        )

    def count(self) -> int:
        """How many clips there are."""
        return int(self.metrics.query(self._count, {**self.params, "after": ""}).scalar())

    def chunks(self, start: str = "") -> Iterator[Clips]:
        """The clips from frame id ``start`` on (all when empty), :data:`CHUNK` at a time."""
        after, op = start, ">=" if start else ">"
        while True:
            table = self.metrics.query_arrow(self._sql[op], {**self.params, "after": after, "chunk": self.chunk})
            if not table.num_rows:
                return
            clips = self._clips(table)
            yield clips
            if table.num_rows < self.chunk:
                return
            after, op = clips.frame_ids[-1], ">"

    def _position(self, class_ids: np.ndarray) -> np.ndarray:
        """Each class id's position in the ontology, -1 for none."""
        at = np.minimum(np.searchsorted(self._sorted, class_ids), max(self.k - 1, 0))
        found = self._sorted[at] == class_ids if self.k else np.zeros(len(class_ids), bool)
        return np.where(found, self._order[at] if self.k else -1, -1)

    def _events(self, table: pa.Table, prefix: str, scored: bool, what: str) -> tuple[Intervals, np.ndarray]:
        onset, bounds = _lists(table, f"{prefix}_on")
        offset, _ = _lists(table, f"{prefix}_off")
        classes, _ = _lists(table, f"{prefix}_cls")
        score = _lists(table, f"{prefix}_score")[0].astype(np.float64) if scored else None
        cls = self._position(classes.astype(np.int64))
        keep = cls >= 0  # classes are append-only: a stored event's class is always known
        if score is not None:
            keep &= score >= self.threshold
        index = np.arange(len(onset)) - np.repeat(bounds[:-1], np.diff(bounds))
        if not keep.all():
            onset, offset, cls, index = onset[keep], offset[keep], cls[keep], index[keep]
            score = score[keep] if score is not None else None
            bounds = _kept(bounds, keep)
        events = Intervals(onset=onset, offset=offset, cls=cls, score=score, classes=max(self.k, 1), bounds=bounds,
                           what=what)  # fmt: skip
        return events, index

    def _clips(self, table: pa.Table) -> Clips:
        frames = _text(table.column("frame_id"))
        labeled, index = self._events(table, "l", False, "labeled event")
        predicted = tuple(self._events(table, f"p{n}", True, "predicted event")[0] for n in range(len(self.sets)))
        durations = table.column("duration").to_numpy().astype(np.float64)
        durations = np.where(durations > 0, durations, np.nan)
        groups = _text(table.column("g")) if self.grouped else None
        return Clips(frames, durations, labeled, predicted, index, groups)


# -- the matching -------------------------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _tiou(a0, a1, b0, b1):
    shared = min(a1, b1) - max(a0, b0)
    if shared <= 0:
        return 0.0
    return shared / (max(a1, b1) - min(a0, b0))


@numba.njit(cache=True, nogil=True)
def _match(l_on, l_off, l_cls, l_bounds, p_on, p_off, p_cls, p_score, p_bounds, collar, share, use_onset,
           use_offset, l_match, p_match):  # fmt: skip
    """Fills ``l_match`` (N,) with each labeled event's prediction and ``p_match`` (M,) with each
    prediction's labeled event (-1: none); see the module's rules."""
    for c in range(l_bounds.shape[0] - 1):
        l0, l1, p0, p1 = l_bounds[c], l_bounds[c + 1], p_bounds[c], p_bounds[c + 1]
        nr, ne = l1 - l0, p1 - p0
        if nr == 0 or ne == 0:
            continue
        # the same-class hits of each labeled event, best tIoU first
        start = np.zeros(nr + 1, np.int64)
        for j in range(nr):
            n = 0
            for i in range(ne):
                if l_cls[l0 + j] == p_cls[p0 + i] and hits(l_on, l_off, p_on, p_off, l0 + j, p0 + i, collar, share,
                                                           use_onset, use_offset):  # fmt: skip
                    n += 1
            start[j + 1] = start[j] + n
        adj = np.empty(start[nr], np.int64)
        for j in range(nr):
            q = start[j]
            for i in range(ne):
                if l_cls[l0 + j] == p_cls[p0 + i] and hits(l_on, l_off, p_on, p_off, l0 + j, p0 + i, collar, share,
                                                           use_onset, use_offset):  # fmt: skip
                    adj[q] = i
                    q += 1
            if start[j + 1] - start[j] > 1:
                seg = adj[start[j] : start[j + 1]]
                key = np.empty(seg.shape[0])
                for q in range(seg.shape[0]):
                    key[q] = -_tiou(l_on[l0 + j], l_off[l0 + j], p_on[p0 + seg[q]], p_off[p0 + seg[q]])
                adj[start[j] : start[j + 1]] = seg[np.argsort(key, kind="mergesort")]
        # a maximum matching: from each labeled event, the shortest augmenting path (breadth first)
        lm = np.full(nr, -1, np.int64)
        pm = np.full(ne, -1, np.int64)
        parent = np.empty(ne, np.int64)
        seen = np.zeros(ne, np.int64)
        queue = np.empty(nr, np.int64)
        for j in range(nr):
            if start[j + 1] == start[j]:
                continue
            queue[0] = j
            head, tail, found = 0, 1, -1
            while head < tail and found < 0:
                u = queue[head]
                head += 1
                for q in range(start[u], start[u + 1]):
                    i = adj[q]
                    if seen[i] == j + 1:
                        continue
                    seen[i] = j + 1
                    parent[i] = u
                    if pm[i] == -1:
                        found = i
                        break
                    queue[tail] = pm[i]
                    tail += 1
            i = found
            while i >= 0:
                u = parent[i]
                before = lm[u]
                lm[u] = i
                pm[i] = u
                i = -1 if u == j else before
        # then another class: each labeled event left, in order, takes the best free prediction hitting it
        for j in range(nr):
            if lm[j] != -1:
                continue
            best, best_iou = -1, -1.0
            for i in range(ne):
                if pm[i] != -1 or not hits(l_on, l_off, p_on, p_off, l0 + j, p0 + i, collar, share, use_onset,
                                           use_offset):  # fmt: skip
                    continue
                t = _tiou(l_on[l0 + j], l_off[l0 + j], p_on[p0 + i], p_off[p0 + i])
                if t > best_iou or (t == best_iou and p_score[p0 + i] > p_score[p0 + best]):
                    best, best_iou = i, t
            if best >= 0:
                lm[j] = best
                pm[best] = j
        for j in range(nr):
            l_match[l0 + j] = p0 + lm[j] if lm[j] >= 0 else -1
        for i in range(ne):
            p_match[p0 + i] = l0 + pm[i] if pm[i] >= 0 else -1


def match(labeled: Intervals, predicted: Intervals, matching: Matching) -> tuple[np.ndarray, np.ndarray]:
    """Each labeled event's predicted event (N,) and each predicted event's labeled one (M,), -1 for none,
    by the module's rules; the same clips on both sides."""
    l_match = np.full(len(labeled), -1, np.int64)
    p_match = np.full(len(predicted), -1, np.int64)
    score = predicted.score if predicted.score is not None else np.zeros(len(predicted))
    _match(labeled.onset, labeled.offset, labeled.cls, labeled.bounds, predicted.onset, predicted.offset,
           predicted.cls, score, predicted.bounds, matching.t_collar, matching.percentage_of_length,
           matching.evaluate_onset, matching.evaluate_offset, l_match, p_match)  # fmt: skip
    return l_match, p_match


def confusion(labeled: Intervals, predicted: Intervals, l_match: np.ndarray, p_match: np.ndarray) -> np.ndarray:
    """(K + 1) x (K + 1) counts: rows labeled classes then "false positive", columns predicted classes
    then "missed"."""
    k = labeled.classes
    rows = np.r_[labeled.cls, np.full(int((p_match < 0).sum()), k)]
    cols = np.r_[np.where(l_match >= 0, predicted.cls[np.maximum(l_match, 0)], k), predicted.cls[p_match < 0]]
    return np.bincount(rows * (k + 1) + cols, minlength=(k + 1) ** 2).reshape(k + 1, k + 1).astype(np.int64)


def clip_counts(labeled: Intervals, predicted: Intervals, l_match: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per clip (C,): its event-based true positives (labeled events matched by their class), labeled
    events and predicted events."""
    same = (l_match >= 0) & (predicted.cls[np.maximum(l_match, 0)] == labeled.cls)
    c = labeled.clips
    return (np.bincount(labeled.clip_of()[same], minlength=c), np.diff(labeled.bounds), np.diff(predicted.bounds))


# -- metrics ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    clips: int
    segment: Report
    event: Report
    #: (K + 1) x (K + 1), see :func:`confusion`
    confusion: np.ndarray


def measure(reader: ClipReader, *, time_resolution: float = DEFAULT_TIME_RESOLUTION,
            matching: Matching = Matching()) -> Measured:  # fmt: skip
    """sed_eval's metrics and the event confusion matrix of the reader's clips (its first inference set)."""
    k = max(reader.k, 1)
    segment = SegmentMetrics(classes=k, time_resolution=time_resolution)
    event = EventMetrics(classes=k, t_collar=matching.t_collar, percentage_of_length=matching.percentage_of_length,
                         evaluate_onset=matching.evaluate_onset, evaluate_offset=matching.evaluate_offset)  # fmt: skip
    cells = np.zeros((k + 1, k + 1), np.int64)
    clips = 0
    for chunk in reader.chunks():
        labeled, predicted = chunk.labeled, chunk.predicted[0]
        lengths = chunk.lengths()
        segment.add(reference=labeled, estimated=predicted, durations=lengths)
        event.add(reference=labeled, estimated=predicted, durations=lengths)
        cells += confusion(labeled, predicted, *match(labeled, predicted, matching))
        clips += chunk.clips
    return Measured(clips, segment.report(), event.report(), cells)


def _zero(x: float | None) -> float:
    return 0.0 if x is None or math.isnan(x) else float(x)


def gate_summary(m: Measured, ontology: Sequence[int]) -> SimpleNamespace:
    """What regression gates read (``shoal.common.data.segments.SOUND_EVENT_FRAME_METRICS`` and
    ``SOUND_EVENT_CLASS_METRICS``): F1 (micro and class-wise average) of both evaluations, and per class
    the event-based F1, precision and recall; an undefined figure (NaN) is 0, so that a class absent from
    a segment cannot pass a gate on it."""
    per_class = [SimpleNamespace(class_id=c, f1=_zero(r.f1), precision=_zero(r.precision), recall=_zero(r.recall))
                 for c, r in zip(ontology, m.event.class_wise, strict=False)]  # fmt: skip
    return SimpleNamespace(
        frames=m.clips,
        event_f1=_zero(m.event.overall.f1),
        segment_f1=_zero(m.segment.overall.f1),
        event_macro_f1=_zero(m.event.class_wise_average.f1),
        segment_macro_f1=_zero(m.segment.class_wise_average.f1),
        per_class=per_class,
    )


# -- drill-down ---------------------------------------------------------------------------------------------------

#: a cell's side: any class, the "false positive" row / "missed" column, or a class position
ANY, NONE = None, -1


@dataclass(frozen=True)
class MatchRow:
    """A labeled event with the predicted event matched to it (None: missed), or a predicted event no
    labeled one matched (label None); classes are ids."""

    frame_id: str
    #: its place in its clip: onset, 0 for a labeled event's row and 1 for a false positive's, its position
    key: tuple[float, int, int]
    label: tuple[float, float, int] | None
    predicted: tuple[float, float, int, float] | None
    iou: float
    duration: float


@dataclass(frozen=True)
class _Cell:
    """A cell's rows in a chunk of clips, in order (clip, onset, labeled events' rows first, position): each
    row's clip, labeled event (-1 for a false positive) and predicted event (-1 when missed)."""

    clip: np.ndarray
    onset: np.ndarray
    row: np.ndarray
    position: np.ndarray
    labeled: np.ndarray
    predicted: np.ndarray

    def __len__(self) -> int:
        return int(self.clip.shape[0])


def _cell(clips: Clips, matching: Matching, label: int | None, predicted: int | None) -> _Cell:
    """The rows of a cell (``label`` and ``predicted`` class positions, :data:`NONE` or :data:`ANY`)."""
    lab, pred = clips.labeled, clips.predicted[0]
    l_match, p_match = match(lab, pred, matching)
    matched_cls = np.where(l_match >= 0, pred.cls[np.maximum(l_match, 0)], NONE)
    take_l = np.ones(len(lab), bool) if label is ANY else lab.cls == label
    if predicted is not ANY:
        take_l &= matched_cls == predicted
    take_p = (p_match < 0) & (label is ANY or label == NONE)
    if predicted is not ANY:
        take_p &= pred.cls == predicted
    j, i = np.flatnonzero(take_l), np.flatnonzero(take_p)
    p_clip = pred.clip_of()[i]
    clip = np.r_[lab.clip_of()[j], p_clip]
    onset = np.r_[lab.onset[j], pred.onset[i]]
    row = np.r_[np.zeros(len(j), np.int64), np.ones(len(i), np.int64)]
    position = np.r_[clips.label_index[j], i - pred.bounds[p_clip]]
    order = np.lexsort((position, row, onset, clip))
    labeled = np.r_[j, np.full(len(i), -1)]
    shown = np.r_[l_match[j], i]
    return _Cell(clip[order], onset[order], row[order], position[order], labeled[order], shown[order])


def count_cell(reader: ClipReader, matching: Matching, label: int | None, predicted: int | None) -> int:
    """How many rows the cell holds over every clip of the reader."""
    return sum(len(_cell(chunk, matching, label, predicted)) for chunk in reader.chunks())


def page_cell(reader: ClipReader, ontology: Sequence[int], matching: Matching, label: int | None,
              predicted: int | None, after: tuple[str, tuple[float, int, int]] | None,
              size: int) -> tuple[list[MatchRow], bool]:  # fmt: skip
    """Up to ``size`` rows of the cell after the row ``after`` (frame id and key; None: from the first),
    by clip then :attr:`MatchRow.key`, and whether more follow. Reads the clips from ``after``'s on, only
    as many as the page needs."""
    ids = np.asarray(ontology, dtype=np.int64)
    out: list[MatchRow] = []
    for chunk in reader.chunks(after[0] if after else ""):
        cell = _cell(chunk, matching, label, predicted)
        keep = np.ones(len(cell), bool)
        if after is not None and chunk.frame_ids and chunk.frame_ids[0] == after[0]:
            first = cell.clip == 0  # the clip of the last row shown: only the rows after it
            keys = zip(cell.onset[first].tolist(), cell.row[first].tolist(), cell.position[first].tolist(), strict=True)
            keep[first] = [k > after[1] for k in keys]
        lab, pred = chunk.labeled, chunk.predicted[0]
        score = pred.score if pred.score is not None else np.zeros(len(pred))
        for n in np.flatnonzero(keep)[: size + 1 - len(out)]:
            c, j, p = int(cell.clip[n]), int(cell.labeled[n]), int(cell.predicted[n])
            shown = (
                None if p < 0 else (float(pred.onset[p]), float(pred.offset[p]), int(ids[pred.cls[p]]), float(score[p]))
            )
            given = None if j < 0 else (float(lab.onset[j]), float(lab.offset[j]), int(ids[lab.cls[j]]))
            iou = float(_tiou(given[0], given[1], shown[0], shown[1])) if given and shown else 0.0
            key = (float(cell.onset[n]), int(cell.row[n]), int(cell.position[n]))
            out.append(MatchRow(chunk.frame_ids[c], key, given, shown, iou, float(chunk.durations[c])))
        if len(out) > size:
            return out[:size], True
    return out, False


# -- comparison and slices ----------------------------------------------------------------------------------------


def _clip_f1(tp: np.ndarray, nref: np.ndarray, nsys: np.ndarray) -> np.ndarray:
    """Each clip's event-based F1, 2 TP / (labeled + predicted); 1 for a clip with neither (nothing to
    find, nothing found)."""
    total = nref + nsys
    return np.where(total > 0, 2 * tp / np.maximum(total, 1), 1.0)


@dataclass(frozen=True)
class Comparison:
    clips: int
    baseline: Report
    candidate: Report
    #: clips whose event-based F1 is higher (lower) in the candidate than in the baseline
    improved: int
    regressed: int


def compare(reader: ClipReader, matching: Matching = Matching()) -> Comparison:
    """Two inference sets (the reader's, baseline first) on the clips both predict: each one's event-based
    report, and the clips whose own event-based F1 rose or fell."""
    k = max(reader.k, 1)
    reports = [EventMetrics(classes=k, t_collar=matching.t_collar, percentage_of_length=matching.percentage_of_length,
                            evaluate_onset=matching.evaluate_onset, evaluate_offset=matching.evaluate_offset)
               for _ in range(2)]  # fmt: skip
    improved = regressed = clips = 0
    for chunk in reader.chunks():
        f1 = []
        for metrics, predicted in zip(reports, chunk.predicted, strict=True):
            metrics.add(reference=chunk.labeled, estimated=predicted, durations=chunk.lengths())
            l_match, _ = match(chunk.labeled, predicted, matching)
            f1.append(_clip_f1(*clip_counts(chunk.labeled, predicted, l_match)))
        improved += int((f1[1] > f1[0]).sum())
        regressed += int((f1[1] < f1[0]).sum())
        clips += chunk.clips
    return Comparison(clips, reports[0].report(), reports[1].report(), improved, regressed)


@dataclass(frozen=True)
class SliceRow:
    value: str
    clips: int
    #: labeled plus predicted events, and the labeled events matched by their class
    events: int
    matched: int
    #: the event-based F1's confidence interval, clips as clusters
    lower: float
    upper: float

    @property
    def f1(self) -> float:
        return 2 * self.matched / self.events if self.events else 0.0


def slice_rows(reader: ClipReader, level: float, matching: Matching = Matching()) -> list[SliceRow]:
    """Per group of the reader's clips: its event-based F1, ``2 TP / (labeled + predicted events)`` (the
    micro F1 of sed_eval's event-based metric), with an interval. A clip's events are not independent
    trials (a clip of a noisy street fails many together), so the interval treats clips as clusters: the
    ratio estimator's standard error, ``sqrt(n / (n - 1) * sum((y_c - F x_c) ** 2)) / sum(x_c)``, with
    ``y_c = 2 TP_c`` and ``x_c`` a clip's events, over the n clips with events."""
    sums: dict[str, np.ndarray] = {}  # clips, clips with events, sum x, sum y, sum xx, sum yy, sum xy
    for chunk in reader.chunks():
        l_match, _ = match(chunk.labeled, chunk.predicted[0], matching)
        tp, nref, nsys = clip_counts(chunk.labeled, chunk.predicted[0], l_match)
        x, y = (nref + nsys).astype(np.float64), 2.0 * tp
        for c, g in enumerate(chunk.groups or []):
            s = sums.setdefault(g, np.zeros(7))
            s += (1, x[c] > 0, x[c], y[c], x[c] * x[c], y[c] * y[c], x[c] * y[c])
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    out = []
    for g in sorted(sums):
        clips, n, sx, sy, sxx, syy, sxy = sums[g]
        a = sy / sx if sx else 0.0
        if n > 1 and sx:
            half = z * math.sqrt(n / (n - 1) * max(syy - 2 * a * sxy + a * a * sxx, 0.0)) / sx
            lower, upper = max(0.0, a - half), min(1.0, a + half)
        else:
            lower, upper = 0.0, 1.0
        out.append(SliceRow(g, int(clips), int(sx), int(sy // 2), lower, upper))
    return out
