"""The console's JSON of a map viewport, written as columns for speed, holds what protobuf's own JSON
conversion writes, and knows every field of the messages it writes."""

from __future__ import annotations

import base64

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
    assert {k: v for k, v in got.items() if k != "point_columns"} == {k: v for k, v in want.items() if k != "points"}
    columns = got["point_columns"]
    xs = np.frombuffer(base64.b64decode(columns.pop("x")), "<f4")
    ys = np.frombuffer(base64.b64decode(columns.pop("y")), "<f4")
    assert len(xs) == len(ys) == len(want["points"]) == 500
    assert set(columns) == MAP_POINT_FIELDS - {"x", "y"}  # every field some point has
    for i, w in enumerate(want["points"]):
        # coordinates are float32: the same number, printed by protobuf with fewer digits
        assert xs[i] == np.float32(w.pop("x", 0.0)) and ys[i] == np.float32(w.pop("y", 0.0))
        # protobuf's JSON leaves out an empty split and a label_issue that is false
        defaults = {"split": "", "label_issue": False}
        g = {k: v[i] for k, v in columns.items() if v[i] is not None and (k not in defaults or v[i] != defaults[k])}
        assert g == w


def test_a_field_no_point_has_is_left_out() -> None:
    resp = apb.GetMapViewportResponse(total_in_viewport=2)
    resp.points.add(frame_id="a", x=1.0, y=2.0, label_class=0)
    resp.points.add(frame_id="b", x=3.0, y=-4.5)
    columns = to_json(resp)["point_columns"]
    assert set(columns) == {"frame_id", "x", "y", "split", "label_class"}
    assert columns["label_class"] == [0, None] and columns["frame_id"] == ["a", "b"]
    assert np.frombuffer(base64.b64decode(columns["y"]), "<f4").tolist() == [2.0, -4.5]
