"""Detection metrics through the server: boxes uploaded with the SDK, read back from chDB and
evaluated, equal to pycocotools on the same boxes."""

from __future__ import annotations

import os
import subprocess
import sys

import grpc
import numpy as np
import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import Box, LabeledObject, PredictedObject, UploadColumns
from tests.harness._wait import scaled
from tests.server.conftest import Running
from tests.unit.test_coco import STAT_NAMES, generate, reference

SIZE = 800


def _inside(bbox: list[float]) -> list[float]:
    """Clamped into the image and rounded to half pixels (exact in float32, as stored)."""
    x, y, w, h = bbox
    x, y = min(max(x, 0.0), SIZE - 2.0), min(max(y, 0.0), SIZE - 2.0)
    w, h = max(1.0, min(w, SIZE - x)), max(1.0, min(h, SIZE - y))
    return [float(np.floor(v * 2) / 2) for v in (x, y, w, h)]


def _dataset(seed: int) -> tuple[dict, list[dict]]:  # type: ignore[type-arg]
    dataset, dts = generate(seed, images=60)
    for a in dataset["annotations"]:
        a["bbox"] = _inside(a["bbox"])
        a["area"] = a["bbox"][2] * a["bbox"][3]
    for d in dts:
        d["bbox"] = _inside(d["bbox"])
    return dataset, dts


def _upload(running: Running, p: str, seed: int) -> tuple[dict, list[dict]]:  # type: ignore[type-arg]
    """A generated detection dataset, uploaded; returns it as the reference sees it."""
    dataset, dts = _dataset(seed)
    images = [i["id"] for i in dataset["images"]]
    gts_by_image: dict[int, list] = {i: [] for i in images}  # type: ignore[type-arg]
    for a in dataset["annotations"]:
        x, y, w, h = a["bbox"]
        gts_by_image[a["image_id"]].append(
            LabeledObject(f"g-{a['id']:06d}", a["category_id"], Box(x, y, w, h), is_crowd=bool(a["iscrowd"]))
        )
    dts_by_image: dict[int, list] = {i: [] for i in images}  # type: ignore[type-arg]
    for k, d in enumerate(dts):  # object ids in input order: they break score ties as the input order does
        x, y, w, h = d["bbox"]
        dts_by_image[d["image_id"]].append(PredictedObject(f"d-{k:06d}", d["category_id"], d["score"], Box(x, y, w, h)))
    with running.client(running.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=p, task_type=pb.TASK_TYPE_OBJECT_DETECTION_2D,
            classes=[pb.ClassDef(id=cat["id"], name=f"c{cat['id']}") for cat in dataset["categories"]])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project=p, dataset=pb.Dataset(
            name="val", kind=pb.DATASET_KIND_LABELED, splits=["val"])))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=p, inference_set=pb.InferenceSet(
            name="detr", dataset="val", model_name="detr", model_version="1")))  # fmt: skip
        cols = UploadColumns(
            frame_ids=[f"img-{i:04d}" for i in images],
            sizes=[(SIZE, SIZE)] * len(images),
            metadata=[{"camera": "rear" if i % 3 == 0 else "front"} for i in images],
            splits=["val"] * len(images),
            media_uris=[f"s3://cones/img-{i:04d}.jpg" for i in images],
            objects=[gts_by_image[i] for i in images],
            inference_set="detr",
            predictions=[dts_by_image[i] for i in images],
        )
        r = c.upload(p, "val", cols, progress=False)
        st = c.wait_for_upload(p, r.upload_id, timeout=120)
        assert st.state == pb.UPLOAD_STATE_COMPLETED, st
    return dataset, dts


def test_detection_metrics_equal_pycocotools(shared: Running, project: str) -> None:
    running, p = shared, project
    dataset, dts = _upload(running, p, 11)
    images = [i["id"] for i in dataset["images"]]
    with running.client(running.admin_key) as c:
        got = c.analysis.GetDetectionMetrics(apb.GetDetectionMetricsRequest(project=p, inference_set="detr")).metrics
        with pytest.raises(grpc.RpcError) as info:  # classification metrics do not apply
            c.analysis.GetClassificationMetrics(apb.GetClassificationMetricsRequest(project=p, inference_set="detr"))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    ref = reference(dataset, dts)
    fields = ["ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large",
              "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large"]  # fmt: skip
    for name, field, value in zip(STAT_NAMES, fields, ref.stats, strict=True):
        assert getattr(got, field) == pytest.approx(value, abs=1e-6), name
    assert 0.2 < got.ap < 0.95  # a meaningful score, not a degenerate one
    assert (got.frames, got.ground_truth_objects, got.predicted_objects) == (
        len(images),
        len(dataset["annotations"]),
        len(dts),
    )
    by_class = {c.class_id: c for c in got.per_class}
    assert by_class[7].ap == -1 and by_class[7].ground_truth == 0  # never labeled: nothing to measure
    assert sum(c.predicted for c in got.per_class) == len(dts)


def _iou(d: list[float], g: list[float], crowd: bool) -> float:
    ix = max(0.0, min(d[0] + d[2], g[0] + g[2]) - max(d[0], g[0]))
    iy = max(0.0, min(d[1] + d[3], g[1] + g[3]) - max(d[1], g[1]))
    inter = ix * iy
    union = d[2] * d[3] if crowd else d[2] * d[3] + g[2] * g[3] - inter
    return inter / union if union > 0 else 0.0


def _f32(v: float) -> float:
    """As stored (scores and IoUs are float32) and compared by the server."""
    return float(np.float32(v))


def _brute_force(dataset: dict, dts: list[dict], iou_thr: float, conf_thr: float):  # type: ignore[no-untyped-def]
    """Global greedy matching written out plainly: (counts by (label, predicted) with None for the
    false-positive row and the missed column, the records per cell as (frame, label object,
    predicted object, iou, score), ignored predictions)."""
    from collections import Counter, defaultdict

    counts: Counter = Counter()  # type: ignore[type-arg]
    cells = defaultdict(set)
    ignored = 0
    for img in (i["id"] for i in dataset["images"]):
        frame = f"img-{img:04d}"
        gts = [a for a in dataset["annotations"] if a["image_id"] == img]
        dets = [(k, d) for k, d in enumerate(dts) if d["image_id"] == img and _f32(d["score"]) >= conf_thr]
        dets.sort(key=lambda kd: (-kd[1]["score"], kd[0]))
        taken: set[int] = set()
        for k, d in dets:
            best, best_iou, top = None, -1.0, 0.0
            for a in gts:
                iou = _iou(d["bbox"], a["bbox"], bool(a["iscrowd"]))
                top = max(top, iou)
                if a["iscrowd"] or a["id"] in taken:
                    continue
                if iou >= iou_thr and iou > best_iou:
                    best, best_iou = a, iou
            if best is not None:
                taken.add(best["id"])
                key = (best["category_id"], d["category_id"])
                cells[key].add((frame, f"g-{best['id']:06d}", f"d-{k:06d}", _f32(best_iou), _f32(d["score"])))
            elif any(a["iscrowd"] and _iou(d["bbox"], a["bbox"], True) >= iou_thr for a in gts):
                ignored += 1
                continue
            else:
                key = (None, d["category_id"])
                cells[key].add((frame, "", f"d-{k:06d}", _f32(top), _f32(d["score"])))
            counts[key] += 1
        for a in gts:
            if not a["iscrowd"] and a["id"] not in taken:
                key = (a["category_id"], None)
                counts[key] += 1
                cells[key].add((frame, f"g-{a['id']:06d}", "", 0.0, None))
    return counts, cells, ignored


def _grid(c, p: str, iou: float, conf: float, inference_set: str = "detr") -> tuple[list[int], np.ndarray, int]:  # type: ignore[no-untyped-def]
    conf_msg = c.analysis.GetDetectionConfusion(apb.GetDetectionConfusionRequest(
        project=p, inference_set=inference_set, iou_threshold=iou, confidence_threshold=conf)).confusion  # fmt: skip
    ids = list(conf_msg.class_ids)
    return ids, np.array(conf_msg.counts).reshape(len(ids) + 1, len(ids) + 1), conf_msg.ignored_predictions


def _assert_grid(
    c, p: str, dataset: dict, dts: list[dict], iou: float, conf: float, inference_set: str = "detr"
) -> None:  # type: ignore[no-untyped-def,type-arg]
    counts, _, ignored = _brute_force(dataset, dts, iou, conf)
    ids, grid, got_ignored = _grid(c, p, iou, conf, inference_set)
    labels = [*ids, None]
    for i, lc in enumerate(labels):
        for j, pc in enumerate(labels):
            assert grid[i, j] == counts.get((lc, pc), 0), (iou, conf, lc, pc)
    assert got_ignored == ignored and grid[-1, -1] == 0


def _open(c, req: apb.QueryDetectionMatchesRequest, page_size: int = 7) -> tuple[list[tuple], int]:  # type: ignore[no-untyped-def,type-arg]
    """Every record a query selects, page by page (from its page token on), as (frame, label
    object, predicted object, iou, score), and the total the last page reported."""
    got, token = [], req.page.page_token
    while True:
        req.page.CopyFrom(cpb.PageRequest(page_size=page_size, page_token=token))
        resp = c.analysis.QueryDetectionMatches(req)
        got += [(m.frame_id, m.label_object_id, m.predicted_object_id, m.iou,
                 m.score if m.HasField("score") else None) for m in resp.matches]  # fmt: skip
        token = resp.page.next_page_token
        if not token:
            return got, resp.page.total_count


def _ids(records) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    return sorted(r[:3] for r in records)


def test_detection_confusion_with_global_matching_opens_every_cell(shared: Running, project: str) -> None:
    running, p = shared, project
    dataset, dts = _upload(running, p, 12)
    with running.client(running.admin_key) as c:
        # one stored matching per IoU answers every confidence threshold; IoU 0.75 is matched on
        # first request
        for iou, conf in ((0.5, 0.3), (0.5, 0.0), (0.5, 0.75), (0.75, 0.3), (0.75, 0.55)):
            _assert_grid(c, p, dataset, dts, iou, conf)
        _, cells, _ = _brute_force(dataset, dts, 0.5, 0.3)
        _, grid, _ = _grid(c, p, 0.5, 0.3)
        k = grid.shape[0] - 1
        assert grid[:k, :k].trace() > 50 and grid[k].sum() > 10 and grid[:, k].sum() > 10  # every kind occurs
        # every cell opens to exactly its records, page by page
        for (lc, pc), want in cells.items():
            req = apb.QueryDetectionMatchesRequest(project=p, inference_set="detr", confidence_threshold=0.3)
            if lc is not None:
                req.label_class = lc
            if pc is not None:
                req.predicted_class = pc
            got, total = _open(c, req)
            assert _ids(got) == _ids(want), (lc, pc)
            assert total == len(want)
            assert [r[4] for r in got] == sorted((r[4] for r in got), key=lambda v: -1 if v is None else -v)
        # rows carry the frame's media and both boxes, as uploaded
        boxes = {f"g-{a['id']:06d}": a["bbox"] for a in dataset["annotations"]}
        boxes.update({f"d-{k:06d}": d["bbox"] for k, d in enumerate(dts)})
        page = c.analysis.QueryDetectionMatches(apb.QueryDetectionMatchesRequest(
            project=p, inference_set="detr", confidence_threshold=0.3, label_class=1, any_predicted_class=True,
            page=cpb.PageRequest(page_size=100))).matches  # fmt: skip
        assert any(m.predicted_object_id for m in page) and any(not m.predicted_object_id for m in page)
        for m in page:
            assert m.media_uri == f"s3://cones/{m.frame_id}.jpg" and m.split == "val"
            got_box = [m.label_box.x, m.label_box.y, m.label_box.width, m.label_box.height]
            assert got_box == boxes[m.label_object_id]
            if m.predicted_object_id:
                assert [m.predicted_box.x, m.predicted_box.y, m.predicted_box.width,
                        m.predicted_box.height] == boxes[m.predicted_object_id]  # fmt: skip
            else:
                assert not m.HasField("predicted_box")
        # matched below the confidence threshold: the labeled box is missed, with no prediction
        _, cells_hi, _ = _brute_force(dataset, dts, 0.5, 0.75)
        got, _ = _open(c, apb.QueryDetectionMatchesRequest(project=p, inference_set="detr",
                                                           confidence_threshold=0.75, label_class=1))  # fmt: skip
        assert _ids(got) == _ids(cells_hi[(1, None)]) and all(r[2] == "" and r[4] is None for r in got)
        for bad, field in (
            (apb.QueryDetectionMatchesRequest(project=p, inference_set="detr", label_class=1,
                                              iou_threshold=0.555), "iou_threshold"),
            (apb.QueryDetectionMatchesRequest(project=p, inference_set="detr"), "label_class"),
            (apb.QueryDetectionMatchesRequest(project=p, inference_set="detr", any_label_class=True,
                                              min_score=1.5), "min_score"),
            (apb.QueryDetectionMatchesRequest(project=p, inference_set="detr", any_label_class=True,
                                              frame_filter=cpb.Filter(all=[cpb.Condition(
                                                  field="label_class", equals=cpb.Value(number_value=1))])),
             "frame_filter.all[0].field"),
        ):  # fmt: skip
            with pytest.raises(grpc.RpcError) as info:
                c.analysis.QueryDetectionMatches(bad)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
            assert field in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            c.analysis.QueryDetectionMatches(apb.QueryDetectionMatchesRequest(
                project=p, inference_set="nope", label_class=1))  # fmt: skip
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_detection_drill_down_by_score_iou_and_frame_fields(shared: Running, project: str) -> None:
    running, p = shared, project
    dataset, dts = _upload(running, p, 13)
    _, cells, _ = _brute_force(dataset, dts, 0.5, 0.2)
    everything = [(lc, pc, r) for (lc, pc), records in cells.items() for r in records]
    rear = {f"img-{i['id']:04d}" for i in dataset["images"] if i["id"] % 3 == 0}
    with running.client(running.admin_key) as c:
        # any cell, a score band, an IoU floor, frames of the rear camera: localization errors
        req = apb.QueryDetectionMatchesRequest(
            project=p, inference_set="detr", confidence_threshold=0.2, any_label_class=True,
            any_predicted_class=True, min_score=0.4, max_score=0.8, min_iou=0.3,
            frame_filter=cpb.Filter(all=[cpb.Condition(field="metadata.camera",
                                                       equals=cpb.Value(string_value="rear"))]),
        )  # fmt: skip
        got, total = _open(c, req, page_size=5)
        want = [r for _, _, r in everything
                if r[0] in rear and r[4] is not None and 0.4 <= r[4] <= 0.8 and r[3] >= 0.3]  # fmt: skip
        assert _ids(got) == _ids(want) and total == len(want) and len(want) > 10
        # false positives of class 2 that overlap something: wrong class or duplicate, worst IoU first
        req = apb.QueryDetectionMatchesRequest(
            project=p, inference_set="detr", confidence_threshold=0.2, predicted_class=2, min_iou=0.1,
            order=apb.DETECTION_MATCH_ORDER_IOU_ASCENDING,
        )  # fmt: skip
        got, total = _open(c, req)
        want = [r for lc, pc, r in everything if lc is None and pc == 2 and r[3] >= 0.1]
        assert _ids(got) == _ids(want) and len(want) > 0
        assert [r[3] for r in got] == sorted(r[3] for r in got)
        assert all(r[3] == pytest.approx(w[3], abs=1e-6) for r, w in zip(sorted(got), sorted(want), strict=True))
        # the whole missed column, of every class
        req = apb.QueryDetectionMatchesRequest(project=p, inference_set="detr", confidence_threshold=0.2,
                                               any_label_class=True)  # fmt: skip
        got, total = _open(c, req, page_size=50)
        want = [r for lc, pc, r in everything if pc is None]
        assert _ids(got) == _ids(want)
        # a value that looks like SQL is only a value
        req = apb.QueryDetectionMatchesRequest(
            project=p, inference_set="detr", any_label_class=True, any_predicted_class=True,
            frame_filter=cpb.Filter(all=[cpb.Condition(field="metadata.camera",
                                                       equals=cpb.Value(string_value="rear' OR 1=1 --"))]),
        )  # fmt: skip
        assert _open(c, req) == ([], 0)
        # keyset pages: a frame arriving between two pages neither repeats nor hides a row
        req = apb.QueryDetectionMatchesRequest(project=p, inference_set="detr", confidence_threshold=0.2,
                                               any_label_class=True, any_predicted_class=True,
                                               page=cpb.PageRequest(page_size=25))  # fmt: skip
        first = c.analysis.QueryDetectionMatches(req)
        seen = [(m.frame_id, m.label_object_id, m.predicted_object_id) for m in first.matches]
        boxes = [Box(10 + 50 * j, 10, 40, 40) for j in range(3)]
        r = c.upload(p, "val", UploadColumns(
            frame_ids=["img-9999"], sizes=[(SIZE, SIZE)], metadata=[{"camera": "front"}],
            objects=[[LabeledObject(f"g-new-{j}", 1, b) for j, b in enumerate(boxes)]], inference_set="detr",
            predictions=[[PredictedObject(f"d-new-{j}", 1, 0.99, b) for j, b in enumerate(boxes)]]), progress=False)  # fmt: skip
        assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        req.page.page_token = first.page.next_page_token
        rest, _ = _open(c, req, page_size=25)
        seen += [r[:3] for r in rest]
        assert len(seen) == len(set(seen)) and sorted(seen) == _ids(r for _, _, r in everything)
        assert c.analysis.QueryDetectionMatches(apb.QueryDetectionMatchesRequest(
            project=p, inference_set="detr", confidence_threshold=0.2, label_class=1, predicted_class=1,
            page=cpb.PageRequest(page_size=1))).matches[0].frame_id == "img-9999"  # fmt: skip

        # a segment of objects: the class-2 false positives, saved and opened again
        fps = [r for lc, pc, r in everything if lc is None and pc == 2]
        seg = c.analysis.CreateSegment(apb.CreateSegmentRequest(project=p, segment=apb.Segment(
            name="fp-c2", dataset="val", kind=apb.SEGMENT_KIND_ISSUE, reason="spurious class 2", author="ana"),
            objects=[apb.ObjectRef(frame_id=r[0], object_id=r[2]) for r in fps])).segment  # fmt: skip
        assert seg.size == len(fps)
        members = c.analysis.ListSegmentMembers(apb.ListSegmentMembersRequest(
            project=p, name="fp-c2", page=cpb.PageRequest(page_size=1000))).members  # fmt: skip
        assert sorted((m.frame_id, m.object_id) for m in members) == sorted((r[0], r[2]) for r in fps)
        got, _ = _open(c, apb.QueryDetectionMatchesRequest(project=p, inference_set="detr",
                                                           confidence_threshold=0.2, any_label_class=True,
                                                           any_predicted_class=True, object_segment="fp-c2"))  # fmt: skip
        assert _ids(got) == _ids(fps)
        c.analysis.UpdateSegment(apb.UpdateSegmentRequest(project=p, name="fp-c2", remove_objects=[
            apb.ObjectRef(frame_id=fps[0][0], object_id=fps[0][2])]))  # fmt: skip
        got, _ = _open(c, apb.QueryDetectionMatchesRequest(project=p, inference_set="detr",
                                                           confidence_threshold=0.2, any_label_class=True,
                                                           any_predicted_class=True, object_segment="fp-c2"))  # fmt: skip
        assert _ids(got) == _ids(fps[1:])
        with pytest.raises(grpc.RpcError) as info:
            c.analysis.UpdateSegment(apb.UpdateSegmentRequest(project=p, name="fp-c2", add_objects=[
                apb.ObjectRef(frame_id=fps[0][0], object_id="no-such-box")]))  # fmt: skip
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "add_objects[0]" in info.value.details() and "no-such-box" in info.value.details()


def test_detection_outcomes_follow_new_labels_predictions_and_sets(shared: Running, project: str) -> None:
    running, p = shared, project
    dataset, dts = _upload(running, p, 14)
    with running.client(running.admin_key) as c:
        _assert_grid(c, p, dataset, dts, 0.75, 0.3)  # kept current from now on
        # relabel: frames 1-4 lose every box, frames 5-8 have their boxes' classes rotated
        changed = {1, 2, 3, 4, 5, 6, 7, 8}
        anns = [a for a in dataset["annotations"] if a["image_id"] not in (1, 2, 3, 4)]
        for a in anns:
            if a["image_id"] in changed:
                a["category_id"] = {1: 2, 2: 3, 3: 1}[a["category_id"]]
        dataset = {**dataset, "annotations": anns}
        # new predictions for frames 9-12: scores halved
        dts = [dict(d, score=d["score"] / 2) if 9 <= d["image_id"] <= 12 else d for d in dts]
        frames = sorted(changed)
        objects = [[LabeledObject(f"g-{a['id']:06d}", a["category_id"], Box(*a["bbox"]), is_crowd=bool(a["iscrowd"]))
                    for a in anns if a["image_id"] == i] for i in frames]  # fmt: skip
        r = c.upload(p, "val", UploadColumns(frame_ids=[f"img-{i:04d}" for i in frames], objects=objects,
                                                   skip_frames=True), progress=False)  # fmt: skip
        assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        frames = [9, 10, 11, 12]
        preds = [[PredictedObject(f"d-{k:06d}", d["category_id"], d["score"], Box(*d["bbox"]))
                  for k, d in enumerate(dts) if d["image_id"] == i] for i in frames]  # fmt: skip
        r = c.upload(p, "val", UploadColumns(frame_ids=[f"img-{i:04d}" for i in frames], inference_set="detr",
                                                   predictions=preds, skip_frames=True), progress=False)  # fmt: skip
        assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        for iou, conf in ((0.5, 0.3), (0.75, 0.3), (0.75, 0.0)):
            _assert_grid(c, p, dataset, dts, iou, conf)
        # a set created after the labels: every labeled box is missed until its predictions arrive
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=p, inference_set=pb.InferenceSet(
            name="yolo", dataset="val", model_name="yolo", model_version="8")))  # fmt: skip
        _assert_grid(c, p, dataset, [], 0.5, 0.0, inference_set="yolo")
        yolo = [dict(d, score=round(1 - d["score"], 2)) for d in dts]
        images = [i["id"] for i in dataset["images"]]
        preds = [[PredictedObject(f"d-{k:06d}", d["category_id"], d["score"], Box(*d["bbox"]))
                  for k, d in enumerate(yolo) if d["image_id"] == i] for i in images]  # fmt: skip
        r = c.upload(p, "val", UploadColumns(frame_ids=[f"img-{i:04d}" for i in images], inference_set="yolo",
                                                   predictions=preds, skip_frames=True), progress=False)  # fmt: skip
        assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        _assert_grid(c, p, dataset, yolo, 0.5, 0.3, inference_set="yolo")


def _per_class(counts, classes: list[int]) -> dict[int, tuple[float, float]]:  # type: ignore[no-untyped-def]
    """(precision, recall) per class of a brute-force confusion: false positives count against
    precision, missed boxes against recall."""
    out = {}
    for cl in classes:
        tp = counts.get((cl, cl), 0)
        predicted = sum(n for (lc, pc), n in counts.items() if pc == cl)
        labeled = sum(n for (lc, pc), n in counts.items() if lc == cl)
        out[cl] = (tp / predicted if predicted else 0.0, tp / labeled if labeled else 0.0)
    return out


def test_detection_slices_comparison_and_gates(shared: Running, project: str) -> None:
    running, p = shared, project
    dataset, dts = _upload(running, p, 15)
    # a worse model: half of its class-1 predictions say class 2
    worse = [dict(d, category_id=2) if d["category_id"] == 1 and k % 2 == 0 else d for k, d in enumerate(dts)]
    images = [i["id"] for i in dataset["images"]]
    classes = [cat["id"] for cat in dataset["categories"]]
    rear = [f"img-{i:04d}" for i in images if i % 3 == 0]
    camera = {f"img-{i:04d}": "rear" if i % 3 == 0 else "front" for i in images}
    with running.client(running.admin_key) as c:
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=p, inference_set=pb.InferenceSet(
            name="worse", dataset="val", model_name="detr", model_version="2")))  # fmt: skip
        preds = [[PredictedObject(f"d-{k:06d}", d["category_id"], d["score"], Box(*d["bbox"]))
                  for k, d in enumerate(worse) if d["image_id"] == i] for i in images]  # fmt: skip
        r = c.upload(p, "val", UploadColumns(frame_ids=[f"img-{i:04d}" for i in images], inference_set="worse",
                                                   predictions=preds, skip_frames=True), progress=False)  # fmt: skip
        assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        counts, cells, _ = _brute_force(dataset, dts, 0.5, 0.3)
        w_counts, w_cells, _ = _brute_force(dataset, worse, 0.5, 0.3)

        # slices by camera: right-class matches over every outcome, per slice
        got = c.analysis.GetSlices(apb.GetSlicesRequest(project=p, inference_set="detr",
                                                        group_by="metadata.camera", confidence_threshold=0.3))  # fmt: skip
        records = [(lc, pc, r) for (lc, pc), rs in cells.items() for r in rs]
        for s in got.slices:
            mine = [(lc, pc) for lc, pc, r in records if camera[r[0]] == s.value]
            assert s.objects == len(mine) and s.correct == sum(lc == pc for lc, pc in mine), s.value
            assert s.accuracy == pytest.approx(s.correct / s.objects)
            assert s.frames == len({r[0] for lc, pc, r in records if camera[r[0]] == s.value})
        assert {s.value for s in got.slices} == {"front", "rear"} and got.objects == len(records)

        # comparison: per-class precision and recall of both, and the labeled boxes that changed
        cmp = c.analysis.CompareInferenceSets(apb.CompareInferenceSetsRequest(
            project=p, baseline_inference_set="detr", candidate_inference_set="worse",
            confidence_threshold=0.3))  # fmt: skip
        base, cand = _per_class(counts, classes), _per_class(w_counts, classes)
        for d in cmp.per_class:
            assert (d.baseline.precision, d.baseline.recall) == pytest.approx(base[d.class_id]), d.class_id
            assert (d.candidate.precision, d.candidate.recall) == pytest.approx(cand[d.class_id]), d.class_id
        found = {r[:2] for (lc, pc), rs in cells.items() if lc == pc for r in rs}
        w_found = {r[:2] for (lc, pc), rs in w_cells.items() if lc == pc for r in rs}
        assert cmp.improved == len(w_found - found) and cmp.regressed == len(found - w_found) > 5
        labeled = {r[:2] for (lc, pc), rs in cells.items() if lc is not None for r in rs}
        assert cmp.objects == len(labeled)
        req = apb.QueryDetectionMatchesRequest(project=p, inference_set="worse", confidence_threshold=0.3,
                                               any_label_class=True, any_predicted_class=True,
                                               baseline_inference_set="detr", change="regressed")  # fmt: skip
        got_rows, total = _open(c, req)
        assert sorted(r[:2] for r in got_rows) == sorted(found - w_found) and total == len(found - w_found)

        # gates on the rear camera's frames: recall of class 1 holds for detr, not for the worse model
        rear_records = [(lc, pc, r) for lc, pc, r in records if r[0] in set(rear)]
        w_rear = [(lc, pc, r) for (lc, pc), rs in w_cells.items() for r in rs if r[0] in set(rear)]

        def recall(rs):  # type: ignore[no-untyped-def]
            ones = [(lc, pc) for lc, pc, _ in rs if lc == 1]
            return sum(pc == 1 for _, pc in ones) / len(ones)

        minimum = (recall(rear_records) + recall(w_rear)) / 2
        c.analysis.CreateSegment(apb.CreateSegmentRequest(project=p, frame_ids=rear, segment=apb.Segment(
            name="rear-rt", dataset="val", kind=apb.SEGMENT_KIND_REGRESSION_TEST, reason="rear camera",
            author="ana", gates=[apb.Gate(metric="recall", class_id=1, minimum=minimum)])))  # fmt: skip
        for name, want_value, passed in (("detr", recall(rear_records), True), ("worse", recall(w_rear), False)):
            res = c.analysis.EvaluateGates(apb.EvaluateGatesRequest(project=p, inference_set=name,
                                                                    confidence_threshold=0.3)).results  # fmt: skip
            assert len(res) == 1 and res[0].passed is passed and res[0].value == pytest.approx(want_value), name
    # the release gate in CI, at the same thresholds
    env = {**os.environ, "SHOAL_API_KEY": running.admin_key}
    for name, code in (("detr", 0), ("worse", 1)):
        done = subprocess.run(
            [sys.executable, "-m", "shoal.cli", "check", "--target", running.target, "--project", p,
             "--inference-set", name, "--confidence-threshold", "0.3", "--iou-threshold", "0.5"],
            capture_output=True, text=True, env=env, timeout=scaled(120),
        )  # fmt: skip
        assert done.returncode == code, (name, done.stdout, done.stderr)
        assert ("PASS" if code == 0 else "FAIL") + "  rear-rt: recall[class 1]" in done.stdout
