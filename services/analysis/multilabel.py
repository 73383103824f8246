"""Multi-label classification metrics: each frame has any number of classes, and a model gives a
score per class. Every class is judged on its own (the frame has it, or not), a frame predicted to
have a class when its score is at or above the threshold; the figures are scikit-learn's (its
``precision_recall_fscore_support``, ``average_precision_score``, ``accuracy_score`` as subset
accuracy and ``hamming_loss`` on the label and prediction indicator matrices).

The latest label version of each frame gives its classes (``label_versions.class_ids``), and the
inference set's row its scores (``inferences.probs``, in the order of the ontology); frames are
read column by column and held as two frames x classes matrices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shoal.common.stores.metrics import MetricsStore

#: the threshold a request without one gets
DEFAULT_THRESHOLD = 0.5


@dataclass
class MultiLabelReport:
    frames: int
    threshold: float
    micro: tuple[float, float, float]
    macro: tuple[float, float, float]
    mean_average_precision: float
    subset_accuracy: float
    hamming_loss: float
    #: per class of the ontology, in order: precision, recall, f1, average precision (-1 without
    #: support), support, predicted
    per_class: list[tuple[float, float, float, float, int, int]] = field(default_factory=list)


def load(
    metrics: MetricsStore,
    project: str,
    dataset: str,
    inference_set: str,
    ontology: list[int],
    frames_sql: str = "",
    frames_params: dict[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The labeled frames with a prediction (those ``frames_sql`` selects, when given): their ids,
    their labels as a frames x classes indicator matrix, and their scores, in frame-id order."""
    within = f" AND frame_id IN ({frames_sql})" if frames_sql else ""
    mine = "project = {project:String} AND dataset = {dataset:String}" + within
    table = metrics.query_arrow(
        "SELECT l.frame_id AS frame_id, l.class_ids AS class_ids, i.probs AS probs"
        " FROM (SELECT frame_id, argMax(class_ids, (version_time, label_version)) AS class_ids"
        f" FROM label_versions WHERE {mine} GROUP BY frame_id) AS l"
        " INNER JOIN (SELECT frame_id, probs FROM inferences FINAL WHERE project = {project:String}"
        f" AND inference_set = {{set:String}}{within}) AS i ON i.frame_id = l.frame_id"
        " ORDER BY frame_id",
        {"project": project, "dataset": dataset, "set": inference_set, **(frames_params or {})},
    )
    n, k = table.num_rows, len(ontology)
    ids = np.asarray(table.column("frame_id").to_pylist(), dtype=object)
    labels = np.zeros((n, k), dtype=bool)
    scores = np.zeros((n, k), dtype=np.float64)
    if n == 0:
        return ids, labels, scores
    classes = table.column("class_ids").combine_chunks()
    counts = np.diff(np.asarray(classes.offsets))
    rows = np.repeat(np.arange(n), counts)
    values = np.asarray(classes.values, dtype=np.int64)
    position = {c: i for i, c in enumerate(ontology)}
    cols = np.fromiter((position.get(int(v), -1) for v in values), dtype=np.int64, count=len(values))
    known = cols >= 0
    labels[rows[known], cols[known]] = True
    probs = table.column("probs").combine_chunks()
    flat = np.asarray(probs.values, dtype=np.float64)
    if len(flat) == n * k:
        scores = flat.reshape(n, k)
    else:  # rows of another length (a set uploaded before the ontology grew): per row, zeros beyond
        lengths = np.diff(np.asarray(probs.offsets))
        starts = np.asarray(probs.offsets)[:-1]
        for r in range(n):
            m = min(int(lengths[r]), k)
            scores[r, :m] = flat[starts[r] : starts[r] + m]
    return ids, labels, scores


def report(labels: np.ndarray, scores: np.ndarray, threshold: float) -> MultiLabelReport:
    """The metrics of ``labels`` (frames x classes, bool) against ``scores`` at ``threshold``."""
    from sklearn.metrics import accuracy_score, average_precision_score, hamming_loss, precision_recall_fscore_support

    n, k = labels.shape
    predicted = scores >= threshold
    if n == 0:
        zero = (0.0, 0.0, 0.0)
        return MultiLabelReport(0, threshold, zero, zero, -1.0, 0.0, 0.0,
                                [(0.0, 0.0, 0.0, -1.0, 0, 0)] * k)  # fmt: skip
    p, r, f, support = precision_recall_fscore_support(labels, predicted, average=None, zero_division=0)
    micro = precision_recall_fscore_support(labels, predicted, average="micro", zero_division=0)[:3]
    macro = precision_recall_fscore_support(labels, predicted, average="macro", zero_division=0)[:3]
    ap = np.full(k, -1.0)
    for c in np.flatnonzero(support > 0):
        ap[c] = average_precision_score(labels[:, c], scores[:, c])
    per_class = [
        (float(p[c]), float(r[c]), float(f[c]), float(ap[c]), int(support[c]), int(predicted[:, c].sum()))
        for c in range(k)
    ]
    return MultiLabelReport(
        frames=n,
        threshold=threshold,
        micro=tuple(float(v) for v in micro),  # type: ignore[arg-type]
        macro=tuple(float(v) for v in macro),  # type: ignore[arg-type]
        mean_average_precision=float(ap[ap >= 0].mean()) if (ap >= 0).any() else -1.0,
        subset_accuracy=float(accuracy_score(labels, predicted)),
        hamming_loss=float(hamming_loss(labels, predicted)),
        per_class=per_class,
    )


#: QueryMultiLabelFrames' outcomes: which frames, and their order
OUTCOMES = {
    1: ("NOT has(l.class_ids, {c:Int32}) AND s >= {t:Float64}", "s DESC, frame_id"),  # false positives
    2: ("has(l.class_ids, {c:Int32}) AND s < {t:Float64}", "s ASC, frame_id"),  # false negatives
    3: ("has(l.class_ids, {c:Int32}) AND s >= {t:Float64}", "s DESC, frame_id"),  # true positives
}


def frames(
    metrics: MetricsStore,
    project: str,
    dataset: str,
    inference_set: str,
    ontology: list[int],
    class_id: int,
    outcome: int,
    threshold: float,
    frames_sql: str = "",
    frames_params: dict[str, Any] | None = None,
    *,
    offset: int = 0,
    size: int = 100,
) -> tuple[list[tuple[Any, ...]], int]:
    """A page of the frames of one outcome of a class at ``threshold`` (see :data:`OUTCOMES`):
    rows (frame id, the class's score, labeled classes, predicted classes), and how many there are."""
    within = f" AND frame_id IN ({frames_sql})" if frames_sql else ""
    mine = "project = {project:String} AND dataset = {dataset:String}" + within
    where, order = OUTCOMES[outcome]
    params = {"project": project, "dataset": dataset, "set": inference_set, "c": class_id, "t": float(threshold),
              "pos": ontology.index(class_id) + 1, "ontology": ontology, "offset": offset, "size": size,
              **(frames_params or {})}  # fmt: skip
    joined = (
        "SELECT l.frame_id AS frame_id, toFloat64(i.probs[{pos:UInt32}]) AS s, l.class_ids AS labeled,"
        " arrayFilter((c, p) -> p >= {t:Float64}, {ontology:Array(Int32)},"
        " arrayResize(i.probs, length({ontology:Array(Int32)}), 0)) AS predicted"
        " FROM (SELECT frame_id, argMax(class_ids, (version_time, label_version)) AS class_ids"
        f" FROM label_versions WHERE {mine} GROUP BY frame_id) AS l"
        " INNER JOIN (SELECT frame_id, probs FROM inferences FINAL WHERE project = {project:String}"
        f" AND inference_set = {{set:String}}{within}) AS i ON i.frame_id = l.frame_id"
        f" WHERE {where}"
    )
    rows = metrics.query(
        f"SELECT frame_id, s, labeled, predicted, count() OVER () FROM ({joined}) ORDER BY {order}"
        " LIMIT {size:UInt32} OFFSET {offset:UInt64}",
        params,
    ).rows
    if rows:
        return [tuple(r[:4]) for r in rows], int(rows[0][4])
    return [], int(metrics.query(f"SELECT count() FROM ({joined})", params).scalar() or 0)


@dataclass(frozen=True)
class Comparison:
    baseline: MultiLabelReport
    candidate: MultiLabelReport
    #: frames with fewer (more) classes wrong in the candidate than in the baseline
    improved: int
    regressed: int


def compare(
    metrics: MetricsStore,
    project: str,
    dataset: str,
    baseline: str,
    candidate: str,
    ontology: list[int],
    threshold: float,
    frames_sql: str = "",
    frames_params: dict[str, Any] | None = None,
) -> Comparison:
    """Both sets measured at ``threshold`` on the labeled frames both predict."""
    b_ids, b_labels, b_scores = load(metrics, project, dataset, baseline, ontology, frames_sql, frames_params)
    c_ids, _, c_scores = load(metrics, project, dataset, candidate, ontology, frames_sql, frames_params)
    _, bi, ci = np.intersect1d(b_ids.astype(str), c_ids.astype(str), return_indices=True)
    labels = b_labels[bi]
    b_wrong = ((b_scores[bi] >= threshold) != labels).sum(axis=1)
    c_wrong = ((c_scores[ci] >= threshold) != labels).sum(axis=1)
    return Comparison(
        report(labels, b_scores[bi], threshold),
        report(labels, c_scores[ci], threshold),
        int((c_wrong < b_wrong).sum()),
        int((c_wrong > b_wrong).sum()),
    )


def gate_summary(r: MultiLabelReport, ontology: list[int]) -> Any:
    """What regression gates read of a report (a class's average precision is 0 without support)."""
    from types import SimpleNamespace

    per_class = [
        SimpleNamespace(class_id=c, precision=p, recall=rc, f1=f, average_precision=max(ap, 0.0))
        for c, (p, rc, f, ap, _, _) in zip(ontology, r.per_class, strict=True)
    ]
    return SimpleNamespace(frames=r.frames, micro_f1=r.micro[2], macro=r.macro, subset_accuracy=r.subset_accuracy,
                           per_class=per_class)  # fmt: skip


def slice_counts(
    metrics: MetricsStore,
    project: str,
    dataset: str,
    inference_set: str,
    ontology: list[int],
    threshold: float,
    groups_sql: str,
    groups_params: dict[str, Any],
) -> list[tuple[str, int, int, int]]:
    """Per group of frames (``groups_sql`` selects ``frame_id, g``): (value, frames, frames, frames
    whose predicted classes at ``threshold`` are exactly their labeled ones)."""
    params = {"project": project, "dataset": dataset, "set": inference_set, "t": float(threshold),
              "ontology": ontology, **groups_params}  # fmt: skip
    rows = metrics.query(
        "SELECT s.g AS g, count(), countIf(arraySort(l.class_ids) = arraySort(arrayFilter((c, p) -> p >= {t:Float64},"
        " {ontology:Array(Int32)}, arrayResize(i.probs, length({ontology:Array(Int32)}), 0))))"
        " FROM (SELECT frame_id, argMax(class_ids, (version_time, label_version)) AS class_ids FROM label_versions"
        " WHERE project = {project:String} AND dataset = {dataset:String} GROUP BY frame_id) AS l"
        " INNER JOIN (SELECT frame_id, probs FROM inferences FINAL WHERE project = {project:String}"
        " AND inference_set = {set:String}) AS i ON i.frame_id = l.frame_id"
        f" INNER JOIN ({groups_sql}) AS s ON s.frame_id = l.frame_id GROUP BY g ORDER BY g",
        params,
    ).rows
    return [(str(g), int(n), int(n), int(right)) for g, n, right in rows]
