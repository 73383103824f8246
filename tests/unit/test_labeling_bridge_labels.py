"""What the labeling bridge writes for an annotation (``bridge.label_upload``), without servers: the
labels of each task type in Shoal's terms, with provenance, and the annotations that do not fit the
ontology or the frame refused naming their region, as ingest would refuse them. Semantic
segmentation maps make the whole trip through Label Studio's brush regions and back."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pytest

from shoal.common import classmaps, masks
from shoal.common.data.projects import ClassDef
from shoal.common.errors import InvalidArgument
from shoal.labeling_bridge import state as st
from shoal.labeling_bridge.bridge import class_regions, label_upload
from shoal.labeling_bridge.label_studio import labels_from_result, result_from_labels
from shoal.labeling_bridge.platforms import Box, ClassRegion, Instance, Keypoint, Labels, PlatformAnnotation

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


# --- semantic segmentation -----------------------------------------------------------------------

SEG = {"road": ClassDef(3, "road", color="#804080"), "car": ClassDef(5, "car"), "sky": ClassDef(9, "sky")}
NONE = classmaps.UNLABELED


def _random_map(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Sky above road, a few cars as blobs, and some pixels left without a class."""
    yy, xx = np.mgrid[:h, :w]
    a = np.where(yy > h * rng.uniform(0.2, 0.7), 3, 9).astype(np.uint16)
    for _ in range(rng.integers(0, 4)):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(1, max(2, h // 3))
        a[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 5
    a[rng.random((h, w)) < rng.uniform(0, 0.2)] = NONE
    return a


def _segmentation(regions: tuple[ClassRegion, ...], size: tuple[int, int] | None = SIZE) -> np.ndarray:
    items = [st.Item("p", "r1", "yard", "a", 0, "label issue")]
    _, chunk = label_upload("a", _annotation(Labels(class_regions=regions)), "SEGMENTATION", SEG, items, size)
    (written,) = chunk.labels
    assert not written.objects and not written.HasField("class_id")
    runs = written.segmentation.runs
    w, h = size or (0, 0)
    return classmaps.decode(np.array(runs.classes), np.array(runs.lengths), h, w)


def _region(mask: np.ndarray, name: str, region: str = "") -> ClassRegion:
    return ClassRegion(name, masks.to_string(masks.encode(mask)), mask.shape[1], mask.shape[0], region=region)


def test_class_maps_round_trip_through_label_studio_brush_regions() -> None:
    """A label map goes out as one brush region per class present and comes back the same map,
    pixel for pixel, unlabeled pixels included."""
    rng = np.random.default_rng(2026)
    by_id = {c.id: c for c in SEG.values()}
    for _ in range(40):
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        want = _random_map(rng, h, w)
        values, runs = classmaps.encode(want)
        regions = class_regions(values, runs, w, h, by_id)
        present = sorted(set(np.unique(want).tolist()) - {NONE})
        assert [r.region for r in regions] == [f"class-{c}" for c in present]
        result = result_from_labels(Labels(class_regions=regions, image_width=w, image_height=h), "segmentation",
                                    classes=list(SEG))  # fmt: skip
        assert len(result) == len(present)
        back = labels_from_result(result, classes=list(SEG), task_type="segmentation").class_regions
        if not present:
            with pytest.raises(InvalidArgument, match="no pixel is painted"):
                _segmentation(back, (w, h))
            continue
        np.testing.assert_array_equal(_segmentation(back, (w, h)), want)


def test_a_class_map_is_sent_only_over_the_frame_it_covers() -> None:
    by_id = {c.id: c for c in SEG.values()}
    values, runs = classmaps.encode(np.full((4, 6), 3, dtype=np.uint16))
    assert class_regions(values, runs, 6, 4, by_id)
    assert class_regions(values, runs, 4, 6, by_id)  # the same pixel count: runs carry no shape
    assert class_regions(values, runs, 5, 4, by_id) == () and class_regions([], [], 6, 4, by_id) == ()
    # a class the platform project does not offer is left unpainted
    assert class_regions(values, runs, 6, 4, {5: SEG["car"]}) == ()


def test_regions_paint_their_class_and_the_rest_stays_unlabeled() -> None:
    w, h = SIZE
    road = np.zeros((h, w), dtype=bool)
    road[20:] = True
    more_road = np.zeros((h, w), dtype=bool)
    more_road[16:24, :10] = True  # overlaps road: one class, no question
    car = np.zeros((h, w), dtype=bool)
    car[5:10, 30:40] = True
    erased = np.zeros((h, w), dtype=bool)  # a region erased to nothing changes nothing
    got = _segmentation((_region(road, "road"), _region(more_road, "road"), _region(erased, "sky"),
                         _region(car, "car")))  # fmt: skip
    want = np.full((h, w), NONE, dtype=np.uint16)
    want[road | more_road] = 3
    want[car] = 5
    np.testing.assert_array_equal(got, want)


def test_a_pixel_painted_two_classes_is_refused_naming_both_regions() -> None:
    w, h = SIZE
    road = np.zeros((h, w), dtype=bool)
    road[20:] = True
    sky = np.zeros((h, w), dtype=bool)
    sky[:22] = True  # two rows over the road
    with pytest.raises(InvalidArgument) as err:
        _segmentation((_region(road, "road", "r-road"), _region(sky, "sky", "r-sky")))
    assert err.value.field == "brush 'r-sky'"
    assert err.value.message == (
        "128 of its pixels (the first at x=0, y=20) are painted 'sky' here and 'road' by brush 'r-road': a pixel"
        " takes one class, so erase them from one of the two regions"
    )
    # in the other order, the other region is named first
    with pytest.raises(
        InvalidArgument, match=r"brush 1: 128 of its pixels .* painted 'road' here and 'sky' by brush 0"
    ):
        _segmentation((_region(sky, "sky"), _region(road, "road")))


@pytest.mark.parametrize(
    ("regions", "size", "message"),
    [
        ((ClassRegion("zebra", masks.to_string(masks.encode(np.ones((32, 64)))), 64, 32, region="z"),), SIZE,
         "brush 'z': class 'zebra' is not in the project's ontology"),
        ((ClassRegion("sky", masks.to_string(masks.encode(np.ones((64, 32)))), 32, 64, region="t"),), SIZE,
         "brush 't': the brush is drawn over 32x64 pixels, not the frame's 64x32: the platform showed the image at"
         " another size"),
        ((ClassRegion("sky", b"\x7f!", 64, 32),), SIZE, "brush 0: the mask is not COCO's compact"),
        ((ClassRegion("sky", masks.to_string(masks.encode(np.ones((32, 65)))), 64, 32),), SIZE,
         "brush 0: the mask is not one of the frame's 64x32 pixels"),
        ((), SIZE, "segmentation: no pixel is painted"),
        ((ClassRegion("sky", masks.to_string(masks.encode(np.zeros((32, 64)))), 64, 32),), SIZE,
         "segmentation: no pixel is painted"),
        ((ClassRegion("sky", masks.to_string(masks.encode(np.ones((32, 64)))), 64, 32),), (0, 0),
         "segmentation: the frame has no width and height in Shoal"),
    ],
)  # fmt: skip
def test_class_regions_that_do_not_fit_are_refused(
    regions: tuple[ClassRegion, ...], size: tuple[int, int], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        _segmentation(regions, size)


def test_a_class_map_label_carries_its_provenance() -> None:
    sky = np.zeros((32, 64), dtype=bool)
    sky[:8] = True
    items = [st.Item("p", "r1", "yard", "a", 0, "label issue: 12 pixels likely mislabeled")]
    _, chunk = label_upload("a", _annotation(Labels(class_regions=(_region(sky, "sky"),))), "SEGMENTATION", SEG,
                            items, SIZE)  # fmt: skip
    prov = chunk.labels[0].provenance
    assert (prov.source, prov.author) == ("labeling:label-studio", "ann@example.com")
    assert prov.reason == "label-studio task 7, annotation 42; sent because: label issue: 12 pixels likely mislabeled"
