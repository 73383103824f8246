"""COCO detection metrics and the detection confusion matrix on N frames in chDB, beside pycocotools on the same boxes.

Three processes, so that each peak memory is its own:

1. a loader writes N frames with about 8 labeled and 8 predicted boxes each into chDB (Arrow inserts into Shoal's
   tables);
2. Shoal, each step in its own process: the global matching at IoU 0.5 stored per frame (what the consumer does batch
   by batch at ingest), then the requests: `detection_confusion` at two confidence thresholds, a page of a cell and a
   filtered drill-down page; then `detection_report` (the twelve COCO numbers and per-class AP);
3. the peers: pycocotools' COCOeval (evaluate, accumulate, summarize) on the same boxes in memory, and the confusion
   matrix computed in memory (the same matching, then scikit-learn's `confusion_matrix`), which must equal Shoal's.

    python bench/analysis_metrics/bench_detection.py --frames 10000 100000
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.harness import frame_name, load_boxes, peak_rss_mib, results_header, run_child, write_results  # noqa: E402

MODULE = "bench.analysis_metrics.bench_detection"

CLASSES = list(range(1, 11))
PROJECT, DATASET, INFERENCE_SET = "bench", "d", "m"
SIZE = 1024


def data(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Boxes of n frames: ground truth (some crowd), and detections near them or anywhere, with
    scores in 0.01 steps (so ties occur). Coordinates are half pixels (exact in float32)."""
    rng = np.random.default_rng(seed)
    per = rng.integers(0, 16, n)
    g = int(per.sum())
    g_frame = np.repeat(np.arange(n), per)
    side = np.exp(rng.uniform(np.log(6), np.log(400), (g, 2)))
    g_xy = rng.uniform(0, 1, (g, 2)) * (SIZE - side)
    g_box = np.floor(np.concatenate([g_xy, side], axis=1) * 2) / 2
    g_cls = rng.choice(CLASSES, g)
    g_crowd = rng.random(g) < 0.03
    # detections: most ground truth seen once (some twice), jittered, sometimes the wrong class; plus noise
    seen = rng.random(g) < 0.8
    src = np.flatnonzero(seen)
    src = np.concatenate([src, src[rng.random(len(src)) < 0.1]])
    jitter = rng.normal(0, 0.08, (len(src), 4)) * np.repeat(g_box[src, 2:], 2, axis=1)
    d_box = g_box[src] + jitter
    d_cls = np.where(rng.random(len(src)) < 0.9, g_cls[src], rng.choice(CLASSES, len(src)))
    d_frame = g_frame[src]
    noise = int(0.3 * g)
    n_side = np.exp(rng.uniform(np.log(6), np.log(300), (noise, 2)))
    n_box = np.concatenate([rng.uniform(0, 1, (noise, 2)) * (SIZE - n_side), n_side], axis=1)
    d_box = np.concatenate([d_box, n_box])
    d_cls = np.concatenate([d_cls, rng.choice(CLASSES, noise)])
    d_frame = np.concatenate([d_frame, rng.integers(0, n, noise)])
    d_box[:, 2:] = np.clip(d_box[:, 2:], 1, None)
    d_box[:, :2] = np.clip(d_box[:, :2], 0, SIZE - 1)
    d_box[:, 2] = np.minimum(d_box[:, 2], SIZE - d_box[:, 0])
    d_box[:, 3] = np.minimum(d_box[:, 3], SIZE - d_box[:, 1])
    d_box = np.floor(d_box * 2) / 2
    d_box[:, 2:] = np.clip(d_box[:, 2:], 0.5, None)
    d_score = rng.integers(1, 100, len(d_box)) / 100
    # in frame order, then input order: object ids follow it (they break score ties)
    order = np.argsort(d_frame, kind="stable")
    return {
        "g_frame": g_frame, "g_box": g_box, "g_cls": g_cls, "g_crowd": g_crowd,
        "d_frame": d_frame[order], "d_box": d_box[order], "d_cls": d_cls[order], "d_score": d_score[order],
    }  # fmt: skip


def load(n: int, path: str) -> dict:  # type: ignore[type-arg]
    out = load_boxes(path, project=PROJECT, dataset=DATASET, inference_set=INFERENCE_SET, n=n, boxes=data(n),
                     size=(SIZE, SIZE))  # fmt: skip
    return {"load_seconds": out["load_seconds"], "ground_truth": out["labeled"], "predicted": out["predicted"]}


def _store(path: str):  # type: ignore[no-untyped-def]
    from shoal.common.stores.metrics import EmbeddedMetricsStore

    return EmbeddedMetricsStore(path=Path(path), database="bench")


def shoal_match(path: str) -> dict:  # type: ignore[type-arg]
    """Global matching of every frame at IoU 0.5, stored per frame: what the consumer does batch by
    batch as uploads arrive (here all at once, in steps of 200k frames)."""
    from shoal.common.data import outcomes

    m = _store(path)
    m.migrate(outcomes.MIGRATIONS)
    t = time.perf_counter()
    outcomes.OutcomeRefresher(m).materialize(PROJECT, DATASET, INFERENCE_SET, 0.5)
    return {"match_seconds": round(time.perf_counter() - t, 2), "peak_rss_mib": round(peak_rss_mib())}


def shoal_queries(path: str) -> dict:  # type: ignore[type-arg]
    """What a user's requests cost once the outcomes are stored: the confusion matrix at two
    confidence thresholds, one page of a cell, and one page of a filtered drill-down."""
    from shoal.analysis import detection

    m = _store(path)
    out: dict = {}  # type: ignore[type-arg]
    for conf in (0.0, 0.5):
        t = time.perf_counter()
        run = detection.detection_confusion(m, PROJECT, DATASET, INFERENCE_SET, CLASSES, iou_threshold=0.5,
                                            confidence_threshold=conf)  # fmt: skip
        out[f"confusion_seconds_conf{conf}"] = round(time.perf_counter() - t, 2)
        if conf == 0.0:
            out["counts"] = run.counts.tolist()
    t = time.perf_counter()
    rows, total, _ = detection.query_matches(m, PROJECT, DATASET, detection.MatchQuery(INFERENCE_SET, 0.5, 0.5, 1, 2),
                                             50)  # fmt: skip
    assert len(rows) == min(50, total)
    out["page_seconds"] = round(time.perf_counter() - t, 3)
    out["cell_total"] = total
    t = time.perf_counter()
    q = detection.MatchQuery(INFERENCE_SET, 0.5, 0.5, None, None, min_score=0.6, max_score=0.9, max_iou=0.7,
                             order=2)  # by IoU  # fmt: skip
    rows, total, _ = detection.query_matches(m, PROJECT, DATASET, q, 50)
    out["filtered_page_seconds"] = round(time.perf_counter() - t, 3)
    out["peak_rss_mib"] = round(peak_rss_mib())
    return out


def shoal_coco(path: str) -> dict:  # type: ignore[type-arg]
    from shoal.analysis import detection

    m = _store(path)
    t = time.perf_counter()
    report = detection.detection_report(m, PROJECT, DATASET, INFERENCE_SET, CLASSES)
    return {"coco_seconds": round(time.perf_counter() - t, 2), "peak_rss_mib": round(peak_rss_mib()),
            "stats": report.result.stats}  # fmt: skip


def peer_confusion(n: int) -> dict:  # type: ignore[type-arg]
    """The in-memory alternative: the same boxes as arrays, the same global matching, then
    scikit-learn's confusion_matrix over the (label, predicted) pairs."""
    from sklearn.metrics import confusion_matrix

    from shoal.common.data.outcomes import FALSE_POSITIVE, MATCHED, MISSED, match_frames

    d = data(n)
    t = time.perf_counter()
    frames = np.asarray(frame_name(np.arange(n)), dtype=object)
    g = len(d["g_frame"])
    k = len(d["d_frame"])
    gt = {"frame_id": frames[d["g_frame"]], "object_id": np.asarray([f"g{i:09d}" for i in range(g)], dtype=object), "class_id": d["g_cls"],
          "crowd": d["g_crowd"], **{c: d["g_box"][:, j].astype(np.float32) for j, c in enumerate("xywh")}}  # fmt: skip
    dt = {"frame_id": frames[d["d_frame"]], "object_id": np.asarray([f"d{i:09d}" for i in range(k)], dtype=object), "class_id": d["d_cls"],
          "score": d["d_score"].astype(np.float32), **{c: d["d_box"][:, j].astype(np.float32) for j, c in enumerate("xywh")}}  # fmt: skip
    cols = match_frames(frames, gt, dt, 0.5)
    kinds = cols["kinds"].flatten().to_numpy()
    label = cols["label_classes"].flatten().to_numpy()
    pred = cols["predicted_classes"].flatten().to_numpy()
    keep = np.isin(kinds, (MATCHED, FALSE_POSITIVE, MISSED))
    counts = confusion_matrix(label[keep], pred[keep], labels=[*CLASSES, -1])
    return {"confusion_seconds": round(time.perf_counter() - t, 2), "peak_rss_mib": round(peak_rss_mib()),
            "counts": counts.tolist()}  # fmt: skip


def peer_side(n: int) -> dict:  # type: ignore[type-arg]
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    d = data(n)
    t = time.perf_counter()
    gt = {
        "images": [{"id": i, "width": SIZE, "height": SIZE} for i in range(n)],
        "annotations": [
            {"id": i + 1, "image_id": int(f), "category_id": int(c), "bbox": [float(v) for v in b],
             "area": float(b[2] * b[3]), "iscrowd": int(cr)}
            for i, (f, c, b, cr) in enumerate(zip(d["g_frame"], d["g_cls"], d["g_box"].astype(np.float32), d["g_crowd"], strict=True))
        ],
        "categories": [{"id": c, "name": str(c)} for c in CLASSES],
    }  # fmt: skip
    dts = [
        {"image_id": int(f), "category_id": int(c), "bbox": [float(v) for v in b], "score": float(s)}
        for f, c, b, s in zip(d["d_frame"], d["d_cls"], d["d_box"].astype(np.float32),
                              d["d_score"].astype(np.float32), strict=True)
    ]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dts)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"coco_seconds": round(time.perf_counter() - t, 2), "peak_rss_mib": round(peak_rss_mib()),
            "stats": [float(x) for x in ev.stats]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument(
        "--peer-max-frames",
        type=int,
        default=100_000,
        help="run pycocotools only up to this size (it needs about 4 GiB per million boxes)",
    )
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "analysis_metrics" / "results_detection.json")
    args = ap.parse_args()
    names = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
             "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large"]  # fmt: skip
    results = results_header()
    for n in args.frames:
        work = Path(tempfile.mkdtemp(prefix="bench-detection-"))
        try:
            print(f"[{n}] loading ...", flush=True)
            loaded = run_child(MODULE, "load", n, str(work / "ch"))
            print(f"[{n}] {loaded}; matching ...", flush=True)
            match = run_child(MODULE, "shoal_match", str(work / "ch"))
            print(f"[{n}] {match}; queries ...", flush=True)
            queries = run_child(MODULE, "shoal_queries", str(work / "ch"))
            print(f"[{n}] COCO ...", flush=True)
            coco = run_child(MODULE, "shoal_coco", str(work / "ch"))
            peer = in_memory = None
            if n <= args.peer_max_frames:
                print(f"[{n}] pycocotools ...", flush=True)
                peer = run_child(MODULE, "peer_side", n)
                print(f"[{n}] in-memory confusion with scikit-learn ...", flush=True)
                in_memory = run_child(MODULE, "peer_confusion", n)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if peer is not None:
            for name, value in zip(names, peer["stats"], strict=True):  # the same answers, or the timings mean nothing
                assert abs(coco["stats"][name] - value) <= 1e-6, (name, coco["stats"][name], value)
        if in_memory is not None:
            assert in_memory["counts"] == queries["counts"], "the stored and the in-memory confusion differ"
        summary = {
            "load": loaded,
            "shoal": {"match_at_ingest": match, "queries": {k: v for k, v in queries.items() if k != "counts"},
                      "coco": {k: v for k, v in coco.items() if k != "stats"}},
            "pycocotools": {k: v for k, v in peer.items() if k != "stats"} if peer else "not run (memory)",
            "in_memory_confusion_sklearn": (
                {k: v for k, v in in_memory.items() if k != "counts"} if in_memory else "not run (memory)"
            ),
            "AP": coco["stats"]["AP"],
        }  # fmt: skip
        results["runs"][str(n)] = summary
        print(f"[{n}] {json.dumps(summary)}", flush=True)
    write_results(args.out, results)


if __name__ == "__main__":
    main()
