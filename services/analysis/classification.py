"""Classification metrics, aggregated in ClickHouse: the confusion counts and the calibration bins
come back as a few hundred numbers whatever the size of the dataset, and every metric is derived
from them (the definitions are scikit-learn's, with ``labels`` = the project's classes and
``zero_division=0``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from shoal.common.data.evaluations import has_true_rank
from shoal.common.data.query import SETTINGS, Params, View, compile_filter, view_sql
from shoal.common.stores.metrics import MetricsStore
from shoal.common.v1 import common_pb2

DEFAULT_TOP_K = 5
DEFAULT_BINS = 10


@dataclass
class PerClass:
    class_id: int
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int


@dataclass
class Bin:
    lower: float
    upper: float
    count: int
    mean_confidence: float
    accuracy: float


@dataclass
class ClassificationReport:
    frames: int
    abstained: int
    accuracy: float
    top_k: int
    top_k_accuracy: float
    macro: tuple[float, float, float]
    weighted: tuple[float, float, float]
    per_class: list[PerClass]
    #: rows: labeled class, columns: predicted class then "abstained", for ``class_ids`` (ontology
    #: order; see :meth:`Cells.matrix`)
    confusion: np.ndarray
    class_ids: list[int]
    ece: float
    bins: list[Bin] = field(default_factory=list)
    #: classes of the ontology left out of ``confusion``
    omitted_classes: int = 0
    #: the confusion counts as computed, with the labeled classes and predicted classes of every position
    #: (:func:`at_threshold` moves some of them to "abstained")
    cells: Cells | None = None


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros_like(a, dtype=np.float64)
    np.divide(a, b, out=out, where=b > 0)
    return out


#: the most classes a confusion matrix in a response has rows and columns for: a project with more
#: gets the matrix of the classes its frames carry, and when those are more still, of the
#: MAX_MATRIX_CLASSES with the most labeled and predicted frames (every cell stays reachable with
#: QueryDatapoints)
MAX_MATRIX_CLASSES = 1_000


@dataclass
class Cells:
    """A K x (K+1) confusion matrix kept as its non-zero cells, so that its size follows the data,
    not K squared: ``rows`` are positions of labeled classes, ``cols`` of predicted ones or K
    (abstained, or in detection: missed). Detection adds a row K, "false positive"
    (``false_positive_row``): its cells count as predictions of their column's class."""

    k: int
    rows: np.ndarray
    cols: np.ndarray
    counts: np.ndarray
    false_positive_row: bool = False

    @classmethod
    def from_pairs(
        cls, k: int, rows: list[int], cols: list[int], counts: list[int], *, false_positive_row: bool = False
    ) -> Cells:
        """Cells summed over repeated (row, col) pairs."""
        if not rows:
            empty = np.zeros(0, np.int64)
            return cls(k, empty, empty, empty, false_positive_row)
        flat = np.asarray(rows, np.int64) * (k + 1) + np.asarray(cols, np.int64)
        keys, inverse = np.unique(flat, return_inverse=True)
        sums = np.bincount(inverse, weights=np.asarray(counts, np.float64)).astype(np.int64)
        return cls(k, keys // (k + 1), keys % (k + 1), sums, false_positive_row)

    def total(self) -> int:
        return int(self.counts.sum())

    def column(self, col: int) -> int:
        return int(self.counts[self.cols == col].sum())

    def matrix(self, class_ids: list[int]) -> tuple[list[int], np.ndarray, int]:
        """The dense matrix of a response: (class ids of its rows, the M x (M+1) counts (with the
        false-positive row: (M+1) x (M+1)), how many classes were left out). Every class when
        K <= MAX_MATRIX_CLASSES, else the classes that occur, at most MAX_MATRIX_CLASSES of them
        (those with the most labeled plus predicted frames or objects); cells of a left-out class
        count in no row or column."""
        k = self.k
        if k <= MAX_MATRIX_CLASSES:
            keep = np.arange(k)
            omitted = 0
        else:
            volume = np.bincount(self.rows, weights=self.counts, minlength=k + 1)[:k]
            predicted = self.cols < k
            volume += np.bincount(self.cols[predicted], weights=self.counts[predicted], minlength=k + 1)[:k]
            present = np.flatnonzero(volume > 0)
            if len(present) > MAX_MATRIX_CLASSES:
                order = np.argsort(-volume[present], kind="stable")[:MAX_MATRIX_CLASSES]
                keep = np.sort(present[order])
            else:
                keep = present
            omitted = k - len(keep)
        m = len(keep)
        position = np.full(k + 1, -1, np.int64)
        position[keep] = np.arange(m)
        position[k] = m
        r, c = position[self.rows], position[self.cols]
        inside = (r >= 0) & (c >= 0)
        dense = np.zeros((m + int(self.false_positive_row), m + 1), dtype=np.int64)
        np.add.at(dense, (r[inside], c[inside]), self.counts[inside])
        return [class_ids[i] for i in keep.tolist()], dense, omitted


def per_class_metrics(
    cells: Cells, class_ids: list[int], false_positives: np.ndarray | None = None
) -> tuple[list[PerClass], tuple, tuple, float]:
    """Per-class, macro and weighted precision/recall/F1 and accuracy of a K x (K+1) matrix given
    by its cells; ``false_positives`` (detection: predictions of each class that matched no labeled
    box, unless the cells hold them as their false-positive row) also count as predictions.
    O(cells + K): no K x K array is made."""
    k = len(class_ids)
    w = cells.counts.astype(np.float64)
    diagonal = cells.rows == cells.cols
    tp = np.bincount(cells.rows[diagonal], weights=w[diagonal], minlength=k + 1)[:k]
    support = np.bincount(cells.rows, weights=w, minlength=k + 1)[:k]
    named = cells.cols < k
    predicted = np.bincount(cells.cols[named], weights=w[named], minlength=k)[:k]
    if false_positives is not None:
        predicted = predicted + np.asarray(false_positives, dtype=np.float64)
    precision = _div(tp, predicted)
    recall = _div(tp, support)
    f1 = _div(2 * precision * recall, precision + recall)
    per_class = [
        PerClass(class_ids[i], float(precision[i]), float(recall[i]), float(f1[i]), int(support[i]), int(predicted[i]))
        for i in range(k)
    ]
    total = support.sum()
    macro = (float(precision.mean()), float(recall.mean()), float(f1.mean())) if k else (0.0, 0.0, 0.0)
    if total > 0:
        share = support / total
        weighted = (float(precision @ share), float(recall @ share), float(f1 @ share))
    else:
        weighted = (0.0, 0.0, 0.0)
    accuracy = float(tp.sum() / total) if total > 0 else 0.0
    return per_class, macro, weighted, accuracy


def classification_report(
    metrics: MetricsStore,
    view: View,
    flt: common_pb2.Filter,
    *,
    top_k: int = DEFAULT_TOP_K,
    bins: int = DEFAULT_BINS,
) -> ClassificationReport:
    class_ids = list(view.ontology)
    k = len(class_ids)
    top_k = max(1, min(top_k or DEFAULT_TOP_K, k))
    bins = bins or DEFAULT_BINS
    params = Params()
    source = view_sql(view, params)
    where = compile_filter(flt, view, params)
    scope = f"FROM ({source}) WHERE label_class IS NOT NULL AND pred_raw IS NOT NULL AND {where}"

    # one aggregation gives both the confusion counts and the calibration bins
    b = params.add(bins, "UInt32")
    kk = params.add(top_k, "UInt32")
    if has_true_rank(metrics, view.project, view.inference_set, view.dataset, view.ontology):
        # the rank kept at ingest: no probability vector is read (a third of the time at 1M frames)
        rank = "ifNull(true_rank, 0)"
    else:  # rows written before the rank was kept
        rank = "arrayCount(x -> x > p_true, probs)"
    rows = metrics.query(
        f"SELECT label_class, predicted_class, least(toUInt32(floor(confidence * {b})), {b} - 1) AS bin,"
        f" count(), sum(confidence), sum(pred_raw = label_class), sum(true_pos > 0 AND {rank} < {kk})"
        f" {scope} GROUP BY label_class, predicted_class, bin{SETTINGS}",
        params.values,
    ).rows
    position = {c: i for i, c in enumerate(class_ids)}
    # per bin: count, sum of confidence, right, top-k hits
    by_bin = np.zeros((bins, 4))
    cell_rows: list[int] = []
    cell_cols: list[int] = []
    cell_counts: list[int] = []
    for label, pred, bin_, n, conf, right, hits in rows:
        by_bin[int(bin_)] += (int(n), float(conf), int(right), int(hits))
        row = position.get(int(label))
        if row is None:
            continue  # a class no longer in the ontology
        cell_rows.append(row)
        cell_cols.append(k if int(pred) == -1 else position.get(int(pred), k))
        cell_counts.append(int(n))
    cells = Cells.from_pairs(k, cell_rows, cell_cols, cell_counts)
    per_class, macro, weighted, accuracy = per_class_metrics(cells, class_ids)
    matrix_ids, confusion, omitted = cells.matrix(class_ids)

    n_total = cells.total()
    out_bins = []
    ece = 0.0
    top_hits = int(by_bin[:, 3].sum())
    for i in range(bins):
        count = int(by_bin[i, 0])
        mean_conf = by_bin[i, 1] / count if count else 0.0
        acc = by_bin[i, 2] / count if count else 0.0
        out_bins.append(Bin(i / bins, (i + 1) / bins, count, mean_conf, acc))
        if n_total:
            ece += count / n_total * abs(acc - mean_conf)
    return ClassificationReport(
        frames=n_total,
        abstained=cells.column(k),
        accuracy=accuracy,
        top_k=top_k,
        top_k_accuracy=top_hits / n_total if n_total else 0.0,
        macro=macro,
        weighted=weighted,
        per_class=per_class,
        confusion=confusion,
        class_ids=matrix_ids,
        omitted_classes=omitted,
        ece=ece,
        bins=out_bins,
        cells=cells,
    )


def at_threshold(
    report: ClassificationReport, class_ids: list[int], below: Mapping[tuple[Any, Any], int]
) -> ClassificationReport:
    """The report of the same frames at a confidence threshold, from ``report`` at threshold 0 (of ``class_ids``) and
    how many frames of each (labeled class, predicted class) have a confidence below the threshold: those abstain.
    The calibration bins and the top-k accuracy do not depend on the threshold (they read each frame's top class and
    rank), nor do the frames counted."""
    if report.cells is None:
        raise ValueError("a report without its confusion cells")
    k = len(class_ids)
    position = {c: i for i, c in enumerate(class_ids)}
    cell_rows, cell_cols = report.cells.rows.tolist(), report.cells.cols.tolist()
    cell_counts = report.cells.counts.tolist()
    for (label, pred), n in below.items():
        row = None if label is None else position.get(int(label))
        if row is None or not n:  # unlabeled, or a class no longer in the ontology
            continue
        col = k if pred is None or int(pred) == -1 else position.get(int(pred), k)
        cell_rows += [row, row]
        cell_cols += [col, k]
        cell_counts += [-n, n]
    cells = Cells.from_pairs(k, cell_rows, cell_cols, cell_counts)
    per_class, macro, weighted, accuracy = per_class_metrics(cells, class_ids)
    matrix_ids, confusion, omitted = cells.matrix(class_ids)
    return replace(report, abstained=cells.column(k), accuracy=accuracy, macro=macro, weighted=weighted,
                   per_class=per_class, confusion=confusion, class_ids=matrix_ids, omitted_classes=omitted,
                   cells=cells)  # fmt: skip
