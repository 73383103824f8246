"""Sound-event detection metrics: clips carry labeled events and predicted ones, each an interval
(onset and offset in seconds, a class, and for a prediction a score), and the figures are
sed_eval's (``sed_eval.sound_event.SegmentBasedMetrics`` and ``EventBasedMetrics`` 0.2.1, with
their defaults), computed with the same arithmetic so that they agree to rounding.

Vocabulary: a batch holds C clips, N intervals and K classes; a class is a position in ``[0, K)``.
:class:`Intervals` holds the intervals of C clips end to end, clip ``c`` being
``[bounds[c], bounds[c + 1])``, and checks them as it is built.

**Segment-based** (:class:`SegmentMetrics`): each clip is cut into segments of ``time_resolution``
seconds (1 s by default) and a class is active in a segment when an interval of it touches the
segment (segments ``floor(onset / r)`` to ``ceil(offset / r) - 1``). A clip covers its duration when
given, else up to the latest offset of either list, ``ceil(length / r)`` segments. Per segment, with
``Nref`` and ``Nsys`` the classes active in the labels and in the predictions and ``Ntp`` those in both:
``S = min(Nref, Nsys) - Ntp``, ``D = max(0, Nref - Nsys)``, ``I = max(0, Nsys - Nref)``; summed over
segments they give the overall (micro) error rate ``(S + D + I) / Nref`` and its three parts. Per
class, a segment is a true/false positive/negative; a class's error rate is deletions plus
insertions (its false negatives and false positives) over its ``Nref``. Accuracy, sensitivity,
specificity and balanced accuracy (factor 0.5) are sed_eval's, on the same counts.

**Event-based** (:class:`EventMetrics`): a prediction hits a labeled event when its onset is within
``t_collar`` (0.2 s) of the event's and its offset within ``max(t_collar, percentage_of_length x
the event's length)`` (50 %) of the event's (either condition can be turned off). True positives are
a matching of hits of the same class: ``"optimal"`` (default) is a maximum bipartite matching, the
one sed_eval's Hopcroft-Karp finds (its order of search is followed, since which events it leaves
unmatched decides the substitutions); ``"greedy"`` takes each labeled event in order and the first
free prediction that hits it. Then substitutions pair, in order, each unmatched labeled event with
the first unmatched prediction of any class that hits it. Overall: ``Nfn = Nref - Ntp - Nsubs``
(deletions), ``Nfp = Nsys - Ntp - Nsubs`` (insertions). Per class there are no substitutions:
``Nfn = Nref - Ntp``, ``Nfp = Nsys - Ntp``.

Rates follow sed_eval exactly: precision is NaN without predictions and recall NaN without labeled
events (an F1 from a NaN is NaN, from two zeros 0); error, substitution, deletion and insertion
rates divide by ``Nref + eps`` (``eps = numpy.spacing(1)``, so 0 without labeled events); the
class-wise average (macro) is the NaN-ignoring mean over classes.

The accumulators take one batch of clips at a time and keep only counts, so memory is that of a
batch; the loops over intervals run compiled with numba.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

#: sed_eval's defaults
DEFAULT_TIME_RESOLUTION = 1.0
DEFAULT_T_COLLAR = 0.2
DEFAULT_PERCENTAGE_OF_LENGTH = 0.5
MATCHINGS = ("optimal", "greedy")
#: sed_eval's epsilon in the rates' denominators
EPS = float(np.spacing(1))


def _first(bad: np.ndarray) -> int:
    return int(np.flatnonzero(bad)[0])


@dataclass(frozen=True)
class Intervals:
    """The intervals of C clips, end to end, checked as they are built.

    Parameters
    ----------
    onset, offset : array of shape (N,)
        Seconds from the clip's start, finite, ``0 <= onset < offset``.
    cls : array of shape (N,)
        Each interval's class, an integer in ``[0, classes)``.
    classes : int
        K, the number of classes.
    score : array of shape (N,), optional
        A prediction's confidence in ``[0, 1]``, higher = more confident; ``None`` for labels.
    bounds : array of shape (C + 1,), optional
        Clip ``c`` holds intervals ``bounds[c]`` to ``bounds[c + 1] - 1``: starts at 0, never
        decreases, ends at N. Default: one clip, ``[0, N]``.
    what : str
        How errors name an interval (``"labeled interval 3 (clip 1, its interval 0)"``).

    Raises
    ------
    ValueError
        Naming the first interval at fault and what to fix.
    """

    onset: np.ndarray
    offset: np.ndarray
    cls: np.ndarray
    classes: int
    score: np.ndarray | None = None
    bounds: np.ndarray = None  # type: ignore[assignment]  # set by __post_init__
    what: str = "interval"

    def __post_init__(self) -> None:
        onset = np.ascontiguousarray(self.onset, dtype=np.float64)
        offset = np.ascontiguousarray(self.offset, dtype=np.float64)
        cls_raw = np.asarray(self.cls)
        n = onset.shape[0] if onset.ndim == 1 else -1
        for name, a in (("onset", onset), ("offset", offset), ("cls", cls_raw)):
            if a.ndim != 1 or a.shape[0] != n:
                raise ValueError(f"{self.what}s: {name} has shape {a.shape}; onset, offset and cls must be 1-D, "
                                 f"of one length (N)")  # fmt: skip
        if not isinstance(self.classes, int | np.integer) or self.classes < 1:
            raise ValueError(f"{self.what}s: classes is {self.classes!r}; give the number of classes K >= 1")
        if not np.issubdtype(cls_raw.dtype, np.number) and n:
            raise ValueError(f"{self.what}s: cls is of type {cls_raw.dtype}; classes are integer positions 0..K-1")
        if n and not (np.issubdtype(cls_raw.dtype, np.integer) or np.all(np.mod(cls_raw, 1) == 0)):
            i = _first(np.mod(cls_raw, 1) != 0)
            raise ValueError(f"{self.what} {i}: class {cls_raw[i]} is not an integer; classes are positions 0..K-1")
        cls = np.ascontiguousarray(cls_raw, dtype=np.int64)
        bounds = np.array([0, n], dtype=np.int64) if self.bounds is None else np.asarray(self.bounds)
        if bounds.ndim != 1 or bounds.shape[0] < 2 or not np.issubdtype(bounds.dtype, np.integer):
            raise ValueError(f"{self.what}s: bounds must be C + 1 integers (clip c is bounds[c]:bounds[c + 1])")
        bounds = np.ascontiguousarray(bounds, dtype=np.int64)
        if bounds[0] != 0 or bounds[-1] != n or (np.diff(bounds) < 0).any():
            raise ValueError(f"{self.what}s: bounds {bounds[:4].tolist()}... must start at 0, never decrease and end "
                             f"at N = {n}")  # fmt: skip
        object.__setattr__(self, "onset", onset)
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "cls", cls)
        object.__setattr__(self, "bounds", bounds)
        object.__setattr__(self, "classes", int(self.classes))

        def fault(i: int, problem: str) -> ValueError:
            return ValueError(f"{self.name(i)}: {problem}")

        bad = ~np.isfinite(onset) | ~np.isfinite(offset)
        if bad.any():
            i = _first(bad)
            raise fault(i, f"onset {onset[i]} s, offset {offset[i]} s: both must be finite seconds")
        if (onset < 0).any():
            i = _first(onset < 0)
            raise fault(i, f"onset {onset[i]} s is before the clip's start; onsets are seconds from 0")
        if (onset >= offset).any():
            i = _first(onset >= offset)
            raise fault(i, f"onset {onset[i]} s is not before offset {offset[i]} s; an interval needs onset < offset")
        if ((cls < 0) | (cls >= self.classes)).any():
            i = _first((cls < 0) | (cls >= self.classes))
            raise fault(i, f"class {cls[i]} is not one of the {self.classes} classes (0 to {self.classes - 1})")
        if self.score is not None:
            score = np.ascontiguousarray(self.score, dtype=np.float64)
            if score.shape != (n,):
                raise ValueError(f"{self.what}s: score has shape {score.shape}, not ({n},): one score per interval")
            bad = ~np.isfinite(score) | (score < 0) | (score > 1)
            if bad.any():
                i = _first(bad)
                raise fault(i, f"score {score[i]} is not in [0, 1]; give the prediction's confidence")
            object.__setattr__(self, "score", score)

    def __len__(self) -> int:
        return int(self.onset.shape[0])

    @property
    def clips(self) -> int:
        """C, the number of clips."""
        return int(self.bounds.shape[0] - 1)

    def name(self, i: int) -> str:
        """How messages name interval ``i``: its position, and its clip and place there when C > 1."""
        if self.clips == 1:
            return f"{self.what} {i}"
        c = int(np.searchsorted(self.bounds, i, side="right") - 1)
        return f"{self.what} {i} (clip {c}, its interval {i - int(self.bounds[c])})"

    def clip_of(self) -> np.ndarray:
        """Each interval's clip, shape (N,)."""
        return np.repeat(np.arange(self.clips, dtype=np.int64), np.diff(self.bounds))

    def check_durations(self, durations: np.ndarray) -> None:
        """Raises ValueError naming the first interval that ends after its clip's duration (NaN: not given)."""
        if not len(self):
            return
        limit = durations[self.clip_of()]
        bad = self.offset > limit  # NaN compares False: no duration, no limit
        if bad.any():
            i = _first(bad)
            raise ValueError(f"{self.name(i)}: offset {self.offset[i]} s is past the clip's duration {limit[i]} s; "
                             "intervals must lie within their clip")  # fmt: skip


def check_durations(durations: float | Sequence[float] | np.ndarray | None, clips: int) -> np.ndarray:
    """Clip durations as a float array of shape (C,), NaN where not given.

    ``None`` gives none; a number is the duration of a single clip; an array gives one per clip
    (finite and positive, or NaN for a clip without one)."""
    if durations is None:
        return np.full(clips, np.nan)
    d = np.atleast_1d(np.asarray(durations, dtype=np.float64))
    if d.shape != (clips,):
        raise ValueError(f"durations has shape {d.shape}, not ({clips},): one per clip (NaN where unknown)")
    bad = np.isinf(d) | (d <= 0)
    if bad.any():
        c = _first(bad)
        raise ValueError(f"duration of clip {c} is {d[c]} s; give a positive number of seconds, or NaN for none")
    return d


def _pair(reference: Intervals, estimated: Intervals, classes: int, durations: Any) -> np.ndarray:
    if reference.clips != estimated.clips:
        raise ValueError(f"reference has {reference.clips} clips and estimated {estimated.clips}; give both per clip")
    for side in (reference, estimated):
        if side.classes != classes:
            raise ValueError(f"{side.what}s have {side.classes} classes, the metrics {classes}; use one class list")
    d = check_durations(durations, reference.clips)
    reference.check_durations(d)
    estimated.check_durations(d)
    return d


# -- segment-based ------------------------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _segment_counts(r_on, r_off, r_cls, r_bounds, e_on, e_off, e_cls, e_bounds, durations, k, resolution,
                    per_class, overall, seconds):  # fmt: skip
    """Adds the segment counts of each clip: ``per_class`` (K, 6) Ntp, Ntn, Nfp, Nfn, Nref, Nsys;
    ``overall`` (9,) the same and S, D, I; ``seconds[0]`` the evaluated length."""
    for c in range(r_bounds.shape[0] - 1):
        r0, r1, e0, e1 = r_bounds[c], r_bounds[c + 1], e_bounds[c], e_bounds[c + 1]
        if math.isnan(durations[c]):
            # sed_eval: the latest offset of either list, 0 for an empty one
            length = 0.0
            for i in range(r0, r1):
                if r_off[i] > length:
                    length = r_off[i]
            longest = 0.0
            for i in range(e0, e1):
                if e_off[i] > longest:
                    longest = e_off[i]
            if longest > length:
                length = longest
        else:
            length = durations[c]
        seconds[0] += length
        n = math.ceil(length * 1 / resolution)  # sed_eval's arithmetic, to the last bit
        ref = np.zeros((n, k), np.bool_)
        est = np.zeros((n, k), np.bool_)
        for on, off, cls, roll, a, b in ((r_on, r_off, r_cls, ref, r0, r1), (e_on, e_off, e_cls, est, e0, e1)):
            for i in range(a, b):
                for s in range(math.floor(on[i] * 1 / resolution), min(math.ceil(off[i] * 1 / resolution), n)):
                    roll[s, cls[i]] = True
        for s in range(n):
            nref = 0
            nsys = 0
            ntp = 0
            for j in range(k):
                labeled = ref[s, j]
                predicted = est[s, j]
                if labeled and predicted:
                    per_class[j, 0] += 1
                    ntp += 1
                elif not labeled and not predicted:
                    per_class[j, 1] += 1
                elif predicted:
                    per_class[j, 2] += 1
                else:
                    per_class[j, 3] += 1
                if labeled:
                    per_class[j, 4] += 1
                    nref += 1
                if predicted:
                    per_class[j, 5] += 1
                    nsys += 1
            overall[6] += min(nref, nsys) - ntp
            overall[7] += max(0, nref - nsys)
            overall[8] += max(0, nsys - nref)


# -- event-based --------------------------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _hits(r_on, r_off, e_on, e_off, j, i, collar, share, use_onset, use_offset):
    """sed_eval's ``validate_onset`` and ``validate_offset`` of labeled event ``j`` and prediction ``i``."""
    if use_onset and not abs(r_on[j] - e_on[i]) <= collar:
        return False
    if use_offset:
        return abs(r_off[j] - e_off[i]) <= max(collar, share * (r_off[j] - r_on[j]))
    return True


@numba.njit(cache=True, nogil=True)
def _hopcroft_karp(order, adj_start, adj, n_ref, n_est):
    """sed_eval's ``bipartite_match`` (mir_eval's Hopcroft-Karp, after Eppstein), in its order of search.

    The graph's left vertices are predictions, in ``order`` (the order sed_eval's dict gets them: by
    the first labeled event each hits); prediction ``u``'s labeled events are ``adj[adj_start[u]:
    adj_start[u + 1]]``, ascending. Returns each labeled event's prediction, -1 if unmatched."""
    match = np.full(n_ref, -1, np.int64)
    for u in order:  # the greedy start
        for p in range(adj_start[u], adj_start[u + 1]):
            if match[adj[p]] == -1:
                match[adj[p]] = u
                break
    absent, first = -3, -2  # pred[u]: not in the dict, or the first layer's sentinel; else a labeled event
    pred = np.empty(n_est, np.int64)
    has_preds = np.zeros(n_ref, np.bool_)
    preds_start = np.zeros(n_ref, np.int64)
    preds_len = np.zeros(n_ref, np.int64)
    n_edges = adj.shape[0]
    preds_buf = np.empty(max(n_edges, 1), np.int64)
    layer = np.empty(max(n_est, 1), np.int64)
    next_layer = np.empty(max(n_est, 1), np.int64)
    unmatched = np.empty(max(n_ref, 1), np.int64)
    new_pos = np.full(n_ref, -1, np.int64)
    new_order = np.empty(max(n_ref, 1), np.int64)
    pair_v = np.empty(max(n_edges, 1), np.int64)
    pair_u = np.empty(max(n_edges, 1), np.int64)
    counts = np.zeros(n_ref, np.int64)
    fill = np.zeros(n_ref, np.int64)
    stack_v = np.empty(max(n_ref, 1) + 1, np.int64)
    stack_p = np.empty(max(n_ref, 1) + 1, np.int64)
    stack_u = np.empty(max(n_ref, 1) + 1, np.int64)
    while True:
        pred[:] = absent
        for u in order:
            pred[u] = first
        for v in range(n_ref):
            if match[v] != -1:
                pred[match[v]] = absent
        n_layer = 0
        for u in order:
            if pred[u] == first:
                layer[n_layer] = u
                n_layer += 1
        has_preds[:] = False
        used = 0
        n_unmatched = 0
        while n_layer > 0 and n_unmatched == 0:
            n_new = 0
            n_pairs = 0
            for q in range(n_layer):
                u = layer[q]
                for p in range(adj_start[u], adj_start[u + 1]):
                    v = adj[p]
                    if not has_preds[v]:
                        if new_pos[v] == -1:
                            new_pos[v] = n_new
                            new_order[n_new] = v
                            n_new += 1
                        pair_v[n_pairs] = v
                        pair_u[n_pairs] = u
                        n_pairs += 1
            # new_layer[v]: the u's in the order they came, stored into preds for each v in its order
            for q in range(n_pairs):
                counts[pair_v[q]] += 1
            for q in range(n_new):
                v = new_order[q]
                preds_start[v] = used
                preds_len[v] = counts[v]
                fill[v] = used
                used += counts[v]
            for q in range(n_pairs):
                v = pair_v[q]
                preds_buf[fill[v]] = pair_u[q]
                fill[v] += 1
            n_layer = 0
            for q in range(n_new):
                v = new_order[q]
                has_preds[v] = True
                counts[v] = 0
                new_pos[v] = -1
                if match[v] != -1:
                    next_layer[n_layer] = match[v]
                    n_layer += 1
                    pred[match[v]] = v
                else:
                    unmatched[n_unmatched] = v
                    n_unmatched += 1
            layer, next_layer = next_layer, layer
        if n_unmatched == 0:
            return match
        # sed_eval's recurse(v) for each unmatched v, as a loop over an explicit stack of (v, position in its
        # preds, the u tried): a frame returns True once it matches v, False when its preds run out
        for q in range(n_unmatched):
            v0 = unmatched[q]
            if not has_preds[v0]:
                continue
            has_preds[v0] = False
            depth = 0
            stack_v[0] = v0
            stack_p[0] = preds_start[v0]
            result = False
            returning = False
            while depth >= 0:
                v = stack_v[depth]
                if returning:
                    returning = False
                    if result:
                        match[v] = stack_u[depth]
                        depth -= 1
                        returning = True
                        continue
                moved = False
                while stack_p[depth] < preds_start[v] + preds_len[v]:
                    u = preds_buf[stack_p[depth]]
                    stack_p[depth] += 1
                    if pred[u] == absent:
                        continue
                    pu = pred[u]
                    pred[u] = absent
                    if pu == first:
                        match[v] = u
                        result = True
                        depth -= 1
                        returning = True
                        moved = True
                        break
                    if has_preds[pu]:  # else recurse(pu) is False at once: the next u
                        has_preds[pu] = False
                        stack_u[depth] = u
                        depth += 1
                        stack_v[depth] = pu
                        stack_p[depth] = preds_start[pu]
                        moved = True
                        break
                if not moved:
                    result = False
                    depth -= 1
                    returning = True
    return match


@numba.njit(cache=True, nogil=True)
def _event_counts(r_on, r_off, r_cls, r_bounds, e_on, e_off, e_cls, e_bounds, collar, share, use_onset, use_offset,
                  optimal, per_class, overall, seconds):  # fmt: skip
    """Adds the event counts of each clip: ``per_class`` (K, 3) Nref, Nsys, Ntp; ``overall`` (4,)
    Nref, Nsys, Ntp, Nsubs; ``seconds[0]`` the latest labeled offsets (sed_eval's evaluated length)."""
    for c in range(r_bounds.shape[0] - 1):
        r0, r1, e0, e1 = r_bounds[c], r_bounds[c + 1], e_bounds[c], e_bounds[c + 1]
        nr = r1 - r0
        ne = e1 - e0
        longest = 0.0
        for j in range(r0, r1):
            per_class[r_cls[j], 0] += 1
            if r_off[j] > longest:
                longest = r_off[j]
        seconds[0] += longest
        for i in range(e0, e1):
            per_class[e_cls[i], 1] += 1
        ref_ok = np.zeros(nr, np.bool_)
        sys_ok = np.zeros(ne, np.bool_)
        if optimal:
            # the hits of the same class, each prediction's labeled events ascending
            deg = np.zeros(ne, np.int64)
            firsts = np.full(ne, nr, np.int64)
            for i in range(ne):
                for j in range(nr):
                    if r_cls[r0 + j] == e_cls[e0 + i] and _hits(r_on, r_off, e_on, e_off, r0 + j, e0 + i, collar,
                                                                 share, use_onset, use_offset):  # fmt: skip
                        deg[i] += 1
                        if firsts[i] == nr:
                            firsts[i] = j
            adj_start = np.zeros(ne + 1, np.int64)
            for i in range(ne):
                adj_start[i + 1] = adj_start[i] + deg[i]
            adj = np.empty(adj_start[ne], np.int64)
            for i in range(ne):
                p = adj_start[i]
                if deg[i]:
                    for j in range(firsts[i], nr):
                        if r_cls[r0 + j] == e_cls[e0 + i] and _hits(r_on, r_off, e_on, e_off, r0 + j, e0 + i, collar,
                                                                     share, use_onset, use_offset):  # fmt: skip
                            adj[p] = j
                            p += 1
            # sed_eval's dict of predictions fills in numpy.where's order: by first labeled event hit, then index
            keys = np.flatnonzero(deg > 0)
            order = keys[np.argsort(firsts[keys] * max(ne, 1) + keys)]
            match = _hopcroft_karp(order, adj_start, adj, nr, ne)
            for j in range(nr):
                if match[j] != -1:
                    ref_ok[j] = True
                    sys_ok[match[j]] = True
        else:
            for j in range(nr):
                for i in range(ne):
                    if (
                        not sys_ok[i]
                        and r_cls[r0 + j] == e_cls[e0 + i]
                        and _hits(r_on, r_off, e_on, e_off, r0 + j, e0 + i, collar, share, use_onset, use_offset)
                    ):
                        ref_ok[j] = True
                        sys_ok[i] = True
                        break
        ntp = 0
        for j in range(nr):
            if ref_ok[j]:
                ntp += 1
                per_class[r_cls[r0 + j], 2] += 1
        # substitutions: each unmatched labeled event, in order, with the first unmatched prediction hitting it
        counted = np.zeros(ne, np.bool_)
        subs = 0
        for j in range(nr):
            if ref_ok[j]:
                continue
            for i in range(ne):
                if not sys_ok[i] and not counted[i] and _hits(r_on, r_off, e_on, e_off, r0 + j, e0 + i, collar, share,
                                                              use_onset, use_offset):  # fmt: skip
                    counted[i] = True
                    subs += 1
                    break
        overall[0] += nr
        overall[1] += ne
        overall[2] += ntp
        overall[3] += subs


# -- reports ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """One row of a report (overall, a class, or the class-wise average), sed_eval's figures: NaN
    where sed_eval gives NaN, ``None`` where the evaluation has no such figure."""

    f1: float
    precision: float
    recall: float
    error_rate: float
    deletion_rate: float
    insertion_rate: float
    #: overall rows only
    substitution_rate: float | None = None
    #: segment-based only
    sensitivity: float | None = None
    specificity: float | None = None
    balanced_accuracy: float | None = None
    accuracy: float | None = None
    #: class rows only: labeled and predicted events (event-based) or active segments (segment-based)
    nref: int | None = None
    nsys: int | None = None

    def sed_eval(self) -> dict[str, dict[str, float]]:
        """This row as sed_eval's ``results()`` shapes it."""
        out: dict[str, dict[str, float]] = {
            "f_measure": {"f_measure": self.f1, "precision": self.precision, "recall": self.recall},
            "error_rate": {"error_rate": self.error_rate, "deletion_rate": self.deletion_rate,
                           "insertion_rate": self.insertion_rate},
            "accuracy": {},
        }  # fmt: skip
        if self.substitution_rate is not None:
            out["error_rate"]["substitution_rate"] = self.substitution_rate
        if self.accuracy is not None:
            out["accuracy"] = {"accuracy": self.accuracy, "balanced_accuracy": self.balanced_accuracy,
                               "sensitivity": self.sensitivity, "specificity": self.specificity}  # type: ignore[dict-item]  # fmt: skip
        if self.nref is not None:
            out["count"] = {"Nref": float(self.nref), "Nsys": float(self.nsys)}  # type: ignore[arg-type]
        return out


@dataclass(frozen=True)
class Report:
    """Sound-event metrics of the clips an accumulator was given."""

    #: "segment" or "event"
    method: str
    #: micro: every segment (or event) of every class counted together
    overall: Figures
    #: per class, in class order
    class_wise: tuple[Figures, ...]
    #: macro: the mean over classes of each figure, NaN ignored
    class_wise_average: Figures
    #: overall counts: Ntp, Nfp, Nfn, Nref, Nsys, and Ntn, S, D, I (segment-based) or Nsubs (event-based)
    counts: dict[str, int]
    evaluated_files: int
    #: seconds evaluated: clip durations (segment-based, else latest offsets), latest labeled offsets (event-based)
    evaluated_seconds: float

    def sed_eval(self, labels: Sequence[str]) -> dict[str, Any]:
        """The report as sed_eval's ``results()`` shapes it, classes named by ``labels``."""
        average = self.class_wise_average.sed_eval()
        return {
            "overall": self.overall.sed_eval(),
            "class_wise": {label: row.sed_eval() for label, row in zip(labels, self.class_wise, strict=True)},
            "class_wise_average": {key: average[key] for key in ("f_measure", "error_rate", "accuracy")},
        }


def _prf(ntp: float, nsys: float, nref: float) -> tuple[float, float, float]:
    precision = math.nan if nsys == 0 else float(ntp / float(nsys))
    recall = math.nan if nref == 0 else float(ntp / float(nref))
    if precision == 0 and recall == 0:
        return 0.0, precision, recall
    return float((1 + 1.0**2) * precision * recall / ((1.0**2) * precision + recall)), precision, recall


def _accuracy(ntp: float, ntn: float, nfp: float, nfn: float) -> dict[str, float]:
    sensitivity = float(ntp / (ntp + nfn + EPS))
    specificity = float(ntn / (ntn + nfp + EPS))
    return {
        "sensitivity": sensitivity,
        "specificity": specificity,
        "balanced_accuracy": float((1 - 0.5) * sensitivity + 0.5 * specificity),
        "accuracy": float((ntp + ntn) / (ntp + ntn + nfn + nfp + EPS)),
    }


def _class_row(ntp: int, nfp: int, nfn: int, nref: int, nsys: int, accuracy: dict[str, float] | None) -> Figures:
    f1, precision, recall = _prf(ntp, nsys, nref)
    deletion = float(nfn / (nref + EPS))
    insertion = float(nfp / (nref + EPS))
    return Figures(f1, precision, recall, float(0.0 + deletion + insertion), deletion, insertion,
                   nref=int(nref), nsys=int(nsys), **(accuracy or {}))  # fmt: skip


def _average(rows: Sequence[Figures]) -> Figures:
    def mean(name: str) -> float | None:
        values = [getattr(r, name) for r in rows]
        if not values or values[0] is None:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a class-wise average of NaN only is NaN, as sed_eval's
            return float(np.nanmean(values))

    names = ("f1", "precision", "recall", "error_rate", "deletion_rate", "insertion_rate")
    extra = ("sensitivity", "specificity", "balanced_accuracy", "accuracy")
    return Figures(*(mean(n) for n in names), **{n: mean(n) for n in extra})  # type: ignore[arg-type]


def _overall(ntp: int, nsys: int, nref: int, subs: int, deletions: int, insertions: int,
             accuracy: dict[str, float] | None) -> Figures:  # fmt: skip
    f1, precision, recall = _prf(ntp, nsys, nref)
    substitution = float(subs / (nref + EPS))
    deletion = float(deletions / (nref + EPS))
    insertion = float(insertions / (nref + EPS))
    return Figures(f1, precision, recall, float(substitution + deletion + insertion), deletion, insertion,
                   substitution_rate=substitution, **(accuracy or {}))  # fmt: skip


class SegmentMetrics:
    """Accumulates sed_eval's segment-based metrics over batches of clips.

    Parameters
    ----------
    classes : int
        K, the number of classes.
    time_resolution : float
        Segment length in seconds, > 0 (sed_eval's default, 1.0).
    """

    def __init__(self, *, classes: int, time_resolution: float = DEFAULT_TIME_RESOLUTION) -> None:
        if not isinstance(classes, int | np.integer) or classes < 1:
            raise ValueError(f"classes is {classes!r}; give the number of classes K >= 1")
        if not (isinstance(time_resolution, int | float) and math.isfinite(time_resolution) and time_resolution > 0):
            raise ValueError(f"time_resolution is {time_resolution!r}; give a segment length in seconds > 0")
        self.classes = int(classes)
        self.time_resolution = float(time_resolution)
        self._per_class = np.zeros((self.classes, 6), np.int64)
        self._overall = np.zeros(9, np.int64)
        self._seconds = np.zeros(1, np.float64)
        self._files = 0

    def add(self, *, reference: Intervals, estimated: Intervals, durations: Any = None) -> None:
        """Counts C clips: their labeled intervals ``reference`` and predicted ones ``estimated`` (one
        clip each per position of their ``bounds``), and optionally each clip's duration in seconds
        (an array (C,), NaN where unknown; a clip without one ends at its latest offset)."""
        d = _pair(reference, estimated, self.classes, durations)
        _segment_counts(reference.onset, reference.offset, reference.cls, reference.bounds, estimated.onset,
                        estimated.offset, estimated.cls, estimated.bounds, d, self.classes, self.time_resolution,
                        self._per_class, self._overall, self._seconds)  # fmt: skip
        self._files += reference.clips

    def report(self) -> Report:
        pc = self._per_class
        rows = tuple(
            _class_row(int(tp), int(fp), int(fn), int(nref), int(nsys), _accuracy(tp, tn, fp, fn))
            for tp, tn, fp, fn, nref, nsys in pc.tolist()
        )
        tp, tn, fp, fn, nref, nsys = (int(v) for v in pc.sum(axis=0))
        s, d, i = (int(v) for v in self._overall[6:9])
        counts = {"Ntp": tp, "Ntn": tn, "Nfp": fp, "Nfn": fn, "Nref": nref, "Nsys": nsys, "S": s, "D": d, "I": i}
        return Report("segment", _overall(tp, nsys, nref, s, d, i, _accuracy(tp, tn, fp, fn)), rows, _average(rows),
                      counts, self._files, float(self._seconds[0]))  # fmt: skip


class EventMetrics:
    """Accumulates sed_eval's event-based metrics over batches of clips.

    Parameters
    ----------
    classes : int
        K, the number of classes.
    t_collar : float
        Onset collar, and the least offset collar, in seconds, > 0 (0.2).
    percentage_of_length : float
        The offset collar as a share of the labeled event's length, in [0, 1] (0.5).
    evaluate_onset, evaluate_offset : bool
        Which conditions a hit needs (both; not neither).
    matching : str
        ``"optimal"`` (maximum matching, sed_eval's default) or ``"greedy"``.
    """

    def __init__(
        self,
        *,
        classes: int,
        t_collar: float = DEFAULT_T_COLLAR,
        percentage_of_length: float = DEFAULT_PERCENTAGE_OF_LENGTH,
        evaluate_onset: bool = True,
        evaluate_offset: bool = True,
        matching: str = "optimal",
    ) -> None:
        if not isinstance(classes, int | np.integer) or classes < 1:
            raise ValueError(f"classes is {classes!r}; give the number of classes K >= 1")
        if not (isinstance(t_collar, int | float) and math.isfinite(t_collar) and t_collar > 0):
            raise ValueError(f"t_collar is {t_collar!r}; give a collar in seconds > 0")
        if not (isinstance(percentage_of_length, int | float) and 0 <= percentage_of_length <= 1):
            raise ValueError(f"percentage_of_length is {percentage_of_length!r}; give a share of the length in [0, 1]")
        if not evaluate_onset and not evaluate_offset:
            raise ValueError("evaluate_onset and evaluate_offset are both False; evaluate at least one")
        if matching not in MATCHINGS:
            raise ValueError(f"matching is {matching!r}; use one of {', '.join(MATCHINGS)}")
        self.classes = int(classes)
        self.t_collar = float(t_collar)
        self.percentage_of_length = float(percentage_of_length)
        self.evaluate_onset = bool(evaluate_onset)
        self.evaluate_offset = bool(evaluate_offset)
        self.matching = matching
        self._per_class = np.zeros((self.classes, 3), np.int64)
        self._overall = np.zeros(4, np.int64)
        self._seconds = np.zeros(1, np.float64)
        self._files = 0

    def add(self, *, reference: Intervals, estimated: Intervals, durations: Any = None) -> None:
        """Counts C clips (as :meth:`SegmentMetrics.add`; durations are only checked against the
        intervals, the event-based figures do not depend on them)."""
        _pair(reference, estimated, self.classes, durations)
        _event_counts(reference.onset, reference.offset, reference.cls, reference.bounds, estimated.onset,
                      estimated.offset, estimated.cls, estimated.bounds, self.t_collar, self.percentage_of_length,
                      self.evaluate_onset, self.evaluate_offset, self.matching == "optimal", self._per_class,
                      self._overall, self._seconds)  # fmt: skip
        self._files += reference.clips

    def report(self) -> Report:
        rows = tuple(
            _class_row(tp, nsys - tp, nref - tp, nref, nsys, None) for nref, nsys, tp in self._per_class.tolist()
        )
        nref, nsys, tp, subs = (int(v) for v in self._overall)
        fp, fn = nsys - tp - subs, nref - tp - subs
        counts = {"Ntp": tp, "Nfp": fp, "Nfn": fn, "Nref": nref, "Nsys": nsys, "Nsubs": subs}
        return Report("event", _overall(tp, nsys, nref, subs, fn, fp, None), rows, _average(rows), counts,
                      self._files, float(self._seconds[0]))  # fmt: skip
