"""Detection metrics through the server: boxes uploaded with the SDK, read back from chDB and
evaluated, equal to pycocotools on the same boxes."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import Box, LabeledObject, PredictedObject, UploadColumns
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


def _upload(running: Running, seed: int) -> tuple[dict, list[dict]]:  # type: ignore[type-arg]
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
            name="cones", task_type=pb.TASK_TYPE_OBJECT_DETECTION_2D,
            classes=[pb.ClassDef(id=cat["id"], name=f"c{cat['id']}") for cat in dataset["categories"]])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project="cones", dataset=pb.Dataset(
            name="val", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project="cones", inference_set=pb.InferenceSet(
            name="detr", dataset="val", model_name="detr", model_version="1")))  # fmt: skip
        cols = UploadColumns(
            frame_ids=[f"img-{i:04d}" for i in images],
            sizes=[(SIZE, SIZE)] * len(images),
            objects=[gts_by_image[i] for i in images],
            inference_set="detr",
            predictions=[dts_by_image[i] for i in images],
        )
        r = c.upload("cones", "val", cols, progress=False)
        st = c.wait_for_upload("cones", r.upload_id, timeout=120)
        assert st.state == pb.UPLOAD_STATE_COMPLETED, st
    return dataset, dts


def test_detection_metrics_equal_pycocotools(running: Running) -> None:
    dataset, dts = _upload(running, 11)
    images = [i["id"] for i in dataset["images"]]
    with running.client(running.admin_key) as c:
        got = c.analysis.GetDetectionMetrics(
            apb.GetDetectionMetricsRequest(project="cones", inference_set="detr")
        ).metrics
        with pytest.raises(grpc.RpcError) as info:  # classification metrics do not apply
            c.analysis.GetClassificationMetrics(
                apb.GetClassificationMetricsRequest(project="cones", inference_set="detr")
            )
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


def _brute_force(dataset: dict, dts: list[dict], iou_thr: float, conf_thr: float):  # type: ignore[no-untyped-def]
    """Global greedy matching written out plainly: (counts by (label, predicted) with None for the
    false-positive row and the missed column, the records per cell, ignored predictions)."""
    from collections import Counter, defaultdict

    counts: Counter = Counter()  # type: ignore[type-arg]
    cells = defaultdict(set)
    ignored = 0
    for img in (i["id"] for i in dataset["images"]):
        frame = f"img-{img:04d}"
        gts = [a for a in dataset["annotations"] if a["image_id"] == img]
        dets = [(k, d) for k, d in enumerate(dts) if d["image_id"] == img and d["score"] >= conf_thr]
        dets.sort(key=lambda kd: (-kd[1]["score"], kd[0]))
        taken: set[int] = set()
        for k, d in dets:
            best, best_iou = None, -1.0
            for a in gts:
                if a["iscrowd"] or a["id"] in taken:
                    continue
                iou = _iou(d["bbox"], a["bbox"], False)
                if iou >= iou_thr and iou > best_iou:
                    best, best_iou = a, iou
            if best is not None:
                taken.add(best["id"])
                key = (best["category_id"], d["category_id"])
                cells[key].add((frame, f"g-{best['id']:06d}", f"d-{k:06d}"))
            elif any(a["iscrowd"] and _iou(d["bbox"], a["bbox"], True) >= iou_thr for a in gts):
                ignored += 1
                continue
            else:
                key = (None, d["category_id"])
                cells[key].add((frame, "", f"d-{k:06d}"))
            counts[key] += 1
        for a in gts:
            if not a["iscrowd"] and a["id"] not in taken:
                key = (a["category_id"], None)
                counts[key] += 1
                cells[key].add((frame, f"g-{a['id']:06d}", ""))
    return counts, cells, ignored


def test_detection_confusion_with_global_matching_opens_every_cell(running: Running) -> None:
    dataset, dts = _upload(running, 12)
    counts, cells, ignored = _brute_force(dataset, dts, 0.5, 0.3)
    with running.client(running.admin_key) as c:
        conf = c.analysis.GetDetectionConfusion(apb.GetDetectionConfusionRequest(
            project="cones", inference_set="detr", iou_threshold=0.5, confidence_threshold=0.3)).confusion  # fmt: skip
        ids = list(conf.class_ids)
        k = len(ids)
        grid = np.array(conf.counts).reshape(k + 1, k + 1)
        labels = [*ids, None]
        for i, lc in enumerate(labels):
            for j, pc in enumerate(labels):
                assert grid[i, j] == counts.get((lc, pc), 0), (lc, pc)
        assert conf.ignored_predictions == ignored and grid[k, k] == 0
        assert grid[:k, :k].trace() > 50 and grid[k].sum() > 10 and grid[:, k].sum() > 10  # every kind occurs
        # every cell opens to exactly its records, page by page
        for (lc, pc), want in cells.items():
            got, token = [], ""
            while True:
                req = apb.QueryDetectionMatchesRequest(project="cones", run_id=conf.run_id,
                                                       page=cpb.PageRequest(page_size=7, page_token=token))  # fmt: skip
                if lc is not None:
                    req.label_class = lc
                if pc is not None:
                    req.predicted_class = pc
                resp = c.analysis.QueryDetectionMatches(req)
                got += [(m.frame_id, m.label_object_id, m.predicted_object_id) for m in resp.matches]
                token = resp.page.next_page_token
                if not token:
                    break
            assert sorted(got) == sorted(want), (lc, pc)
            assert resp.page.total_count == len(want)
        scores = [m.score for m in c.analysis.QueryDetectionMatches(apb.QueryDetectionMatchesRequest(
            project="cones", run_id=conf.run_id, label_class=1, predicted_class=1)).matches]  # fmt: skip
        assert scores == sorted(scores, reverse=True)
        with pytest.raises(grpc.RpcError) as info:
            c.analysis.QueryDetectionMatches(apb.QueryDetectionMatchesRequest(
                project="cones", run_id="run-nope", label_class=1))  # fmt: skip
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
