"""Regression gates: every gate of every regression-test segment of a dataset, evaluated for one
inference set on the segment's frames (classification: frame labels; detection: the confusion
matrix of the segment's frames)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shoal.analysis.classification import classification_report
from shoal.common.data.query import View
from shoal.common.data.segments import Gate, SegmentStore
from shoal.common.pagination import Page
from shoal.common.stores.metrics import MetricsStore
from shoal.common.v1 import common_pb2


@dataclass
class GateOutcome:
    segment: str
    gate: Gate
    value: float
    frames: int
    passed: bool


def gate_value(report: Any, gate: Gate) -> float:
    """``report``: a ClassificationReport, a detection summary (the same field names) or a
    segmentation summary (``mean_iou``, ``pixel_accuracy``, per class ``iou``, ``precision``, ``recall``)."""
    if gate.metric == "macro_f1":
        return report.macro[2]
    if gate.class_id is None:
        return float(getattr(report, gate.metric))
    per_class = {c.class_id: c for c in report.per_class}
    c = per_class.get(gate.class_id)  # type: ignore[arg-type]
    return 0.0 if c is None else float(getattr(c, gate.metric))


def evaluate_gates(
    metrics: MetricsStore,
    segments: SegmentStore,
    view: View,
    measure: Callable[[common_pb2.Filter], Any] | None = None,
) -> list[GateOutcome]:
    """``measure`` turns a filter of a segment's members into what gates read (``frames``,
    ``accuracy``, ``macro``, ``per_class``); by default the classification report."""
    if measure is None:

        def measure(members: common_pb2.Filter) -> Any:
            return classification_report(metrics, view, members)

    found, _ = segments.list(view.project, kinds=["REGRESSION_TEST"], page=Page(0, 10_000), dataset=view.dataset)
    out = []
    for seg in found:
        if not seg.gates:
            continue
        members = common_pb2.Filter(
            all=[common_pb2.Condition(field="segment", equals=common_pb2.Value(string_value=seg.name))]
        )
        report = measure(members)
        for gate in seg.gates:
            value = gate_value(report, gate)
            # a gate on no frames cannot be passed: an emptied segment must not open the gate
            passed = report.frames > 0 and value >= gate.minimum
            out.append(GateOutcome(seg.name, gate, value, report.frames, passed))
    return out
