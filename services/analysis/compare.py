"""Model comparison: two inference sets on the same labeled frames, aggregated in ClickHouse."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shoal.analysis.classification import Cells, PerClass, per_class_metrics
from shoal.common.data.query import SETTINGS, Params, View, compile_filter, view_sql
from shoal.common.stores.metrics import MetricsStore
from shoal.common.v1 import common_pb2


@dataclass
class Comparison:
    frames: int
    baseline_accuracy: float
    candidate_accuracy: float
    baseline: list[PerClass]
    candidate: list[PerClass]
    improved: int
    regressed: int


def compare(
    metrics: MetricsStore, view: View, flt: common_pb2.Filter, listing: tuple[str, str] | None = None,
    counted: list[tuple[Any, ...]] | None = None,
) -> Comparison:  # fmt: skip
    """``view`` reads the candidate as its inference set and the baseline as its baseline (from ``listing``, the
    candidate's rows kept beside the baseline's, when given, or ``counted``, their counts by labeled class, predicted
    class and the baseline's: :mod:`shoal.analysis.grid_compare`)."""
    class_ids = list(view.ontology)
    k = len(class_ids)
    params = Params()
    source = view_sql(view, params, listing=listing)
    where = compile_filter(flt, view, params)
    rows = counted if counted is not None else metrics.query(
        f"SELECT label_class, predicted_class, baseline_predicted_class, count() FROM ({source})"
        f" WHERE label_class IS NOT NULL AND pred_raw IS NOT NULL AND base_pred_raw IS NOT NULL AND {where}"
        f" GROUP BY label_class, predicted_class, baseline_predicted_class{SETTINGS}",
        params.values,
    ).rows  # fmt: skip
    position = {c: i for i, c in enumerate(class_ids)}
    label_rows: list[int] = []
    cand_cols: list[int] = []
    base_cols: list[int] = []
    counts: list[int] = []
    improved = regressed = 0
    for label, pred, base_pred, n in rows:
        row = position.get(int(label))
        if row is None:
            continue
        n = int(n)
        label_rows.append(row)
        cand_cols.append(k if int(pred) == -1 else position.get(int(pred), k))
        base_cols.append(k if int(base_pred) == -1 else position.get(int(base_pred), k))
        counts.append(n)
        right_now, right_before = int(pred) == int(label), int(base_pred) == int(label)
        improved += n if right_now and not right_before else 0
        regressed += n if right_before and not right_now else 0
    cand = Cells.from_pairs(k, label_rows, cand_cols, counts)
    base = Cells.from_pairs(k, label_rows, base_cols, counts)
    base_classes, _, _, base_acc = per_class_metrics(base, class_ids)
    cand_classes, _, _, cand_acc = per_class_metrics(cand, class_ids)
    return Comparison(cand.total(), base_acc, cand_acc, base_classes, cand_classes, improved, regressed)
