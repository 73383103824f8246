"""Object metrics (2-D boxes, instance masks, keypoints): the latest labeled objects and an
inference set's predicted ones, read from ClickHouse column by column (Arrow to numpy, no Python
object per box), evaluated COCO-style.

Score ties are broken as pycocotools breaks them (its images in the order of their sorted integer
ids, the detections of an image in results-file order): frames are taken in frame-id order, by
integer value when every frame id of the dataset is an integer (``9`` before ``10``, as COCO's image
ids) and as text otherwise; the objects of a frame in object-id order (as text), so ids that sort
in upload order (zero-padded positions, as the COCO importer gives) keep the upload order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shoal.analysis.classification import Cells, PerClass, per_class_metrics
from shoal.analysis.coco import PARAMS, Boxes, CocoResult, evaluate_chunks
from shoal.analysis.cuboid_objects import CuboidFilter, cuboids_sql
from shoal.common.data.datasets import frame_media
from shoal.common.data.frames import latest_labels_sql
from shoal.common.data.outcomes import OutcomeRefresher, iou_key
from shoal.common.data.query import Params, Sort, after, order_by
from shoal.common.similarity import BOXES, ObjectArrays, Shapes, from_columns
from shoal.common.stores.metrics import MetricsStore, Migration

MIGRATIONS = (
    Migration(
        component="analysis",
        version=2,
        name="detection matches",
        statements=(
            # class -1: the "false positive" row (label) or the "missed" column (prediction)
            "CREATE TABLE IF NOT EXISTS detection_matches ("
            " project LowCardinality(String), run_id String, inference_set LowCardinality(String),"
            " dataset LowCardinality(String), iou_threshold Float64, confidence_threshold Float64,"
            " frame_id String, label_object_id String, predicted_object_id String,"
            " label_class Int32, predicted_class Int32, iou Float32, score Nullable(Float32),"
            " created DateTime DEFAULT now())"
            " ENGINE = MergeTree PARTITION BY toDate(created)"
            " ORDER BY (project, run_id, label_class, predicted_class, frame_id, label_object_id, predicted_object_id)"
            " TTL created + INTERVAL 7 DAY",
        ),
    ),
    Migration(
        component="analysis",
        version=3,
        name="detection matches kept per frame at ingest (detection_outcomes)",
        statements=("DROP TABLE IF EXISTS detection_matches",),
    ),
)


@dataclass
class DetectionReport:
    frames: int
    ground_truth: int
    predicted: int
    result: CocoResult
    gt_per_class: dict[int, int]
    dt_per_class: dict[int, int]


def _codes(frame_ids: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Position of each frame id in the sorted list of the dataset's frame ids."""
    return np.searchsorted(order, frame_ids).astype(np.int64)


#: frame ids ordered by their integer value: an optional minus sign and at most 18 digits (Int64)
INTEGER_ID = "^-?[0-9]{1,18}$"


def evaluation_order(numbers: np.ndarray | None, n: int) -> np.ndarray:
    """The order in which the ``n`` frames (sorted as text) are evaluated: by ``numbers`` (each
    frame id's integer value, text order among equal values) when every frame id is an integer
    (``numbers`` not None), else the text order."""
    if numbers is None:
        return np.arange(n, dtype=np.int64)
    return np.lexsort((np.arange(n), np.asarray(numbers, dtype=np.int64))).astype(np.int64)


#: frames whose objects are read and matched at a time by :func:`detection_report`
REPORT_CHUNK_FRAMES = 20_000


def detection_report(
    metrics: MetricsStore,
    project: str,
    dataset: str,
    inference_set: str,
    classes: list[int],
    shapes: Shapes = BOXES,
    chunk_frames: int = REPORT_CHUNK_FRAMES,
) -> DetectionReport:
    """COCO's evaluation of the set's objects against the latest labels, comparing boxes, masks or
    keypoints as ``shapes`` says. The frames are read and matched ``chunk_frames`` at a time, in
    evaluation order, so the objects (and their masks) of one chunk are held at once."""
    frames, numbers = frame_order(metrics, project, dataset)
    order = evaluation_order(numbers, len(frames))
    gt_counts: dict[int, int] = {}
    dt_counts: dict[int, int] = {}

    def chunks() -> Iterator[tuple[Boxes, Boxes, np.ndarray]]:
        for start in range(0, max(len(order), 1), chunk_frames):
            part = order[start : start + chunk_frames]
            data = load_boxes(metrics, project, dataset, inference_set, shapes.columns, frames[part])
            gt = from_columns(data.gt, shapes.kind, predicted=False)
            dt = from_columns(data.dt, shapes.kind, predicted=True)
            for counts, objects in ((gt_counts, gt), (dt_counts, dt)):
                for c, n in zip(*np.unique(objects.category, return_counts=True), strict=True):
                    counts[int(c)] = counts.get(int(c), 0) + int(n)
            # the objects as read (COCO compares no cuboids), with their frames' codes (and the predictions' scores)
            yield (
                Boxes(image=_codes(np.asarray(data.gt["frame_id"], dtype=object), frames), **_coco_shapes(gt)),
                Boxes(image=_codes(np.asarray(data.dt["frame_id"], dtype=object), frames),
                      score=np.asarray(data.dt["score"], dtype=np.float64), **_coco_shapes(dt)),
                part,
            )  # fmt: skip

    result = evaluate_chunks(chunks(), list(classes), PARAMS[shapes.kind], dict(shapes.sigmas))
    return DetectionReport(len(frames), sum(gt_counts.values()), sum(dt_counts.values()), result, gt_counts, dt_counts)


def _coco_shapes(objects: ObjectArrays) -> dict[str, Any]:
    """The fields of ``objects`` a COCO :class:`Boxes` takes (all but cuboids)."""
    return {name: value for name, value in vars(objects).items() if name != "cuboids"}


@dataclass
class Loaded:
    gt: dict[str, np.ndarray]
    dt: dict[str, np.ndarray]


def frame_order(metrics: MetricsStore, project: str, dataset: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The dataset's frame ids, sorted, and their integer values when every frame id is an integer."""
    cols = metrics.query_columns(
        "SELECT frame_id, match(frame_id, {integer:String}) AS is_integer, toInt64OrZero(frame_id) AS number"
        " FROM (SELECT DISTINCT frame_id FROM frames WHERE project = {project:String} AND dataset = {dataset:String})"
        " ORDER BY frame_id",
        {"project": project, "dataset": dataset, "integer": INTEGER_ID},
    )
    frames = np.asarray(cols["frame_id"], dtype=object)
    numbers = None
    if len(frames) and np.asarray(cols["is_integer"], dtype=bool).all():
        numbers = np.asarray(cols["number"], dtype=np.int64)
    return frames, numbers


def load_boxes(
    metrics: MetricsStore,
    project: str,
    dataset: str,
    inference_set: str,
    columns: Sequence[str] = (),
    frame_ids: np.ndarray | None = None,
) -> Loaded:
    """The latest labeled objects of the dataset's frames (of ``frame_ids`` when given) and the set's
    predicted ones, their boxes and ``columns`` besides, as columns sorted by frame id then object id."""
    params: dict[str, Any] = {"project": project, "dataset": dataset, "set": inference_set}
    scope = ""
    if frame_ids is not None:
        scope = "frame_id IN {ids:Array(String)}"
        params["ids"] = sorted(str(f) for f in frame_ids)
    gt = metrics.query_columns(f"{latest_labels_sql(scope, columns)} ORDER BY o.frame_id, o.object_id", params)
    extra = "".join(f", {c}" for c in columns)
    dt = metrics.query_columns(
        f"SELECT frame_id, object_id, class_id, score, x, y, w, h{extra} FROM predicted_objects FINAL"
        " WHERE project = {project:String} AND inference_set = {set:String}"
        + (f" AND {scope}" if scope else "")
        + " ORDER BY frame_id, object_id",
        params,
    )
    return Loaded(gt, dt)


@dataclass
class Confusion:
    #: the ontology, in order
    class_ids: list[int]
    #: the (K+1) x (K+1) matrix as its non-zero cells: last row "false positive", last column "missed"
    cells: Cells
    ignored: int

    @property
    def counts(self) -> np.ndarray:
        """The dense (K+1) x (K+1) matrix; for a large ontology use :meth:`Cells.matrix`."""
        dense = np.zeros((self.cells.k + 1, self.cells.k + 1), dtype=np.int64)
        np.add.at(dense, (self.cells.rows, self.cells.cols), self.cells.counts)
        return dense


#: the outcomes of a set at an IoU threshold, one row per object, as a confusion matrix at a
#: confidence threshold counts them: label_class -2 marks a crowd-ignored prediction, -1 the
#: false-positive row; predicted_class -1 the missed column
_OUTCOMES = (
    "SELECT (k = 0 AND score_ >= {conf:Float64}) AS m, frame_id, label_object_id,"
    " if(m OR k = 2, predicted_object_id_, '') AS predicted_object_id,"
    " if(k = 1, -2, label_class_) AS label_class, if(m OR k = 2, predicted_class_, -1) AS predicted_class,"
    " if(m OR k = 2, iou_, 0) AS iou, if(m OR k = 2, score_, NULL) AS score"
    " FROM (SELECT frame_id, kinds, label_object_ids, predicted_object_ids, label_classes, predicted_classes,"
    " ious, scores FROM detection_outcomes FINAL WHERE project = {project:String} AND inference_set = {set:String}"
    " AND iou_threshold = {iou:Float64}{frames})"
    " ARRAY JOIN kinds AS k, label_object_ids AS label_object_id, predicted_object_ids AS predicted_object_id_,"
    " label_classes AS label_class_, predicted_classes AS predicted_class_, ious AS iou_, scores AS score_"
    # a match below the confidence threshold leaves its labeled box missed; other predictions
    # below it drop out
    " WHERE k IN (0, 3) OR score_ >= {conf:Float64}"
)


def _ensure_matched(metrics: MetricsStore, project: str, dataset: str, inference_set: str, iou: float) -> None:
    refresher = OutcomeRefresher(metrics)
    if not refresher.is_complete(project, dataset, inference_set, iou):
        refresher.materialize(project, dataset, inference_set, iou)


def _outcomes(frames_sql: str = "") -> str:
    return _OUTCOMES.replace("{frames}", f" AND frame_id IN ({frames_sql})" if frames_sql else "")


def _params(project: str, inference_set: str, iou: float, conf: float, extra: dict[str, Any] | None) -> dict[str, Any]:
    return {"project": project, "set": inference_set, "iou": iou, "conf": float(conf), **(extra or {})}


def detection_confusion(
    metrics: MetricsStore,
    project: str,
    dataset: str,
    inference_set: str,
    classes: list[int],
    *,
    iou_threshold: float,
    confidence_threshold: float,
    frames_sql: str = "",
    frames_params: dict[str, Any] | None = None,
) -> Confusion:
    """Global matching across classes, frame by frame: predictions at or above the confidence
    threshold, by descending score (ties by object id), each take the unmatched regular labeled
    box of any class with the highest IoU at or above the threshold (ties: the lower object id);
    one that takes none but overlaps a crowd region that much is ignored, else it is a false
    positive; regular labeled boxes left unmatched are missed.

    Counted from the stored outcomes (``shoal.common.data.outcomes``): one aggregation. ``frames_sql``
    (a SELECT of frame ids, with ``frames_params``) restricts it to those frames."""
    iou = iou_key(iou_threshold)
    _ensure_matched(metrics, project, dataset, inference_set, iou)
    rows = metrics.query(
        f"SELECT label_class, predicted_class, count() FROM ({_outcomes(frames_sql)})"
        " GROUP BY label_class, predicted_class",
        _params(project, inference_set, iou, confidence_threshold, frames_params),
    ).rows
    k = len(classes)
    index = {c: i for i, c in enumerate(classes)}
    cell_rows: list[int] = []
    cell_cols: list[int] = []
    cell_counts: list[int] = []
    ignored = 0
    for label, predicted, n in rows:
        if label == -2:
            ignored += int(n)
            continue
        cell_rows.append(index.get(int(label), k))
        cell_cols.append(index.get(int(predicted), k))
        cell_counts.append(int(n))
    cells = Cells.from_pairs(k, cell_rows, cell_cols, cell_counts, false_positive_row=True)
    return Confusion(list(classes), cells, ignored)


def frame_errors_sql(
    metrics: MetricsStore,
    project: str,
    dataset: str,
    inference_set: str,
    *,
    iou_threshold: float,
    confidence_threshold: float,
    frames_sql: str = "",
    frames_params: dict[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """A SELECT of (frame_id, is_error, pairs) over the frames holding outcomes: a frame is an
    error when a labeled box is missed or matched with another class, or a prediction is a false
    positive; ``pairs`` are its distinct wrong (label class, predicted class), -1 for none."""
    iou = iou_key(iou_threshold)
    _ensure_matched(metrics, project, dataset, inference_set, iou)
    wrong = "label_class != -2 AND label_class != predicted_class"
    sql = (
        f"SELECT frame_id, toUInt8(countIf({wrong}) > 0) AS is_error,"
        f" groupUniqArrayIf((toInt32(label_class), toInt32(predicted_class)), {wrong}) AS pairs"
        f" FROM ({_outcomes(frames_sql)}) GROUP BY frame_id"
    )
    return sql, _params(project, inference_set, iou, confidence_threshold, frames_params)


@dataclass
class DetectionSummary:
    """Per-class precision (false positives count against it), recall (missed boxes count) and
    F1 of a detection confusion matrix; accuracy is the matches of the right class over every
    outcome (matches, false positives and missed boxes)."""

    frames: int
    objects: int
    accuracy: float
    per_class: list[PerClass]
    macro: tuple[float, float, float]
    weighted: tuple[float, float, float]


def summarize_confusion(c: Confusion, frames: int = 0) -> DetectionSummary:
    cells = c.cells
    per_class, macro, weighted, _ = per_class_metrics(cells, c.class_ids)
    total = cells.total()
    right = int(cells.counts[cells.rows == cells.cols].sum())
    accuracy = right / total if total else 0.0
    return DetectionSummary(frames, total, accuracy, per_class, macro, weighted)


def outcome_frames(
    metrics: MetricsStore,
    project: str,
    inference_set: str,
    iou: float,
    frames_sql: str = "",
    frames_params: dict[str, Any] | None = None,
) -> int:
    """How many frames hold outcomes (any labeled or predicted box) in ``frames_sql``."""
    return int(
        metrics.query(
            f"SELECT uniqExact(frame_id) FROM ({_outcomes(frames_sql)})",
            _params(project, inference_set, iou_key(iou), 0.0, frames_params),
        ).scalar()
    )


def slice_counts(
    metrics: MetricsStore,
    project: str,
    dataset: str,
    inference_set: str,
    *,
    iou_threshold: float,
    confidence_threshold: float,
    groups_sql: str,
    groups_params: dict[str, Any],
) -> list[tuple[str, int, int, int]]:
    """(group, frames, outcomes, matches of the right class) per group of ``groups_sql`` (a
    SELECT of frame_id and g)."""
    iou = iou_key(iou_threshold)
    _ensure_matched(metrics, project, dataset, inference_set, iou)
    rows = metrics.query(
        f"SELECT v.g, uniqExact(o.frame_id), count(), countIf(o.label_class = o.predicted_class)"
        f" FROM ({_outcomes()}) AS o INNER JOIN ({groups_sql}) AS v ON v.frame_id = o.frame_id"
        " WHERE o.label_class != -2 GROUP BY v.g ORDER BY v.g",
        _params(project, inference_set, iou, confidence_threshold, groups_params),
    ).rows
    return [(str(g), int(f), int(n), int(c)) for g, f, n, c in rows]


def _object_changes(frames_sql: str) -> str:
    """SQL: per labeled box matched by both sets (``{set:String}``, the candidate, and
    ``{baseline:String}``), whether each found it with its class (``cand``, ``base``)."""
    one = "SELECT {{{name}:String}} AS s, frame_id, label_object_id, label_class = predicted_class AS ok FROM ({sql})"
    cand = one.format(name="set", sql=_outcomes(frames_sql))
    base = one.format(name="baseline", sql=_outcomes(frames_sql).replace("{set:String}", "{baseline:String}"))
    return (
        "SELECT frame_id, label_object_id, maxIf(ok, s = {set:String}) AS cand, maxIf(ok, s = {baseline:String})"
        f" AS base, countIf(s = {{set:String}}) AS in_cand, countIf(s = {{baseline:String}}) AS in_base"
        f" FROM ({cand} UNION ALL {base}) WHERE label_object_id != '' GROUP BY frame_id, label_object_id"
        " HAVING in_cand > 0 AND in_base > 0"
    )


@dataclass
class DetectionComparison:
    baseline: DetectionSummary
    candidate: DetectionSummary
    #: labeled boxes both sets were matched against
    objects: int
    improved: int
    regressed: int


def compare_detection(
    metrics: MetricsStore,
    project: str,
    dataset: str,
    baseline: str,
    candidate: str,
    classes: list[int],
    *,
    iou_threshold: float,
    confidence_threshold: float,
    frames_sql: str = "",
    frames_params: dict[str, Any] | None = None,
) -> DetectionComparison:
    """Both sets' per-class metrics on the same frames, and the labeled boxes the candidate finds
    with their class and the baseline does not (improved), or the other way round (regressed)."""
    iou = iou_key(iou_threshold)
    summaries = []
    for name in (baseline, candidate):
        c = detection_confusion(metrics, project, dataset, name, classes, iou_threshold=iou,
                                confidence_threshold=confidence_threshold, frames_sql=frames_sql,
                                frames_params=frames_params)  # fmt: skip
        summaries.append(summarize_confusion(c, outcome_frames(metrics, project, name, iou, frames_sql, frames_params)))
    params = {**_params(project, candidate, iou, confidence_threshold, frames_params), "baseline": baseline}
    objects, improved, regressed = metrics.query(
        f"SELECT count(), countIf(cand AND NOT base), countIf(base AND NOT cand) FROM ({_object_changes(frames_sql)})",
        params,
    ).rows[0]
    return DetectionComparison(summaries[0], summaries[1], int(objects), int(improved), int(regressed))


@dataclass(frozen=True)
class MatchQuery:
    """Which objects of a confusion matrix to list (see ``QueryDetectionMatchesRequest``)."""

    inference_set: str
    iou_threshold: float
    confidence_threshold: float
    #: None: any; -1: the false-positive row (label) or the missed column (predicted)
    label_class: int | None
    predicted_class: int | None
    min_score: float | None = None
    max_score: float | None = None
    min_iou: float | None = None
    max_iou: float | None = None
    #: a DetectionMatchOrder value
    order: int = 0
    #: with ``change`` ("improved" or "regressed"): the labeled boxes whose outcome changed against this set
    baseline_inference_set: str = ""
    change: str = ""
    #: only rows whose labeled or predicted object is a member of this segment
    object_segment: str = ""
    #: cuboid projects: the distance range (metres) from the ego vehicle of the labeled cuboid's centre (a
    #: false positive's: the predicted one's), and the range of points inside the labeled cuboid
    min_distance: float | None = None
    max_distance: float | None = None
    min_points: int | None = None
    max_points: int | None = None


#: sort keys per DetectionMatchOrder, without NULLs (missed boxes have no score: they come last)
ORDERS = {
    0: (Sort("ifNull(score, -1)", "number", True, False),),
    1: (Sort("ifNull(score, 2)", "number", False, False),),
    2: (Sort("iou", "number", False, False),),
    3: (Sort("iou", "number", True, False),),
}
#: after the order's key: every position unique
MATCH_TIE_BREAK = tuple(Sort(c, "string", False, False) for c in ("frame_id", "label_object_id", "predicted_object_id"))


def query_matches(
    metrics: MetricsStore,
    project: str,
    dataset: str,
    q: MatchQuery,
    size: int,
    last: list[Any] | None = None,
    frames_sql: str = "",
    frames_params: dict[str, Any] | None = None,
) -> tuple[list[tuple], int, list[Any] | None]:  # type: ignore[type-arg]
    """The objects ``q`` selects, in its order (ties: frame, labeled object, predicted object),
    strictly after the sort values ``last``; their count; and the sort values of the page's last
    row when more follow. ``frames_sql`` (a SELECT of frame ids) narrows them to those frames."""
    iou = iou_key(q.iou_threshold)
    _ensure_matched(metrics, project, dataset, q.inference_set, iou)
    params = Params(_params(project, q.inference_set, iou, q.confidence_threshold, frames_params))
    params.values["dataset"] = dataset
    where = ["label_class != -2"]
    for column, op, value, kind in (
        ("label_class", "=", q.label_class, "Int32"),
        ("predicted_class", "=", q.predicted_class, "Int32"),
        ("score", ">=", q.min_score, "Float64"),
        ("score", "<=", q.max_score, "Float64"),
        ("iou", ">=", q.min_iou, "Float64"),
        ("iou", "<=", q.max_iou, "Float64"),
    ):
        if value is not None:
            where.append(f"{column} {op} {params.add(value, kind)}")
    if q.change:
        _ensure_matched(metrics, project, dataset, q.baseline_inference_set, iou)
        params.values["baseline"] = q.baseline_inference_set
        which = "cand AND NOT base" if q.change == "improved" else "base AND NOT cand"
        where.append(
            f"(frame_id, label_object_id) IN (SELECT frame_id, label_object_id FROM ({_object_changes(frames_sql)})"
            f" WHERE {which})"
        )
    if q.object_segment:
        members = (
            "SELECT frame_id, object_id FROM segment_members FINAL WHERE project = {project:String}"
            f" AND segment = {params.add(q.object_segment, 'String')} AND object_id != '' AND removed = 0"
        )
        where.append(f"((frame_id, label_object_id) IN ({members}) OR (frame_id, predicted_object_id) IN ({members}))")
    where += _cuboid_conditions(q, params, frames_sql)
    selected = f"SELECT * FROM ({_outcomes(frames_sql)}) WHERE {' AND '.join(where)}"
    total = int(metrics.query(f"SELECT count() FROM ({selected})", params.values).scalar())
    sorts = [*ORDERS[q.order], *MATCH_TIE_BREAK]
    page_where = f" WHERE {after(sorts, last, params)}" if last is not None else ""
    keys = ", ".join(f"{x.sql} AS _k{i}" for i, x in enumerate(sorts))
    limit = params.add(size + 1, "UInt32")
    rows = metrics.query(
        f"SELECT frame_id, label_object_id, predicted_object_id, label_class, predicted_class, iou, score, {keys}"
        f" FROM ({selected}){page_where} ORDER BY {order_by(sorts)} LIMIT {limit}",
        params.values,
    ).rows
    more = len(rows) > size
    rows = rows[:size]
    return [tuple(r[:7]) for r in rows], total, (list(rows[-1][7:]) if more and rows else None)


def _cuboid_conditions(q: MatchQuery, params: Params, frames_sql: str) -> list[str]:
    """SQL conditions on outcome rows for ``q``'s distance and point-count ranges: a row's distance is its
    labeled cuboid's (a false positive's: its predicted cuboid's), its points the labeled cuboid's."""
    keep = CuboidFilter(q.min_distance, q.max_distance, q.min_points, q.max_points)
    if not (keep.by_distance or keep.by_points):
        return []
    scope = f"frame_id IN ({frames_sql})" if frames_sql else ""
    labels, predicted = cuboids_sql(scope, predicted=False), cuboids_sql(scope, predicted=True)
    out = []
    if keep.by_distance:
        near = keep.distance_sql(params)
        out.append(
            f"((label_object_id != '' AND (frame_id, label_object_id) IN (SELECT frame_id, object_id FROM ({labels})"
            f" WHERE {near})) OR (label_object_id = '' AND (frame_id, predicted_object_id) IN"
            f" (SELECT frame_id, object_id FROM ({predicted}) WHERE {near})))"
        )
    if keep.by_points:
        out.append(
            f"(label_object_id != '' AND (frame_id, label_object_id) IN (SELECT frame_id, object_id FROM ({labels})"
            f" WHERE {keep.points_sql(params)}))"
        )
    return out


@dataclass(frozen=True)
class CuboidDetail:
    """A cuboid as a match shows it: its row (x, y, z, w, l, h, yaw), velocity (NaN unknown), attribute, its
    centre's distance from the ego vehicle (NaN unknown) and the points inside it (-1: not known)."""

    box: tuple[float, ...]
    velocity: tuple[float, float]
    attribute: str
    distance: float
    points: int


@dataclass
class MatchDetails:
    """What a page of matches shows besides the outcome: each frame's media URI and split, and
    the boxes (x, y, width, height) of its labeled and predicted objects, or their cuboids."""

    frames: dict[str, tuple[str, str]]
    label_boxes: dict[tuple[str, str], tuple[float, float, float, float]]
    predicted_boxes: dict[tuple[str, str], tuple[float, float, float, float]]
    label_cuboids: dict[tuple[str, str], CuboidDetail] = field(default_factory=dict)
    predicted_cuboids: dict[tuple[str, str], CuboidDetail] = field(default_factory=dict)


def match_details(
    metrics: MetricsStore,
    project: str,
    dataset: str,
    inference_set: str,
    frame_ids: list[str],
    *,
    cuboids: bool = False,
) -> MatchDetails:
    """The details of the objects of ``frame_ids``: their boxes, or (``cuboids``) their cuboids."""
    if not frame_ids:
        return MatchDetails({}, {}, {})
    params = {"project": project, "dataset": dataset, "set": inference_set, "ids": sorted(set(frame_ids))}
    scope = "frame_id IN {ids:Array(String)}"
    frames = frame_media(metrics, project, dataset, frame_ids)
    if cuboids:
        shown = "frame_id, object_id, cx, cy, cz, cw, cl, ch, yaw, vx, vy, attribute, distance"
        sides = [
            metrics.query(f"SELECT {shown}, {points} FROM ({cuboids_sql(scope, predicted=predicted)})", params).rows
            for predicted, points in ((False, "num_points"), (True, "-1"))
        ]
        label_cuboids, predicted_cuboids = (
            {(str(r[0]), str(r[1])): CuboidDetail(tuple(float(v) for v in r[2:9]), (float(r[9]), float(r[10])),
                                                  str(r[11]), float(r[12]), int(r[13])) for r in rows}
            for rows in sides
        )  # fmt: skip
        return MatchDetails(frames, {}, {}, label_cuboids, predicted_cuboids)
    labels = metrics.query(f"SELECT frame_id, object_id, x, y, w, h FROM ({latest_labels_sql(scope)})", params).rows
    preds = metrics.query(
        "SELECT frame_id, object_id, x, y, w, h FROM predicted_objects FINAL"
        f" WHERE project = {{project:String}} AND inference_set = {{set:String}} AND {scope}",
        params,
    ).rows
    return MatchDetails(
        frames,
        {(str(r[0]), str(r[1])): tuple(float(v) for v in r[2:]) for r in labels},  # type: ignore[misc]
        {(str(r[0]), str(r[1])): tuple(float(v) for v in r[2:]) for r in preds},  # type: ignore[misc]
    )
