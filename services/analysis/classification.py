"""Classification metrics, aggregated in ClickHouse: the confusion counts and the calibration bins
come back as a few hundred numbers whatever the size of the dataset, and every metric is derived
from them (the definitions are scikit-learn's, with ``labels`` = the project's classes and
``zero_division=0``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from shoal.analysis.query import SETTINGS, Params, View, compile_filter, view_sql
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
    #: rows: labeled class, columns: predicted class then "abstained" (ontology order)
    confusion: np.ndarray
    class_ids: list[int]
    ece: float
    bins: list[Bin] = field(default_factory=list)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros_like(a, dtype=np.float64)
    np.divide(a, b, out=out, where=b > 0)
    return out


def from_confusion(
    confusion: np.ndarray, class_ids: list[int], false_positives: np.ndarray | None = None
) -> tuple[list[PerClass], tuple, tuple, float]:
    """Per-class, macro and weighted precision/recall/F1 and accuracy of a K x (K+1) matrix;
    ``false_positives`` (detection: predictions of each class that matched no labeled box) also
    count as predictions."""
    k = len(class_ids)
    c = confusion.astype(np.float64)
    tp = np.diag(c[:, :k])
    support = c.sum(axis=1)
    predicted = c[:, :k].sum(axis=0)
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
        w = support / total
        weighted = (float(precision @ w), float(recall @ w), float(f1 @ w))
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
    rows = metrics.query(
        f"SELECT label_class, predicted_class, least(toUInt32(floor(confidence * {b})), {b} - 1) AS bin,"
        f" count(), sum(confidence), sum(pred_raw = label_class),"
        f" sum(true_pos > 0 AND arrayCount(x -> x > p_true, probs) < {kk})"
        f" {scope} GROUP BY label_class, predicted_class, bin{SETTINGS}",
        params.values,
    ).rows
    position = {c: i for i, c in enumerate(class_ids)}
    confusion = np.zeros((k, k + 1), dtype=np.int64)
    # per bin: count, sum of confidence, right, top-k hits
    by_bin = np.zeros((bins, 4))
    for label, pred, bin_, n, conf, right, hits in rows:
        by_bin[int(bin_)] += (int(n), float(conf), int(right), int(hits))
        row = position.get(int(label))
        if row is None:
            continue  # a class no longer in the ontology
        col = k if int(pred) == -1 else position.get(int(pred), k)
        confusion[row, col] += int(n)
    per_class, macro, weighted, accuracy = from_confusion(confusion, class_ids)

    n_total = int(confusion.sum())
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
        abstained=int(confusion[:, k].sum()),
        accuracy=accuracy,
        top_k=top_k,
        top_k_accuracy=top_hits / n_total if n_total else 0.0,
        macro=macro,
        weighted=weighted,
        per_class=per_class,
        confusion=confusion,
        class_ids=class_ids,
        ece=ece,
        bins=out_bins,
    )
