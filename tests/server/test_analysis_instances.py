"""Instance segmentation and keypoint projects through the server: masks (as polygons, compact
strings and bare run lengths) and keypoints uploaded with the SDK, stored, read back and evaluated
equal to pycocotools (``iouType="segm"`` and ``"keypoints"``); the confusion matrix matches objects
by mask IoU; bad masks and keypoints are refused with the field and the frame named."""

from __future__ import annotations

import uuid
from collections import Counter

import grpc
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from shoal.analysis.detection import detection_report
from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.client import error_detail
from shoal.common import masks
from shoal.common.similarity import Shapes
from shoal.common.topics import Topics
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import Box, LabeledObject, PredictedObject, UploadColumns
from tests.server.conftest import Running, finish_job, wait_for
from tests.server.test_ingest_upload import _wait_done
from tests.unit.test_coco_masks_keypoints import (
    KEYPOINT_STATS,
    SEGM_STATS,
    generate_keypoints,
    generate_segm,
    reference,
)

SEGM_FIELDS = ["ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large",
               "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large"]  # fmt: skip
KEYPOINT_FIELDS = ["ap", "ap50", "ap75", "ap_medium", "ap_large", "ar", "ar50", "ar75", "ar_medium", "ar_large"]


def _setup(c, p: str, task: int, classes: list[pb.ClassDef]) -> None:  # type: ignore[no-untyped-def]
    c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(name=p, task_type=task, classes=classes)))
    c.ingest.CreateDataset(pb.CreateDatasetRequest(project=p, dataset=pb.Dataset(
        name="val", kind=pb.DATASET_KIND_LABELED, splits=["val"])))  # fmt: skip
    c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=p, inference_set=pb.InferenceSet(
        name="mrcnn", dataset="val", model_name="mrcnn", model_version="1")))  # fmt: skip


def _upload_segm(running: Running, p: str, seed: int) -> tuple[dict, list[dict]]:  # type: ignore[type-arg]
    dataset, dts = generate_segm(seed, images=40)
    images = dataset["images"]
    gts: dict[int, list[LabeledObject]] = {i["id"]: [] for i in images}
    for n, a in enumerate(dataset["annotations"]):
        seg = a["segmentation"]
        if isinstance(seg, list):
            obj = LabeledObject(f"g-{a['id']:06d}", a["category_id"], polygons=seg, is_crowd=bool(a["iscrowd"]))
        elif n % 2:  # run lengths as COCO's uncompressed RLE
            h, w = seg["size"]
            runs = mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode()})
            counts = _runs_of(runs.astype(bool))
            obj = LabeledObject(f"g-{a['id']:06d}", a["category_id"], mask={"size": [h, w], "counts": counts},
                                is_crowd=bool(a["iscrowd"]))  # fmt: skip
        else:
            obj = LabeledObject(f"g-{a['id']:06d}", a["category_id"], mask=seg, is_crowd=bool(a["iscrowd"]))
        gts[a["image_id"]].append(obj)
    preds: dict[int, list[PredictedObject]] = {i["id"]: [] for i in images}
    for k, d in enumerate(dts):  # object ids in input order: they break score ties as the input order does
        preds[d["image_id"]].append(PredictedObject(f"d-{k:06d}", d["category_id"], d["score"],
                                                    mask=d["segmentation"]["counts"]))  # fmt: skip
    with running.client(running.admin_key) as c:
        classes = [pb.ClassDef(id=cat["id"], name=f"c{cat['id']}") for cat in dataset["categories"]]
        _setup(c, p, pb.TASK_TYPE_INSTANCE_SEGMENTATION, classes)
        cols = UploadColumns(
            frame_ids=[f"img-{i['id']:04d}" for i in images],
            sizes=[(i["width"], i["height"]) for i in images],
            splits=["val"] * len(images),
            objects=[gts[i["id"]] for i in images],
            inference_set="mrcnn",
            predictions=[preds[i["id"]] for i in images],
        )
        r = c.upload(p, "val", cols, progress=False)
        st = c.wait_for_upload(p, r.upload_id, timeout=120)
        assert st.state == pb.UPLOAD_STATE_COMPLETED, st
    return dataset, dts


def _runs_of(mask: np.ndarray) -> list[int]:
    """COCO's run lengths of a mask, written out plainly (column-major, starting with zeros)."""
    flat = mask.T.ravel()
    runs, value, n = [], False, 0
    for v in flat:
        if bool(v) != value:
            runs.append(n)
            value, n = bool(v), 0
        n += 1
    runs.append(n)
    return runs


def test_mask_metrics_equal_pycocotools_and_the_confusion_matches_by_mask(shared: Running, project: str) -> None:
    running, p = shared, project
    dataset, dts = _upload_segm(running, p, 21)
    ref = reference(dataset, dts, "segm")
    with running.client(running.admin_key) as c:
        got = c.analysis.GetDetectionMetrics(apb.GetDetectionMetricsRequest(project=p, inference_set="mrcnn")).metrics
        conf = c.analysis.GetDetectionConfusion(apb.GetDetectionConfusionRequest(
            project=p, inference_set="mrcnn", iou_threshold=0.5, confidence_threshold=0.3)).confusion  # fmt: skip
    assert got.iou_type == "segm"
    for name, field, value in zip(SEGM_STATS, SEGM_FIELDS, ref.stats, strict=True):
        assert getattr(got, field) == pytest.approx(value, abs=1e-6), name
    assert 0.2 < got.ap < 0.95
    assert (got.ground_truth_objects, got.predicted_objects) == (len(dataset["annotations"]), len(dts))
    # read and matched seven frames at a time, the figures are the same, bit for bit
    classes = [c["id"] for c in dataset["categories"]]
    chunked = detection_report(
        running.server.stores.metrics, p, "val", "mrcnn", classes, Shapes("segm"), chunk_frames=7
    )
    assert chunked.result.stats == pytest.approx(dict(zip(SEGM_STATS, ref.stats, strict=True)) | {
        k: v for k, v in chunked.result.stats.items() if k not in SEGM_STATS}, abs=1e-6)  # fmt: skip
    assert (chunked.ground_truth, chunked.predicted) == (len(dataset["annotations"]), len(dts))
    # the confusion matrix: global greedy matching by mask IoU, written out plainly
    expected, ignored = _mask_confusion(dataset, dts, 0.5, 0.3)
    ids = list(conf.class_ids)
    grid = np.array(conf.counts).reshape(len(ids) + 1, len(ids) + 1)
    labels = [*ids, None]
    for i, lc in enumerate(labels):
        for j, pc in enumerate(labels):
            assert grid[i, j] == expected.get((lc, pc), 0), (lc, pc)
    assert conf.ignored_predictions == ignored


def _mask_confusion(dataset: dict, dts: list[dict], iou_thr: float, conf_thr: float) -> tuple[Counter, int]:  # type: ignore[type-arg]
    size = {i["id"]: (i["height"], i["width"]) for i in dataset["images"]}

    def rle(seg, img):  # type: ignore[no-untyped-def]
        h, w = size[img]
        if isinstance(seg, list):
            return mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        return {
            "size": seg["size"],
            "counts": seg["counts"].encode() if isinstance(seg["counts"], str) else seg["counts"],
        }

    counts: Counter = Counter()  # type: ignore[type-arg]
    ignored = 0
    for img in size:
        gts = [a for a in dataset["annotations"] if a["image_id"] == img]
        dets = [(k, d) for k, d in enumerate(dts) if d["image_id"] == img and np.float32(d["score"]) >= conf_thr]
        dets.sort(key=lambda kd: (-kd[1]["score"], kd[0]))
        g_rles = [rle(a["segmentation"], img) for a in gts]
        taken: set[int] = set()
        for _, d in dets:
            d_rle = rle(d["segmentation"], img)
            ious = mask_utils.iou([d_rle], g_rles, [int(a["iscrowd"]) for a in gts])[0] if gts else []
            best, best_iou = None, -1.0
            for j, a in enumerate(gts):
                if a["iscrowd"] or j in taken:
                    continue
                if ious[j] >= iou_thr and ious[j] > best_iou:
                    best, best_iou = j, ious[j]
            if best is not None:
                taken.add(best)
                counts[(gts[best]["category_id"], d["category_id"])] += 1
            elif any(a["iscrowd"] and ious[j] >= iou_thr for j, a in enumerate(gts)):
                ignored += 1
            else:
                counts[(None, d["category_id"])] += 1
        for j, a in enumerate(gts):
            if not a["iscrowd"] and j not in taken:
                counts[(a["category_id"], None)] += 1
    return counts, ignored


SIGMAS = {1: [0.03, 0.05, 0.08, 0.05, 0.03], 2: [0.1, 0.12, 0.09, 0.15, 0.2]}


def test_keypoint_metrics_equal_pycocotools_with_each_class_sigmas(shared: Running, project: str) -> None:
    running, p = shared, project
    dataset, dts = generate_keypoints(31, 5, [1, 2], images=50)
    for a in dataset["annotations"]:  # half pixels, exact as stored; a label's area is its box's
        a["bbox"] = [float(np.floor(v * 2) / 2) for v in a["bbox"]]
        a["bbox"][2], a["bbox"][3] = max(a["bbox"][2], 1.0), max(a["bbox"][3], 1.0)
        a["area"] = a["bbox"][2] * a["bbox"][3]
    images = [i["id"] for i in dataset["images"]]
    gts: dict[int, list[LabeledObject]] = {i: [] for i in images}
    for a in dataset["annotations"]:
        kp = np.reshape(a["keypoints"], (-1, 3))
        gts[a["image_id"]].append(LabeledObject(f"g-{a['id']:06d}", a["category_id"], Box(*a["bbox"]),
                                                is_crowd=bool(a["iscrowd"]), keypoints=kp))  # fmt: skip
    preds: dict[int, list[PredictedObject]] = {i: [] for i in images}
    for k, d in enumerate(dts):
        kp = np.reshape(d["keypoints"], (-1, 3))[:, :2]
        preds[d["image_id"]].append(PredictedObject(f"d-{k:06d}", d["category_id"], d["score"], keypoints=kp))
    names = ["nose", "left_eye", "right_eye", "left_ear", "right_ear"]
    with running.client(running.admin_key) as c:
        classes = [
            pb.ClassDef(id=cid, name=f"c{cid}", keypoints=names, keypoint_sigmas=SIGMAS[cid],
                        skeleton=[pb.KeypointEdge(a=0, b=1), pb.KeypointEdge(a=0, b=2)])
            for cid in (1, 2)
        ]  # fmt: skip
        _setup(c, p, pb.TASK_TYPE_KEYPOINTS, classes)
        got_project = c.ingest.GetProject(pb.GetProjectRequest(project=p)).project
        assert list(got_project.classes[1].keypoint_sigmas) == pytest.approx(SIGMAS[2])
        assert [(e.a, e.b) for e in got_project.classes[0].skeleton] == [(0, 1), (0, 2)]
        cols = UploadColumns(
            frame_ids=[f"img-{i:04d}" for i in images],
            sizes=[(700, 700)] * len(images),
            objects=[gts[i] for i in images],
            inference_set="mrcnn",
            predictions=[preds[i] for i in images],
        )
        r = c.upload(p, "val", cols, progress=False)
        assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        got = c.analysis.GetDetectionMetrics(apb.GetDetectionMetricsRequest(project=p, inference_set="mrcnn")).metrics
    assert got.iou_type == "keypoints" and got.ap_small == -1 and got.ar100 == -1
    by_class = {pc.class_id: pc for pc in got.per_class}
    for cid in (1, 2):
        ref = reference(dataset, dts, "keypoints", np.asarray(SIGMAS[cid]), category=cid)
        assert by_class[cid].ap == pytest.approx(ref.stats[0], abs=1e-6)
        assert by_class[cid].ar == pytest.approx(ref.stats[5], abs=1e-6)
    assert 0.1 < got.ap < 0.95
    assert got.ap == pytest.approx(np.mean([by_class[1].ap, by_class[2].ap]), abs=1e-6)
    assert set(KEYPOINT_STATS) and KEYPOINT_FIELDS


def _refused(c, p: str, chunk: pb.UploadChunk) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        c.ingest.Upload(iter([pb.UploadRequest(project=p, dataset="val", chunk=chunk)]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return info.value


@pytest.mark.parametrize(
    ("make", "field", "says"),
    [
        (lambda o: o.mask.CopyFrom(pb.Mask(runs=[10, 5])), "chunk.labels[0].objects[0].mask.runs", "sum"),
        (lambda o: o.mask.CopyFrom(pb.Mask(counts=b"\x01\x02")), "chunk.labels[0].objects[0].mask.counts", "COCO"),
        (lambda o: (o.mask.CopyFrom(pb.Mask(runs=[0, 1200])), o.polygons.add(points=[1, 1, 5, 1, 5, 5])),
         "chunk.labels[0].objects[0].polygons", "not both"),
        (lambda o: o.polygons.add(points=[1, 1, 5, 1]), "chunk.labels[0].objects[0].polygons[0].points", "at least 3"),
        (lambda o: o.polygons.add(points=[1, 1, 500, 1, 5, 5]), "chunk.labels[0].objects[0].polygons[0].points",
         "outside"),
        (lambda o: None, "chunk.labels[0].objects[0].mask", "needs a mask or polygons"),
    ],
)  # fmt: skip
def test_bad_masks_are_refused_naming_the_field_and_frame(
    shared: Running, project: str, make, field: str, says: str
) -> None:  # type: ignore[no-untyped-def]
    p = project
    with shared.client(shared.admin_key) as c:
        _setup(c, p, pb.TASK_TYPE_INSTANCE_SEGMENTATION, [pb.ClassDef(id=1, name="cone")])
        chunk = pb.UploadChunk(frames=[pb.Frame(frame_id="f1", width=40, height=30)])
        lab = chunk.labels.add(frame_id="f1")
        make(lab.objects.add(object_id="o1", class_id=1))
        err = _refused(c, p, chunk)
    detail = error_detail(err)
    assert detail.field == field and detail.datapoint.frame_id == "f1" and detail.datapoint.object_id == "o1"
    assert says in err.details()


def test_keypoints_must_follow_their_class(shared: Running, project: str) -> None:
    p = project
    with shared.client(shared.admin_key) as c:
        _setup(c, p, pb.TASK_TYPE_KEYPOINTS, [pb.ClassDef(id=1, name="hand", keypoints=["thumb", "index"])])
        chunk = pb.UploadChunk(frames=[pb.Frame(frame_id="f1", width=40, height=30)])
        obj = chunk.labels.add(frame_id="f1").objects.add(
            object_id="o1", class_id=1, box=pb.Box(x=1, y=1, width=5, height=5)
        )
        obj.keypoints.add(x=2, y=2, visibility=2)
        err = _refused(c, p, chunk)
        assert error_detail(err).field == "chunk.labels[0].objects[0].keypoints" and "2 keypoints" in err.details()
        obj.keypoints.add(x=3, y=3, visibility=3)
        err = _refused(c, p, chunk)
        assert error_detail(err).field == "chunk.labels[0].objects[0].keypoints[1].visibility"
        # a class of a keypoint project must declare its keypoints, and sigmas one per keypoint
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
                name=f"{p}_b", task_type=pb.TASK_TYPE_KEYPOINTS,
                classes=[pb.ClassDef(id=1, name="hand", keypoints=["a", "b"], keypoint_sigmas=[0.1])])))  # fmt: skip
        assert error_detail(info.value).field == "project.classes[0].keypoint_sigmas"


def test_a_detection_project_refuses_masks(shared: Running, project: str) -> None:
    p = project
    with shared.client(shared.admin_key) as c:
        _setup(c, p, pb.TASK_TYPE_OBJECT_DETECTION_2D, [pb.ClassDef(id=1, name="cone")])
        chunk = pb.UploadChunk(frames=[pb.Frame(frame_id="f1", width=40, height=30)])
        obj = chunk.labels.add(frame_id="f1").objects.add(
            object_id="o1", class_id=1, box=pb.Box(x=1, y=1, width=5, height=5)
        )
        obj.polygons.add(points=[1, 1, 5, 1, 5, 5])
        err = _refused(c, p, chunk)
    assert error_detail(err).field == "chunk.labels[0].objects[0].polygons" and "INSTANCE_SEGMENTATION" in err.details()


#: planted label errors per issue type
PLANTED = 5
ISSUE_TYPES = {
    apb.DETECTION_ISSUE_TYPE_MISSING_LABEL: "missing",
    apb.DETECTION_ISSUE_TYPE_SPURIOUS_LABEL: "spurious",
    apb.DETECTION_ISSUE_TYPE_MISLOCALIZED: "badly drawn",
    apb.DETECTION_ISSUE_TYPE_CLASS_SWAP: "wrong class",
}
#: and in keypoint projects, errors of single points
KEYPOINT_TYPES = {
    apb.DETECTION_ISSUE_TYPE_MISPLACED_KEYPOINT: "one point misplaced",
    apb.DETECTION_ISSUE_TYPE_SWAPPED_KEYPOINTS: "a left/right pair swapped",
}
FACE = ["nose", "left_eye", "right_eye", "left_ear", "right_ear"]
#: where a face's points sit, in units of its size, from its centre
FACE_LAYOUT = np.array([[0.0, 0.1], [-0.22, -0.15], [0.22, -0.15], [-0.45, 0.0], [0.45, 0.0]])


def _blob(rng: np.random.Generator, h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    squash = rng.uniform(0.7, 1.3)
    return ((xx - cx) / r) ** 2 + ((yy - cy) / (r * squash)) ** 2 <= 1.0


def _planted_scene(seed: int, kind: str) -> tuple[list, list, dict, dict]:  # type: ignore[type-arg]
    """Frames of a good model's predictions and labels with PLANTED errors of each type: returns
    labels and predictions per frame, the planted (type -> set of (frame, object id)) and the
    keypoints each keypoint error concerns."""
    rng = np.random.default_rng(seed)
    h = w = 160
    frames_labels, frames_preds = [], []
    types = [*ISSUE_TYPES, *(KEYPOINT_TYPES if kind == "keypoints" else ())]
    planted: dict[int, set[tuple[str, str]]] = {t: set() for t in types}
    points: dict[tuple[str, str], list[int]] = {}
    slots = rng.permutation([t for t in types for _ in range(PLANTED)] + [0] * 60)
    n = 0
    for f in range(30):
        fid = f"f{f:03d}"
        labels, preds = [], []
        centres = [(40, 40), (115, 45), (45, 115), (118, 118)]
        for k, (cx, cy) in enumerate(centres[: int(rng.integers(2, 5))]):
            cls = int(rng.integers(1, 4))
            oid = f"o{k}"
            plant = int(slots[n]) if n < len(slots) else 0
            n += 1
            true = _true_object(rng, kind, h, w, cx, cy)
            conf = float(rng.uniform(0.85, 0.99))
            preds.append(PredictedObject(f"p{k}", cls, conf, **_jitter(rng, kind, true)))
            if plant == apb.DETECTION_ISSUE_TYPE_MISSING_LABEL:
                planted[plant].add((fid, f"p{k}"))  # the prediction is the issue's object
                continue
            label_cls = cls
            shape = true
            if plant == apb.DETECTION_ISSUE_TYPE_CLASS_SWAP:
                label_cls = cls % 3 + 1
            elif plant == apb.DETECTION_ISSUE_TYPE_MISLOCALIZED:
                shape = _badly_drawn(rng, kind, true, h, w)
            elif plant == apb.DETECTION_ISSUE_TYPE_SWAPPED_KEYPOINTS:
                a, b = [(1, 2), (3, 4)][int(rng.integers(0, 2))]
                moved = true["points"].copy()
                moved[[a, b]] = moved[[b, a]]
                shape, points[(fid, oid)] = {**true, "points": moved}, [a, b]
            elif plant == apb.DETECTION_ISSUE_TYPE_MISPLACED_KEYPOINT:
                q = int(rng.integers(0, 5))
                moved = true["points"].copy()
                angle = rng.uniform(0, 2 * np.pi)
                moved[q] += 0.35 * true["box"].width * np.array([np.cos(angle), np.sin(angle)])
                shape, points[(fid, oid)] = {**true, "points": moved}, [q]
            if plant:
                planted[plant].add((fid, oid))
            labels.append(_label(oid, label_cls, kind, shape))
            if plant == apb.DETECTION_ISSUE_TYPE_SPURIOUS_LABEL:
                preds.pop()  # nothing was there: the label stands alone
        frames_labels.append(labels)
        frames_preds.append(preds)
    return frames_labels, frames_preds, planted, points


def _true_object(rng: np.random.Generator, kind: str, h: int, w: int, cx: float, cy: float) -> dict:  # type: ignore[type-arg]
    if kind == "segm":
        return {"mask": _blob(rng, h, w, cx, cy, float(rng.uniform(14, 24)))}
    side = float(rng.uniform(40, 60))
    points = np.array([cx, cy]) + side * (FACE_LAYOUT + rng.normal(0, 0.03, FACE_LAYOUT.shape))
    return {"points": points, "box": Box(cx - side / 2, cy - side / 2, side, side)}


def _jitter(rng: np.random.Generator, kind: str, true: dict) -> dict:  # type: ignore[type-arg]
    if kind == "segm":
        return {"mask": np.roll(true["mask"], int(rng.integers(-1, 2)), axis=1)}
    return {"keypoints": true["points"] + rng.normal(0, 0.5, true["points"].shape)}


def _badly_drawn(rng: np.random.Generator, kind: str, true: dict, h: int, w: int) -> dict:  # type: ignore[type-arg]
    if kind == "segm":  # half the object, drawn off to one side
        return {"mask": np.roll(true["mask"], int(true["mask"].any(axis=0).sum() * 0.45), axis=1)}
    # every point a few pixels off: with sigma 0.05 on a 50-pixel object, similarity about 0.5
    return {"points": true["points"] + rng.choice([-1, 1], true["points"].shape) * 4.5, "box": true["box"]}


def _label(oid: str, cls: int, kind: str, shape: dict) -> LabeledObject:  # type: ignore[type-arg]
    if kind == "segm":
        return LabeledObject(oid, cls, mask=shape["mask"])
    points = np.concatenate([shape["points"], np.full((5, 1), 2.0)], axis=1)
    return LabeledObject(oid, cls, shape["box"], keypoints=points)


@pytest.mark.parametrize("kind", ["segm", "keypoints"])
def test_planted_mask_and_keypoint_label_errors_rank_first(shared: Running, project: str, kind: str) -> None:
    """A good model's predictions against labels with errors planted of every type (a missing
    object, a label with nothing there, a badly drawn mask or misplaced keypoints, a wrong class,
    and for keypoints one point misplaced and a left/right pair swapped): each type's issues, lowest
    score first, start with exactly the planted ones, and flag nothing else."""
    running, p = shared, project
    labels, preds, planted, points = _planted_scene(5, kind)
    spurious_at = {oid: fid for fid, oid in planted[apb.DETECTION_ISSUE_TYPE_SPURIOUS_LABEL]}
    assert all(len(v) == PLANTED for v in planted.values()) and spurious_at
    with running.client(running.admin_key) as c:
        if kind == "segm":
            _setup(c, p, pb.TASK_TYPE_INSTANCE_SEGMENTATION, [pb.ClassDef(id=i, name=f"c{i}") for i in (1, 2, 3)])
        else:
            _setup(c, p, pb.TASK_TYPE_KEYPOINTS, [pb.ClassDef(id=i, name=f"c{i}", keypoints=FACE) for i in (1, 2, 3)])
        ids = [f"f{f:03d}" for f in range(len(labels))]
        cols = UploadColumns(frame_ids=ids, sizes=[(160, 160)] * len(ids), objects=labels, inference_set="mrcnn",
                             predictions=preds)  # fmt: skip
        r = c.upload(p, "val", cols, progress=False)
        assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        job = c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(project=p, inference_set="mrcnn")).job
        job = finish_job(c, p, job)
        for t in planted:
            what = {**ISSUE_TYPES, **KEYPOINT_TYPES}[t]
            resp = c.analysis.QueryDetectionLabelIssues(apb.QueryDetectionLabelIssuesRequest(
                project=p, job_id=job.job_id, issue_types=[t], include_unflagged=True,
                page=cpb.PageRequest(page_size=PLANTED + 1)))  # fmt: skip
            first = {(o.ref.frame_id, o.ref.object_id) for o in resp.objects[:PLANTED]}
            assert first == planted[t], (kind, what)
            assert all(o.is_issue for o in resp.objects[:PLANTED]), (kind, what)
            assert not resp.objects[PLANTED].is_issue, (kind, what)  # and nothing else is flagged as it
            if t in KEYPOINT_TYPES:  # and the points concerned are named
                assert {(o.ref.frame_id, o.ref.object_id): sorted(o.keypoints) for o in resp.objects[:PLANTED]} == {
                    ref: sorted(points[ref]) for ref in planted[t]
                }, what


def test_kafka_path_dead_letters_bad_masks_and_writes_the_good_ones(shared: Running, project: str) -> None:
    check_shape_dead_letters(shared, project)


def check_shape_dead_letters(running: Running, p: str) -> None:
    """A producer's event for an instance segmentation project: a label with a bad mask and a
    prediction with bad polygons go to the dead-letter topic with their reasons; the good labels
    and predictions of the same event are written, their masks as the server drew them."""
    with running.client(running.admin_key) as c:
        _setup(c, p, pb.TASK_TYPE_INSTANCE_SEGMENTATION, [pb.ClassDef(id=1, name="cone")])
    chunk = pb.UploadChunk(frames=[pb.Frame(frame_id=f"f{i}", width=40, height=30) for i in range(4)],
                           inference_set="mrcnn")  # fmt: skip
    triangle = [2.0, 2.0, 30.0, 4.0, 12.0, 25.0]
    chunk.labels.add(frame_id="f0").objects.add(object_id="a", class_id=1).polygons.add(points=triangle)
    chunk.labels.add(frame_id="f1").objects.add(object_id="b", class_id=1, mask=pb.Mask(runs=[5, 10]))  # 15 of 1200
    good = chunk.inferences.add(frame_id="f2").objects.add(object_id="p", class_id=1, score=0.9)
    good.mask.runs.extend([100, 20, 1080])
    bad = chunk.inferences.add(frame_id="f3").objects.add(object_id="q", class_id=1, score=0.9)
    bad.polygons.add(points=[1.0, 1.0, 2.0, 2.0])  # two points
    event = pb.UploadEvent(schema_version=1, upload_id="shapes-1", chunk_index=0, project=p, dataset="val", chunk=chunk)
    bus = running.server.stores.events
    topics = Topics(running.server.settings.topic_prefix)
    key = f"{p}/val".encode()
    bus.publish(topics.uploads, key=key, value=event.SerializeToString()).result(timeout=10)
    with running.client(running.admin_key) as c:
        st = _wait_done(c, p, "shapes-1")
    assert st.state == pb.UPLOAD_STATE_COMPLETED_WITH_ERRORS
    assert (st.written.frames, st.written.labels, st.written.inferences) == (4, 1, 1)
    assert sorted(e.detail.field for e in st.errors) == [
        "chunk.inferences[1].objects[0].polygons[0].points", "chunk.labels[1].objects[0].mask.runs",
    ]  # fmt: skip
    dlq = bus.consumer(f"test-dlq-{uuid.uuid4().hex}", [topics.dead_letter])
    got: list = []  # type: ignore[type-arg]
    wait_for(lambda: got.extend(e for e in dlq.poll(0.5) if e.key == key) or len(got) >= 1, timeout=60,
             what="the dead letter")  # fmt: skip
    dlq.close()
    part = pb.UploadEvent.FromString(got[0].value)
    assert [lab.frame_id for lab in part.chunk.labels] == ["f1"] and [i.frame_id for i in part.chunk.inferences] == [
        "f3"
    ]
    # as received: the bad objects travel on as they came, to be mended and sent again
    assert list(part.chunk.labels[0].objects[0].mask.runs) == [5, 10]
    with running.client(running.admin_key) as c:
        (version,) = c.ingest.ListLabelVersions(pb.ListLabelVersionsRequest(project=p, dataset="val",
                                                                            frame_id="f0")).versions  # fmt: skip
    # the label as given, and the mask drawn from it
    assert list(version.objects[0].polygons[0].points) == triangle
    assert version.objects[0].mask.counts == masks.to_string(masks.from_polygons([np.array(triangle)], 30, 40))
    m = running.server.stores.metrics
    rows = dict(m.query(f"SELECT object_id, mask FROM label_objects FINAL WHERE project = '{p}'").rows)
    rows |= dict(m.query(f"SELECT object_id, mask FROM predicted_objects FINAL WHERE project = '{p}'").rows)
    assert rows == {
        "a": masks.to_string(masks.from_polygons([np.array(triangle)], 30, 40)).decode(),
        "p": masks.to_string(np.array([100, 20, 1080], np.uint32)).decode(),
    }
