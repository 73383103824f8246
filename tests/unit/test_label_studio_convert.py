"""Conversion between Shoal labels and Label Studio's results and labeling interface (no server)."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from shoal.common import masks
from shoal.labeling_bridge import brush
from shoal.labeling_bridge.label_studio import (
    Interface,
    LabelStudioPlatform,
    MalformedResult,
    group_keypoints,
    labeling_config,
    labels_from_result,
    parse_labeling_config,
    result_from_labels,
)
from shoal.labeling_bridge.platforms import Box, ClassRegion, Instance, Keypoint, Labels, ProjectSpec, TaskSpec


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
        ([{"type": "ellipselabels", "value": {}}], "ellipselabels"),
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
    ("task_type", "tag", "item", "others"),
    [
        ("classification", "Choices", "Choice", {}),
        ("multi_label", "Choices", "Choice", {}),
        ("detection", "RectangleLabels", "Label", {}),
        ("instance_segmentation", "PolygonLabels", "Label", {"brush": "BrushLabels"}),
        ("keypoints", "RectangleLabels", "Label", {"keypoint": "KeyPointLabels"}),
    ],
)
def test_labeling_config_follows_the_ontology(task_type: str, tag: str, item: str, others: dict[str, str]) -> None:
    classes = ["cat", 'say "hi" & <bye>', "7"]
    keypoints = ["nose", "left ear"] if task_type == "keypoints" else []
    xml = labeling_config(ProjectSpec("p", task_type, classes, keypoints=keypoints))  # type: ignore[arg-type]
    root = ET.fromstring(xml)  # noqa: S314 (our own generated XML)
    control = root.find(tag)
    assert control is not None and control.get("name") == "label" and control.get("toName") == "image"
    assert [e.get("value") for e in control.findall(item)] == classes
    assert control.get("choice") == {"classification": "single-radio", "multi_label": "multiple"}.get(task_type)
    # instance segmentation: a brush with the same classes; keypoints: the points' names
    for name, other in others.items():
        (extra,) = [e for e in root if e.get("name") == name]
        assert extra.tag == other and extra.get("toName") == "image"
        assert [e.get("value") for e in extra] == (keypoints if name == "keypoint" else classes)
    assert root.find("Header").get("value") == "$shoal_reason"  # the reason, shown to the annotator
    assert root.find("Image").get("value") == "$image"
    assert parse_labeling_config(xml) == Interface(task_type, tuple(classes), tuple(keypoints))  # type: ignore[arg-type]
    assert parse_labeling_config('<View><Text name="t" value="$t"/></View>') is None
    assert parse_labeling_config("not xml") is None


def test_project_spec_and_task_spec_validate() -> None:
    with pytest.raises(ValueError, match="task_type"):
        ProjectSpec("p", "cuboids", ["a"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="repeats"):
        ProjectSpec("p", "classification", ["a", "a"])
    with pytest.raises(ValueError, match="keypoints must list"):
        ProjectSpec("p", "keypoints", ["a"])
    with pytest.raises(ValueError, match="for keypoint projects"):
        ProjectSpec("p", "detection", ["a"], keypoints=["nose"])
    with pytest.raises(ValueError, match="not in classes"):
        ProjectSpec("p", "segmentation", ["a"], colors={"b": "#000000"})
    with pytest.raises(ValueError, match="#rrggbb"):
        ProjectSpec("p", "segmentation", ["a"], colors={"a": "red"})
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
        "project": {"label_config": labeling_config(ProjectSpec("p", "classification", ["a", "b"]))},
    }
    (a,) = platform.parse_webhook(payload)
    assert (a.external_id, a.task_id, a.annotation_id, a.annotator) == ("ds/f3", "3", "5", "ann@example.com")
    assert a.labels == Labels(class_name="b") and a.error is None
    assert a.updated_at is not None and a.updated_at.tzinfo is not None
    assert platform.parse_webhook({"action": "TASKS_CREATED", "tasks": []}) == []
    (broken,) = platform.parse_webhook({"action": "ANNOTATION_UPDATED", "task": {"id": 1}})
    assert broken.error and "no annotation" in broken.error
    platform.close()


# --- multi-label, instance segmentation, keypoints ------------------------------------------------


def test_multi_label_choices() -> None:
    result = result_from_labels(Labels(class_names=("cat", "dog")), "multi_label", classes=["cat", "dog", "fox"])
    assert result == [
        {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["cat", "dog"]}}
    ]
    assert labels_from_result(result, task_type="multi_label") == Labels(class_names=("cat", "dog"))
    # no class is an answer, and a class named twice counts once
    assert result_from_labels(Labels(), "multi_label") == []
    assert labels_from_result([], task_type="multi_label") == Labels()
    twice = [{"type": "choices", "value": {"choices": ["dog", "cat", "dog"]}}]
    assert labels_from_result(twice, task_type="multi_label").class_names == ("dog", "cat")
    with pytest.raises(MalformedResult, match="choice 'zebra': class 'zebra' is not in the project's classes"):
        labels_from_result([{"type": "choices", "value": {"choices": ["cat", "zebra"]}}], classes=["cat"],
                           task_type="multi_label")  # fmt: skip
    # read without the project's task type, several choices are a classification's error
    with pytest.raises(MalformedResult, match="exactly one choice"):
        labels_from_result(result)


def test_polygons_round_trip_through_percent() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        w, h = (int(v) for v in rng.integers(1, 4000, 2))
        k = int(rng.integers(3, 12))
        polygon = tuple(float(v) for v in (rng.random((k, 2)) * (w, h)).ravel())
        labels = Labels(instances=(Instance("cat", polygons=(polygon,)),), image_width=w, image_height=h)
        result = result_from_labels(labels, "instance_segmentation")
        (item,) = result
        assert item["type"] == "polygonlabels" and item["value"]["closed"] is True and len(item["value"]["points"]) == k
        assert all(0 <= v <= 100 for point in item["value"]["points"] for v in point)
        (back,) = labels_from_result(result, task_type="instance_segmentation").instances
        assert back.class_name == "cat" and back.mask == b""
        np.testing.assert_allclose(back.polygons[0], polygon, rtol=1e-12, atol=1e-9)


def test_percent_places_to_pixels_by_hand() -> None:
    size = {"original_width": 200, "original_height": 100}
    polygon = {"id": "p1", "type": "polygonlabels", **size,
               "value": {"points": [[10, 20], [50, 20], [50, 80.5]], "polygonlabels": ["dog"]}}  # fmt: skip
    (instance,) = labels_from_result([polygon], task_type="instance_segmentation").instances
    assert instance == Instance("dog", polygons=((20.0, 20.0, 100.0, 20.0, 100.0, 80.5),), region="p1")
    rect = {"id": "r1", "from_name": "label", "type": "rectanglelabels", **size,
            "value": {"x": 10, "y": 10, "width": 50, "height": 50, "rectanglelabels": ["dog"]}}  # fmt: skip
    point = {"id": "k1", "from_name": "keypoint", "type": "keypointlabels", **size,
             "value": {"x": 25, "y": 37.5, "width": 0.5, "keypointlabels": ["nose"]}}  # fmt: skip
    (box,) = labels_from_result([rect, point], task_type="keypoints").boxes
    assert (box.x, box.y, box.width, box.height, box.region) == (20.0, 10.0, 100.0, 50.0, "r1")
    assert box.keypoints == (Keypoint("nose", 50.0, 37.5, region="k1"),)


def test_keypoints_go_out_nested_under_their_rectangle() -> None:
    person = Box("person", 100, 50, 200, 300, score=0.9,
                 keypoints=(Keypoint("nose", 200, 100), Keypoint("tail", 700, 100)))  # fmt: skip
    labels = Labels(boxes=(person, Box("person", 10, 10, 20, 20)), image_width=640, image_height=480)
    result = result_from_labels(labels, "keypoints", classes=["person"], keypoints=["nose", "tail"])
    rect, nose, other = result  # the tail, off the image, is left out
    assert (rect["id"], rect["type"], rect["value"]["rectanglelabels"], rect["score"]) == (
        "obj0", "rectanglelabels", ["person"], 0.9)  # fmt: skip
    assert (nose["id"], nose["parentID"], nose["from_name"], nose["type"]) == ("obj0-0", "obj0", "keypoint",
                                                                                "keypointlabels")  # fmt: skip
    assert nose["value"]["keypointlabels"] == ["nose"]
    assert (nose["value"]["x"], nose["value"]["y"]) == pytest.approx((200 / 640 * 100, 100 / 480 * 100))
    assert other["id"] == "obj1" and "parentID" not in other
    back = labels_from_result(result, task_type="keypoints")
    assert [b.keypoints for b in back.boxes] == [(Keypoint("nose", pytest.approx(200), pytest.approx(100),
                                                           region="obj0-0"),), ()]  # fmt: skip
    with pytest.raises(ValueError, match="keypoint 'ear' is not among the project's keypoints"):
        result_from_labels(Labels(boxes=(Box("person", 0, 0, 9, 9, keypoints=(Keypoint("ear", 1, 1),)),)),
                           "keypoints", keypoints=["nose"], image_width=10, image_height=10)  # fmt: skip


def _box(region: str, x: float, y: float, w: float, h: float) -> Box:
    return Box("person", x, y, w, h, region=region)


def _point(region: str, x: float, y: float, parent: str = "") -> tuple[Keypoint, str, str]:
    return Keypoint(region.split("-")[-1], x, y, region=region), parent, f"keypoint {region!r}"


def test_keypoints_belong_to_their_parent_else_to_the_smallest_rectangle_around_them() -> None:
    big, small = _box("big", 0, 0, 100, 100), _box("small", 40, 40, 20, 20)
    grouped = group_keypoints(
        [big, small],
        [
            _point("p-nose", 150, 150, parent="small"),  # nested: kept with its parent even outside it
            _point("p-eye", 50, 50),  # in both: the smaller
            _point("p-hip", 10, 10),  # in the big one only
            _point("p-ear", 45, 45, parent="gone"),  # its parent was deleted: by where it lies
            _point("p-tail", 60, 60),  # on the small one's edge: inside
        ],
    )
    assert [[k.region for k in b.keypoints] for b in grouped] == [["p-hip"], ["p-nose", "p-eye", "p-ear", "p-tail"]]
    with pytest.raises(MalformedResult, match=r"keypoint 'p-x': keypoint 'x' at \(101, 5\) lies in no rectangle"):
        group_keypoints([big, small], [_point("p-x", 101, 5)])
    with pytest.raises(MalformedResult, match="lies in no rectangle"):
        group_keypoints([], [_point("p-x", 1, 1)])
    assert group_keypoints([big], []) == (big,)


def test_an_object_the_annotator_adds_gets_the_points_drawn_in_it() -> None:
    """The sent object keeps its nested points wherever they are moved; the new rectangle and the
    points drawn in it (nested under nothing, as the editor makes them) make a second object."""
    size = {"original_width": 100, "original_height": 100}

    def item(region: str, kind: str, value: dict[str, object], parent: str = "") -> dict[str, object]:
        control = "keypoint" if kind == "keypointlabels" else "label"
        return {"id": region, **({"parentID": parent} if parent else {}), "from_name": control, "type": kind, **size,
                "value": value}  # fmt: skip

    def rect(region: str, x: float, y: float) -> dict[str, object]:
        return item(region, "rectanglelabels", {"x": x, "y": y, "width": 30, "height": 30, "rectanglelabels": ["p"]})

    def point(region: str, name: str, x: float, y: float, parent: str = "") -> dict[str, object]:
        return item(region, "keypointlabels", {"x": x, "y": y, "keypointlabels": [name]}, parent)

    result = [rect("obj0", 10, 10), point("obj0-0", "nose", 80, 80, parent="obj0"),  # moved far out of its box
              rect("new1", 60, 60), point("new2", "nose", 70, 70), point("new3", "eye", 12, 12)]  # fmt: skip
    sent, added = labels_from_result(result, task_type="keypoints").boxes
    assert [(k.name, k.region) for k in sent.keypoints] == [("nose", "obj0-0"), ("eye", "new3")]
    assert [(k.name, k.region) for k in added.keypoints] == [("nose", "new2")]


def test_masks_go_out_as_brush_regions_and_come_back_pixel_for_pixel() -> None:
    rng = np.random.default_rng(5)
    h, w = 37, 53
    mask = rng.random((h, w)) < 0.3
    coco = masks.to_string(masks.encode(mask))
    two = ((1.0, 1.0, 20.0, 1.0, 20.0, 15.0), (30.0, 20.0, 50.0, 20.0, 40.0, 35.0))
    labels = Labels(instances=(Instance("cat", mask=coco, score=0.5), Instance("dog", polygons=two)),
                    image_width=w, image_height=h)  # fmt: skip
    result = result_from_labels(labels, "instance_segmentation", classes=["cat", "dog"])
    # an object of several polygons goes out as one brush region of their union, drawn as COCO draws it
    assert [(r["from_name"], r["type"]) for r in result] == [("brush", "brushlabels")] * 2
    assert result[0]["score"] == 0.5 and (result[0]["original_width"], result[0]["original_height"]) == (w, h)
    cat, dog = labels_from_result(result, task_type="instance_segmentation").instances
    assert (cat.class_name, cat.polygons) == ("cat", ())
    np.testing.assert_array_equal(masks.decode(masks.from_string(cat.mask), h, w), mask)
    np.testing.assert_array_equal(masks.decode(masks.from_string(dog.mask), h, w),
                                  masks.decode(masks.from_polygons(list(two), h, w), h, w))  # fmt: skip
    with pytest.raises(ValueError, match="not one of the 54x37 image"):
        result_from_labels(Labels(instances=(Instance("cat", mask=coco),), image_width=w + 1, image_height=h),
                           "instance_segmentation")  # fmt: skip
    with pytest.raises(ValueError, match="neither polygons nor a mask"):
        result_from_labels(Labels(instances=(Instance("cat"),), image_width=w, image_height=h), "instance_segmentation")


_SIZE = {"original_width": 10, "original_height": 10}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"id": "p9", "type": "polygonlabels", **_SIZE, "value": {"points": [[1, 1], [5, 5]], "polygonlabels": ["a"]}},
         r"polygon 'p9' \(result item 0\): the polygon has 2 points; it needs at least 3"),
        ({"type": "polygonlabels", **_SIZE, "value": {"points": [[1, 1], [5, 5], [1, 5]], "closed": False,
                                                      "polygonlabels": ["a"]}}, "polygon 0: the polygon is left open"),
        ({"id": "p9", "type": "polygonlabels", **_SIZE,
          "value": {"points": [[1, 1], [5, 5], [1, 5]], "polygonlabels": ["zebra"]}},
         r"polygon 'p9' \(result item 0\): class 'zebra' is not in the project's classes"),
        ({"type": "polygonlabels", **_SIZE, "value": {"points": [[1, "a"], [5, 5], [1, 5]], "polygonlabels": ["a"]}},
         "point 0 is 'a'"),
        ({"id": "b1", "from_name": "brush", "type": "brushlabels", **_SIZE,
          "value": {"format": "rle", "rle": [0, 0, 0, 4, 57, 27, 252, 127, 224], "brushlabels": ["a"]}},
         r"brush 'b1' \(result item 0\): the brush mask cannot be read: the stream holds 4 values, not 400"),
        ({"from_name": "brush", "type": "brushlabels", **_SIZE, "value": {"rle": "abc", "brushlabels": ["a"]}},
         "format 'rle'"),
        ({"from_name": "brush", "type": "brushlabels", "original_width": 1, "original_height": 1,
          "value": {"format": "rle", "rle": [0, 0, 0, 4, 57, 27, 252, 96, 0], "brushlabels": ["a"]}},
         "paints no pixel"),
        ({"type": "rectanglelabels", **_SIZE, "value": {"x": 0, "y": 0, "width": 1, "height": 1,
                                                        "rectanglelabels": ["a"]}},
         r"result items of type \['rectanglelabels'\] in a instance_segmentation project, whose results hold"),
    ],
)  # fmt: skip
def test_instance_results_that_do_not_fit_name_the_region(item: dict[str, object], message: str) -> None:
    with pytest.raises(MalformedResult, match=message):
        labels_from_result([item], classes=["a"], task_type="instance_segmentation")


def test_relations_and_other_controls_are_not_labels() -> None:
    result = [
        {"id": "r", "type": "rectanglelabels", **_SIZE, "value": {"x": 0, "y": 0, "width": 50, "height": 50,
                                                                   "rectanglelabels": ["a"]}},
        {"from_id": "r", "to_id": "k", "type": "relation", "direction": "right"},
        {"from_name": "notes", "type": "textarea", "value": {"text": ["occluded"]}},
    ]  # fmt: skip
    (box,) = labels_from_result(result, task_type="keypoints").boxes
    assert box.keypoints == ()
    # a result of another task type's controls is an error, not an empty label
    with pytest.raises(MalformedResult, match="in a detection project, whose results hold \\['rectanglelabels'\\]"):
        labels_from_result([{"type": "choices", "value": {"choices": ["a"]}}], task_type="detection")


# --- semantic segmentation -----------------------------------------------------------------------


def test_segmentation_config_is_the_brush_alone_with_the_class_colours() -> None:
    spec = ProjectSpec("p", "segmentation", ["road", "sky", "car"], colors={"road": "#804080", "sky": "#4682B4"})
    xml = labeling_config(spec)
    root = ET.fromstring(xml)  # noqa: S314 (our own generated XML)
    (control,) = [e for e in root if e.get("toName")]
    assert (control.tag, control.get("name")) == ("BrushLabels", "brush")
    assert [(e.get("value"), e.get("background")) for e in control] == [
        ("road", "#804080"), ("sky", "#4682B4"), ("car", None)]  # fmt: skip
    assert parse_labeling_config(xml) == Interface(
        "segmentation", ("road", "sky", "car"), (), (("road", "#804080"), ("sky", "#4682B4"))
    )
    # an instance segmentation project has the brush too, beside its polygons: not taken for a segmentation one
    assert parse_labeling_config(labeling_config(ProjectSpec("p", "instance_segmentation", ["a"]))).task_type == (  # type: ignore[union-attr]
        "instance_segmentation")  # fmt: skip


def test_class_regions_go_out_as_brush_regions_and_come_back_in_their_order() -> None:
    rng = np.random.default_rng(11)
    h, w = 21, 34
    road, sky = rng.random((h, w)) < 0.4, np.zeros((h, w), dtype=bool)
    sky[:5] = True
    regions = (ClassRegion("road", masks.to_string(masks.encode(road)), w, h, region="class-3"),
               ClassRegion("sky", masks.to_string(masks.encode(sky)), w, h, region="class-9"))  # fmt: skip
    result = result_from_labels(Labels(class_regions=regions, image_width=w, image_height=h), "segmentation",
                                classes=["road", "sky"])  # fmt: skip
    assert [(r["id"], r["from_name"], r["type"], r["value"]["brushlabels"]) for r in result] == [
        ("class-3", "brush", "brushlabels", ["road"]), ("class-9", "brush", "brushlabels", ["sky"])]  # fmt: skip
    assert all((r["original_width"], r["original_height"]) == (w, h) for r in result)
    # an annotator adds a region, and erases another to nothing: both come back, in the result's order
    nothing = {**result[1], "id": "gone", "value": {**result[1]["value"], "rle": brush.encode(np.zeros((h, w)))}}
    back = labels_from_result([result[1], result[0], nothing], classes=["road", "sky"], task_type="segmentation")
    assert [(r.class_name, r.region, r.width, r.height) for r in back.class_regions] == [
        ("sky", "class-9", w, h), ("road", "class-3", w, h), ("sky", "gone", w, h)]  # fmt: skip
    got = [masks.decode(masks.from_string(r.mask), h, w) for r in back.class_regions]
    np.testing.assert_array_equal(got[0], sky)
    np.testing.assert_array_equal(got[1], road)
    assert not got[2].any() and back.instances == () and back.boxes == ()
    assert labels_from_result([], task_type="segmentation") == Labels()
    with pytest.raises(ValueError, match="class region 'class-3': drawn over 34x21 pixels, not the 35x21 image"):
        result_from_labels(Labels(class_regions=regions), "segmentation", image_width=w + 1, image_height=h)
    with pytest.raises(ValueError, match="not in the project's classes"):
        result_from_labels(Labels(class_regions=regions), "segmentation", classes=["road"])


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"id": "b1", "from_name": "brush", "type": "brushlabels", **_SIZE,
          "value": {"format": "rle", "rle": [0, 0, 0, 4, 57, 27, 252, 127, 224], "brushlabels": ["a"]}},
         r"brush 'b1' \(result item 0\): the brush mask cannot be read: the stream holds 4 values, not 400"),
        ({"id": "b2", "from_name": "brush", "type": "brushlabels", **_SIZE,
          "value": {"format": "rle", "rle": brush.encode(np.ones((10, 10))), "brushlabels": ["zebra"]}},
         r"brush 'b2' \(result item 0\): class 'zebra' is not in the project's classes"),
        ({"from_name": "brush", "type": "brushlabels", "original_width": 10.5, "original_height": 10,
          "value": {"format": "rle", "rle": brush.encode(np.ones((10, 10))), "brushlabels": ["a"]}},
         "a brush mask needs a whole image size"),
        ({"type": "polygonlabels", **_SIZE, "value": {"points": [[1, 1], [5, 5], [1, 5]], "polygonlabels": ["a"]}},
         r"result items of type \['polygonlabels'\] in a segmentation project, whose results hold \['brushlabels'\]"),
    ],
)  # fmt: skip
def test_segmentation_results_that_cannot_be_read_name_the_region(item: dict[str, object], message: str) -> None:
    with pytest.raises(MalformedResult, match=message):
        labels_from_result([item], classes=["a"], task_type="segmentation")


def test_a_segmentation_webhook_is_read_as_its_project_says() -> None:
    """A brush result alone looks like an instance segmentation one: the project's interface tells."""
    platform = LabelStudioPlatform("http://127.0.0.1:9", "0123456789abcdef0123456789abcdef01234567")
    painted = {"id": "r1", "from_name": "brush", "type": "brushlabels", **_SIZE,
               "value": {"format": "rle", "rle": brush.encode(np.eye(10)), "brushlabels": ["sky"]}}  # fmt: skip
    payload = {
        "action": "ANNOTATION_UPDATED",
        "annotation": {"id": 5, "task": 3, "result": [painted], "updated_at": "2026-01-02T03:04:06Z"},
        "task": {"id": 3, "data": {"shoal_frame_id": "ds/f3"}},
        "project": {"label_config": labeling_config(ProjectSpec("p", "segmentation", ["road", "sky"]))},
    }
    (a,) = platform.parse_webhook(payload)
    assert a.error is None and a.labels is not None
    (region,) = a.labels.class_regions
    assert (region.class_name, region.region, a.labels.instances) == ("sky", "r1", ())
    np.testing.assert_array_equal(masks.decode(masks.from_string(region.mask), 10, 10), np.eye(10, dtype=bool))
    platform.close()
