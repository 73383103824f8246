"""The console's JSON of a map viewport, written field by field for speed, is the JSON protobuf's own
conversion writes, and knows every field of the messages it writes."""

from __future__ import annotations

import numpy as np
from google.protobuf import json_format

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.v1 import common_pb2 as cpb
from shoal.console.backend import MAP_POINT_FIELDS, MAP_VIEWPORT_FIELDS, to_json


def test_the_fast_viewport_json_knows_every_field_of_the_messages() -> None:
    assert {f.name for f in apb.MapPoint.DESCRIPTOR.fields} == MAP_POINT_FIELDS, "MapPoint changed: update _map_point"
    assert {f.name for f in apb.GetMapViewportResponse.DESCRIPTOR.fields} == MAP_VIEWPORT_FIELDS


def test_the_fast_viewport_json_equals_protobufs_own() -> None:
    rng = np.random.default_rng(0)
    resp = apb.GetMapViewportResponse(summary=apb.MapSummary(frames=10, fitted_on=5, metric="cosine", min_x=-1.5),
                                      total_in_viewport=123_456_789_012)  # fmt: skip
    for i in range(500):
        p = resp.points.add(
            frame_id=f"f{i}", x=float(rng.normal()), y=float(rng.normal()), split="train" if i % 4 else ""
        )
        if i % 2:
            p.label_class = i % 10
        if i % 3 == 0:
            p.predicted_class, p.correct = 3, i % 2 == 0
        if i % 5 == 0:
            p.label_issue, p.self_confidence = True, 0.25
        if i % 7 == 0:
            p.metadata_value.CopyFrom(cpb.Value(number_value=i) if i % 2 else cpb.Value(string_value="front"))
    want = json_format.MessageToDict(resp, preserving_proto_field_name=True)
    got = to_json(resp)
    assert {k: v for k, v in got.items() if k != "points"} == {k: v for k, v in want.items() if k != "points"}
    assert len(got["points"]) == len(want["points"]) == 500
    for g, w in zip(got["points"], want["points"], strict=True):
        # coordinates are float32: the same number, printed by protobuf with fewer digits
        assert np.float32(g.pop("x")) == np.float32(w.pop("x", 0.0))
        assert np.float32(g.pop("y")) == np.float32(w.pop("y", 0.0))
        assert g == w
