"""What the labeling bridge writes for an annotation (``bridge.label_upload``), without servers: the
labels of each task type in Shoal's terms, with provenance, and the annotations that do not fit the
ontology or the frame refused naming their region, as ingest would refuse them."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from shoal.common import masks
from shoal.common.data.projects import ClassDef
from shoal.common.errors import InvalidArgument
from shoal.labeling_bridge import state as st
from shoal.labeling_bridge.bridge import label_upload
from shoal.labeling_bridge.platforms import Box, Instance, Keypoint, Labels, PlatformAnnotation

CLASSES = {
    "person": ClassDef(1, "person", keypoints=("nose", "left_hand", "right_hand")),
    "dog": ClassDef(2, "dog", keypoints=("nose", "tail")),
}
SIZE = (64, 32)  # width, height


def _annotation(labels: Labels) -> PlatformAnnotation:
    when = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    return PlatformAnnotation(platform="label-studio", external_id="yard/a", task_id="7", annotation_id="42",
                              annotator="ann@example.com", created_at=when, updated_at=when, labels=labels)  # fmt: skip


def _upload(task_type: str, labels: Labels, size: tuple[int, int] | None = SIZE) -> object:
    items = [st.Item("p", "r1", "yard", "a", 0, "likely label error")]
    _, chunk = label_upload("a", _annotation(labels), task_type, CLASSES, items, size)
    (written,) = chunk.labels
    return written


def test_keypoints_come_one_per_keypoint_of_the_class() -> None:
    person = Box("person", 8, 4, 40, 20, region="r1",
                 keypoints=(Keypoint("right_hand", 30, 10, region="k2"), Keypoint("nose", 20, 8, region="k1")))  # fmt: skip
    written = _upload("KEYPOINTS", Labels(boxes=(person,)))
    (obj,) = written.objects
    assert (obj.object_id, obj.class_id, obj.box.x, obj.box.width) == ("42-0", 1, 8, 40)
    assert [(k.x, k.y, k.visibility) for k in obj.keypoints] == [(20, 8, 2), (0, 0, 0), (30, 10, 2)]
    prov = written.provenance
    assert (prov.source, prov.author) == ("labeling:label-studio", "ann@example.com")
    assert prov.reason == "label-studio task 7, annotation 42; sent because: likely label error"
    assert prov.time.ToDatetime(tzinfo=dt.UTC) == dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("keypoints", "message"),
    [
        ((Keypoint("tail", 10, 10, region="k9"),),
         r"keypoint 'k9' of box 'r1': 'tail' is not a keypoint of class 'person' \(nose, left_hand, right_hand\)"),
        ((Keypoint("nose", 10, 10, region="k1"), Keypoint("nose", 12, 10, region="k2")),
         r"keypoint 'k2' of box 'r1': 'nose' is placed twice on the object \(also as keypoint 'k1' of box 'r1'\)"),
        ((Keypoint("nose", 70, 10),), r"keypoint 'nose' of box 'r1': point \(70, 10\) lies outside the 64x32 image"),
    ],
)  # fmt: skip
def test_keypoints_that_do_not_fit_their_class_or_the_image_are_refused(
    keypoints: tuple[Keypoint, ...], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        _upload("KEYPOINTS", Labels(boxes=(Box("person", 8, 4, 40, 20, region="r1", keypoints=keypoints),)))


def test_instances_keep_their_polygon_or_their_mask() -> None:
    mask = np.zeros((32, 64), dtype=bool)
    mask[3:9, 40:50] = True
    coco = masks.to_string(masks.encode(mask))
    polygon = (1.0, 1.0, 20.5, 1.0, 20.5, 15.25)
    written = _upload("INSTANCE_SEGMENTATION", Labels(instances=(Instance("dog", polygons=(polygon,)),
                                                                 Instance("person", mask=coco))))  # fmt: skip
    drawn, painted = written.objects
    assert (drawn.class_id, [tuple(p.points) for p in drawn.polygons], drawn.HasField("mask")) == (2, [polygon], False)
    assert (painted.class_id, painted.mask.counts, list(painted.polygons)) == (1, coco, [])
    assert not drawn.HasField("box") and not painted.HasField("box")  # ingest derives them


@pytest.mark.parametrize(
    ("instance", "size", "message"),
    [
        (Instance("dog", polygons=((1.0, 1.0, 70.0, 1.0, 5.0, 5.0),), region="p1"), SIZE,
         r"polygon 'p1': point 1 \(70.0, 1.0\) lies outside the 64x32 image"),
        (Instance("dog", mask=masks.to_string(masks.encode(np.ones((32, 65)))), region="b1"), SIZE,
         "brush 'b1': the mask is not one of the frame's 64x32 pixels"),
        (Instance("dog", mask=b"\x7f!", region="b1"), SIZE, "brush 'b1': the mask is not COCO's compact"),
        (Instance("cat", polygons=((1.0, 1.0, 5.0, 1.0, 5.0, 5.0),)), SIZE,
         "polygon 0: class 'cat' is not in the project's ontology"),
        (Instance("dog", polygons=((1.0, 1.0, 5.0, 1.0, 5.0, 5.0),)), (0, 0), "the frame has no width and height"),
    ],
)  # fmt: skip
def test_instances_that_do_not_fit_the_frame_are_refused(
    instance: Instance, size: tuple[int, int], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        _upload("INSTANCE_SEGMENTATION", Labels(instances=(instance,)), size)


def test_multi_label_classes_in_the_order_given() -> None:
    assert list(_upload("MULTI_LABEL", Labels(class_names=("dog", "person"))).class_ids) == [2, 1]
    written = _upload("MULTI_LABEL", Labels())
    assert list(written.class_ids) == [] and not written.HasField("class_id")
    with pytest.raises(InvalidArgument, match="choice 'zebra': class 'zebra' is not in the project's ontology"):
        _upload("MULTI_LABEL", Labels(class_names=("dog", "zebra")))


def test_a_box_outside_the_image_is_named_by_its_region() -> None:
    with pytest.raises(InvalidArgument, match=r"box 'r5': box \(60.0, 4.0, 10.0, 4.0\) extends outside the 64x32"):
        _upload("OBJECT_DETECTION_2D", Labels(boxes=(Box("dog", 60, 4, 10, 4, region="r5"),)))
