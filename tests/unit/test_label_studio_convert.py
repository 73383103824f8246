"""Conversion between Shoal labels and Label Studio's results and labeling interface (no server)."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

import pytest

from shoal.labeling_bridge.label_studio import (
    LabelStudioPlatform,
    MalformedResult,
    labeling_config,
    labels_from_result,
    parse_labeling_config,
    result_from_labels,
)
from shoal.labeling_bridge.platforms import Box, Labels, ProjectSpec, TaskSpec


def test_detection_boxes_round_trip_through_percent() -> None:
    rng = random.Random(7)
    for _ in range(200):
        w, h = rng.randint(1, 4000), rng.randint(1, 4000)
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        box = Box("car", x, y, rng.uniform(0, w - x), rng.uniform(0, h - y))
        result = result_from_labels(Labels(boxes=(box,), image_width=w, image_height=h), "detection")
        value = result[0]["value"]
        assert 0 <= value["x"] <= 100 and 0 <= value["width"] <= 100
        back = labels_from_result(result)
        assert back.image_width == w and back.image_height == h
        (got,) = back.boxes
        assert got.class_name == "car"
        for a, b in ((got.x, box.x), (got.y, box.y), (got.width, box.width), (got.height, box.height)):
            assert a == pytest.approx(b, rel=1e-9, abs=1e-9)


def test_prelabel_boxes_overhanging_the_image_are_cut_to_it() -> None:
    """Predicted boxes are stored as given, edges past the image included; Label Studio gets the
    part inside the image, and nothing for a box wholly outside."""
    labels = Labels(boxes=(Box("car", -10, 90, 60, 40), Box("cone", 120, 10, 5, 5)), image_width=100, image_height=100)
    result = result_from_labels(labels, "detection")
    assert len(result) == 1
    value = result[0]["value"]
    assert (value["x"], value["y"], value["width"], value["height"]) == pytest.approx((0.0, 90.0, 50.0, 10.0))


def test_percent_to_pixels_by_hand() -> None:
    result = [
        {
            "from_name": "label",
            "to_name": "image",
            "type": "rectanglelabels",
            "original_width": 200,
            "original_height": 100,
            "value": {"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 0, "rectanglelabels": ["dog"]},
        }
    ]
    (box,) = labels_from_result(result, classes=["cat", "dog"]).boxes
    assert (box.x, box.y, box.width, box.height) == (20.0, 20.0, 60.0, 40.0)


def test_image_size_from_the_task_when_the_result_lacks_it() -> None:
    item = {"type": "rectanglelabels", "value": {"x": 50, "y": 50, "width": 10, "height": 10, "rectanglelabels": ["a"]}}
    (box,) = labels_from_result([item], image_width=640, image_height=480).boxes
    assert (box.x, box.y, box.width, box.height) == (320.0, 240.0, 64.0, 48.0)
    with pytest.raises(MalformedResult, match="image size is unknown"):
        labels_from_result([item])


def test_classification_choice() -> None:
    result = result_from_labels(Labels(class_name="7"), "classification", classes=["3", "7"])
    assert result == [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["7"]}}]
    assert labels_from_result(result, classes=["3", "7"]) == Labels(class_name="7")


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"not": "a list"}, "not a list"),
        (["text"], "not an object"),
        ([{"type": "choices", "value": {"choices": []}}], "exactly one choice"),
        ([{"type": "choices", "value": {"choices": ["a", "b"]}}], "exactly one choice"),
        ([{"type": "choices", "value": {"choices": ["zebra"]}}], "not in the project's classes"),
        ([{"type": "choices"}], "no value object"),
        ([{"type": "polygonlabels", "value": {}}], "polygonlabels"),
        (
            [
                {"type": "choices", "value": {"choices": ["a"]}},
                {"type": "rectanglelabels", "original_width": 1, "original_height": 1, "value": {}},
            ],
            "mixes",
        ),
        (
            [
                {
                    "type": "rectanglelabels",
                    "original_width": 10,
                    "original_height": 10,
                    "value": {"x": "left", "y": 0, "width": 1, "height": 1, "rectanglelabels": ["a"]},
                }
            ],
            "x is 'left'",
        ),
        (
            [
                {
                    "type": "rectanglelabels",
                    "original_width": 10,
                    "original_height": 10,
                    "value": {"x": 0, "y": 0, "width": 1, "height": 1, "rotation": 30, "rectanglelabels": ["a"]},
                }
            ],
            "rotated",
        ),
        (
            [
                {
                    "type": "rectanglelabels",
                    "original_width": 10,
                    "original_height": 10,
                    "value": {"x": 0, "y": 0, "width": 1, "height": 1, "rectanglelabels": []},
                }
            ],
            "one label",
        ),
    ],
)
def test_malformed_results_name_the_problem(result: object, message: str) -> None:
    with pytest.raises(MalformedResult, match=message):
        labels_from_result(result, classes=["a", "b"])


def test_empty_detection_result_is_a_frame_without_objects() -> None:
    assert labels_from_result([], task_type="detection") == Labels()
    with pytest.raises(MalformedResult, match="task type is unknown"):
        labels_from_result([])


def test_items_of_other_controls_are_ignored() -> None:
    result = [
        {"from_name": "comment", "type": "textarea", "value": {"text": ["blurry"]}},
        {"from_name": "label", "type": "choices", "value": {"choices": ["a"]}},
    ]
    assert labels_from_result(result) == Labels(class_name="a")


def test_prelabels_need_known_classes_and_the_image_size() -> None:
    with pytest.raises(ValueError, match="not in the project's classes"):
        result_from_labels(Labels(class_name="x"), "classification", classes=["a"])
    with pytest.raises(ValueError, match="image size"):
        result_from_labels(Labels(boxes=(Box("a", 0, 0, 1, 1),)), "detection")


@pytest.mark.parametrize(
    ("task_type", "tag", "item"), [("classification", "Choices", "Choice"), ("detection", "RectangleLabels", "Label")]
)
def test_labeling_config_follows_the_ontology(task_type: str, tag: str, item: str) -> None:
    classes = ["cat", 'say "hi" & <bye>', "7"]
    xml = labeling_config(ProjectSpec("p", task_type, classes))  # type: ignore[arg-type]
    root = ET.fromstring(xml)  # noqa: S314 (our own generated XML)
    control = root.find(tag)
    assert control is not None and control.get("name") == "label" and control.get("toName") == "image"
    assert [e.get("value") for e in control.findall(item)] == classes
    assert root.find("Header").get("value") == "$shoal_reason"  # the reason, shown to the annotator
    assert root.find("Image").get("value") == "$image"
    parsed = {"label": {"type": tag, "labels": classes}}
    assert parse_labeling_config(parsed) == (task_type, tuple(classes))
    assert parse_labeling_config({"other": {"type": tag}}) is None


def test_project_spec_and_task_spec_validate() -> None:
    with pytest.raises(ValueError, match="task_type"):
        ProjectSpec("p", "segmentation", ["a"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="repeats"):
        ProjectSpec("p", "classification", ["a", "a"])
    with pytest.raises(ValueError, match="external_id"):
        TaskSpec(external_id="", media_url="http://x")


def test_webhook_payload_without_server() -> None:
    platform = LabelStudioPlatform("http://127.0.0.1:9", "0123456789abcdef0123456789abcdef01234567")
    assert platform.auth_scheme == "legacy"
    assert "0123456789abcdef" not in repr(platform)
    payload = {
        "action": "ANNOTATION_CREATED",
        "annotation": {
            "id": 5,
            "task": 3,
            "completed_by": {"id": 1, "email": "ann@example.com"},
            "result": [{"from_name": "label", "type": "choices", "value": {"choices": ["b"]}}],
            "created_at": "2026-01-02T03:04:05.678901Z",
            "updated_at": "2026-01-02T03:04:06.000000Z",
        },
        "task": {"id": 3, "data": {"shoal_frame_id": "ds/f3"}},
        "project": {"parsed_label_config": {"label": {"type": "Choices", "labels": ["a", "b"]}}},
    }
    (a,) = platform.parse_webhook(payload)
    assert (a.external_id, a.task_id, a.annotation_id, a.annotator) == ("ds/f3", "3", "5", "ann@example.com")
    assert a.labels == Labels(class_name="b") and a.error is None
    assert a.updated_at is not None and a.updated_at.tzinfo is not None
    assert platform.parse_webhook({"action": "TASKS_CREATED", "tasks": []}) == []
    (broken,) = platform.parse_webhook({"action": "ANNOTATION_UPDATED", "task": {"id": 1}})
    assert broken.error and "no annotation" in broken.error
    platform.close()
