"""Slices: accuracy per value of a field, and the slices that fall furthest below the overall
accuracy. A slice is ranked only with enough support and when its Wilson score interval lies
wholly below the overall accuracy, so small slices that are bad by chance do not crowd the list."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from shoal.analysis.datapoints import metadata_kinds
from shoal.analysis.query import SETTINGS, Params, View, compile_filter, metadata_key, view_sql
from shoal.common.errors import InvalidArgument
from shoal.common.stores.metrics import MetricsStore
from shoal.common.v1 import common_pb2

NONE = "(none)"
BUCKETS = {"hour": "toStartOfHour", "day": "toStartOfDay", "week": "toMonday", "month": "toStartOfMonth"}
DEFAULT_MIN_SUPPORT = 30
DEFAULT_LEVEL = 0.95


@dataclass
class SliceStats:
    value: str
    frames: int
    correct: int
    accuracy: float
    lower: float
    upper: float
    drop: float


def wilson(correct: int, n: int, level: float) -> tuple[float, float]:
    """The Wilson score interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _group_expression(metrics: MetricsStore, view: View, group_by: str, bucket: str, params: Params) -> str:
    if group_by == "split":
        return "split"
    if group_by == "capture_time":
        fn = BUCKETS.get(bucket or "day")
        if fn is None:
            raise InvalidArgument(f"one of {', '.join(BUCKETS)}", field="time_bucket")
        return f"if(capture_time IS NULL, '{NONE}', toString({fn}(capture_time)))"
    if group_by.startswith("metadata."):
        key = metadata_key(group_by, "group_by")
        kind = metadata_kinds(metrics, view, [key]).get(key)
        if kind is None:
            raise InvalidArgument(f"no frame of the dataset has metadata key {key!r}", field="group_by")
        column = {"string": "meta_str", "number": "meta_num", "bool": "meta_bool", "timestamp": "meta_time"}[kind]
        k = params.add(key, "String")
        return f"if(mapContains({column}, {k}), toString({column}[{k}]), '{NONE}')"
    raise InvalidArgument(f"group by split, capture_time or metadata.<key>, not {group_by!r}", field="group_by")


def slices(
    metrics: MetricsStore,
    view: View,
    flt: common_pb2.Filter,
    *,
    group_by: str,
    time_bucket: str = "",
    min_support: int = DEFAULT_MIN_SUPPORT,
    level: float = DEFAULT_LEVEL,
) -> tuple[float, int, list[SliceStats], list[SliceStats]]:
    """(overall accuracy, frames, every slice by value, the worst slices)."""
    if not 0 < level < 1:
        raise InvalidArgument(f"must lie in (0, 1), got {level}", field="confidence_level")
    params = Params()
    source = view_sql(view, params)
    group = _group_expression(metrics, view, group_by, time_bucket, params)
    where = compile_filter(flt, view, params)
    rows = metrics.query(
        f"SELECT {group} AS g, count(), countIf(label_class = predicted_class) FROM ({source})"
        f" WHERE label_class IS NOT NULL AND pred_raw IS NOT NULL AND {where} GROUP BY g ORDER BY g{SETTINGS}",
        params.values,
    ).rows
    total = sum(int(r[1]) for r in rows)
    right = sum(int(r[2]) for r in rows)
    overall = right / total if total else 0.0
    out = []
    for value, n, correct in rows:
        n, correct = int(n), int(correct)
        lo, hi = wilson(correct, n, level)
        acc = correct / n if n else 0.0
        out.append(SliceStats(str(value), n, correct, acc, lo, hi, overall - acc))
    worst = sorted((s for s in out if s.frames >= min_support and s.upper < overall), key=lambda s: -s.drop)
    return overall, total, out, worst
