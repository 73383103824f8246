"""COCO mask AP/AR (``iouType="segm"``) of N labeled instances in chDB, beside pycocotools on the same masks.

Three processes, so that each peak memory is its own:

1. a loader writes frames of 256 x 256 pixels with about 4 labeled instances each (ellipses of every area range,
   some crowd regions) and a model's masks (most instances found, shifted and resized a little, sometimes with
   the wrong class; false positives anywhere; scores in 0.01 steps, so ties occur) into chDB, as COCO's compact
   run-length strings with their pixel counts, as the ingest consumer writes them;
2. Shoal: ``detection_report`` with masks (reading the strings back, IoU on the run lengths, COCO's matching and
   accumulation);
3. pycocotools' COCOeval (``loadRes``, evaluate, accumulate, summarize) on the same run lengths in memory.

The twelve numbers must agree to 1e-6, or the timings mean nothing.

    python bench/analysis_metrics/bench_masks.py --instances 100000 1000000
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

from bench.harness import load_boxes, peak_rss_mib, results_header, run_child, write_results  # noqa: E402

MODULE = "bench.analysis_metrics.bench_masks"

CLASSES = list(range(1, 11))
PROJECT, DATASET, INFERENCE_SET = "bench", "d", "m"
SIZE = 256
PER_FRAME = 4
NAMES = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
         "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large"]  # fmt: skip


def ellipse(cx: float, cy: float, rx: float, ry: float, h: int = SIZE, w: int = SIZE) -> np.ndarray:
    """COCO run lengths of the pixels whose centres lie in an axis-aligned ellipse, column by column."""
    x = np.arange(max(0, int(np.floor(cx - rx))), min(w, int(np.ceil(cx + rx)) + 1))
    t = 1.0 - ((x + 0.5 - cx) / rx) ** 2
    x, t = x[t >= 0], t[t >= 0]
    dy = ry * np.sqrt(t)
    lo = np.clip(np.ceil(cy - dy - 0.5), 0, h).astype(np.int64)
    hi = np.clip(np.floor(cy + dy - 0.5) + 1, 0, h).astype(np.int64)
    keep = hi > lo
    starts, ends = x[keep] * h + lo[keep], x[keep] * h + hi[keep]
    if not len(starts):
        return np.array([h * w], dtype=np.uint32)
    # a run ending where the next column's begins is one run
    join = ends[:-1] == starts[1:]
    starts = np.concatenate([starts[:1], starts[1:][~join]])
    ends = np.concatenate([ends[:-1][~join], ends[-1:]])
    bounds = np.empty(2 * len(starts) + 2, dtype=np.int64)
    bounds[0], bounds[1:-1:2], bounds[2:-1:2], bounds[-1] = 0, starts, ends, h * w
    counts = np.diff(bounds).astype(np.uint32)
    return counts[:-1] if counts[-1] == 0 else counts  # no empty run at the end (COCO's canonical form)


def data(instances: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Masks of about ``instances`` labeled objects and the model's, as compact strings with areas and boxes."""
    from shoal.common import masks

    rng = np.random.default_rng(seed)
    n = max(1, instances // PER_FRAME)
    per = rng.integers(PER_FRAME - 2, PER_FRAME + 3, n)
    g_frame = np.repeat(np.arange(n), per)
    g = len(g_frame)
    radius = np.exp(rng.uniform(np.log(2.5), np.log(70), (g, 2)))  # small, medium and large areas
    centre = rng.uniform(0, SIZE, (g, 2))
    g_cls = rng.choice(CLASSES, g)
    g_crowd = rng.random(g) < 0.03
    seen = np.flatnonzero(rng.random(g) < 0.8)
    seen = np.concatenate([seen, seen[rng.random(len(seen)) < 0.1]])  # some found twice
    d_centre = centre[seen] + rng.normal(0, 0.08, (len(seen), 2)) * radius[seen]
    d_radius = radius[seen] * np.exp(rng.normal(0, 0.1, (len(seen), 2)))
    d_cls = np.where(rng.random(len(seen)) < 0.9, g_cls[seen], rng.choice(CLASSES, len(seen)))
    d_frame = g_frame[seen]
    noise = int(0.3 * g)
    d_centre = np.concatenate([d_centre, rng.uniform(0, SIZE, (noise, 2))])
    d_radius = np.concatenate([d_radius, np.exp(rng.uniform(np.log(2.5), np.log(50), (noise, 2)))])
    d_cls = np.concatenate([d_cls, rng.choice(CLASSES, noise)])
    d_frame = np.concatenate([d_frame, rng.integers(0, n, noise)])
    order = np.argsort(d_frame, kind="stable")  # frame order, then input order (object ids break score ties)
    d_centre, d_radius, d_cls, d_frame = d_centre[order], d_radius[order], d_cls[order], d_frame[order]

    def encode(c: np.ndarray, r: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
        strings, areas, boxes = [], np.zeros(len(c), np.int64), np.zeros((len(c), 4))
        for i in range(len(c)):
            runs = ellipse(c[i, 0], c[i, 1], r[i, 0], r[i, 1])
            strings.append(masks.to_string(runs).decode())
            areas[i] = masks.area(runs)
            boxes[i] = masks.bbox(runs, SIZE, SIZE)
        return strings, areas, boxes

    g_mask, g_area, g_box = encode(centre, radius)
    d_mask, d_area, d_box = encode(d_centre, d_radius)
    return {
        "n": np.array(n), "g_frame": g_frame, "g_cls": g_cls, "g_crowd": g_crowd, "g_mask": np.array(g_mask, object),
        "g_area": g_area, "g_box": g_box, "d_frame": d_frame, "d_cls": d_cls, "d_mask": np.array(d_mask, object),
        "d_area": d_area, "d_box": d_box, "d_score": rng.integers(1, 100, len(d_frame)) / 100,
    }  # fmt: skip


def load(instances: int, path: str) -> dict:  # type: ignore[type-arg]
    t = time.perf_counter()
    d = data(instances)
    made = round(time.perf_counter() - t, 1)
    out = load_boxes(path, project=PROJECT, dataset=DATASET, inference_set=INFERENCE_SET, n=int(d["n"]), boxes=d,
                     size=(SIZE, SIZE), task_type="INSTANCE_SEGMENTATION")  # fmt: skip
    return {"generate_seconds": made, "load_seconds": out["load_seconds"], "frames": int(d["n"]),
            "labeled": out["labeled"], "predicted": out["predicted"]}  # fmt: skip


def shoal_side(path: str) -> dict:  # type: ignore[type-arg]
    from shoal.analysis import detection
    from shoal.common.similarity import Shapes
    from shoal.common.stores.metrics import EmbeddedMetricsStore

    m = EmbeddedMetricsStore(path=Path(path), database="bench")
    t = time.perf_counter()
    report = detection.detection_report(m, PROJECT, DATASET, INFERENCE_SET, CLASSES, Shapes("segm"))
    return {"coco_seconds": round(time.perf_counter() - t, 2), "peak_rss_mib": round(peak_rss_mib()),
            "stats": report.result.stats}  # fmt: skip


def peer_side(instances: int) -> dict:  # type: ignore[type-arg]
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    d = data(instances)
    n = int(d["n"])
    t = time.perf_counter()
    size = [SIZE, SIZE]
    gt = {
        "images": [{"id": i, "width": SIZE, "height": SIZE} for i in range(n)],
        "annotations": [
            {"id": i + 1, "image_id": int(f), "category_id": int(c), "segmentation": {"size": size, "counts": s},
             "area": float(a), "iscrowd": int(cr), "bbox": [float(v) for v in b]}
            for i, (f, c, s, a, cr, b) in enumerate(zip(d["g_frame"], d["g_cls"], d["g_mask"], d["g_area"],
                                                        d["g_crowd"], d["g_box"], strict=True))
        ],
        "categories": [{"id": c, "name": str(c)} for c in CLASSES],
    }  # fmt: skip
    dts = [
        {"image_id": int(f), "category_id": int(c), "segmentation": {"size": size, "counts": s},
         "score": float(np.float32(sc))}
        for f, c, s, sc in zip(d["d_frame"], d["d_cls"], d["d_mask"], d["d_score"], strict=True)
    ]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dts)
        ev = COCOeval(coco_gt, coco_dt, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"coco_seconds": round(time.perf_counter() - t, 2), "peak_rss_mib": round(peak_rss_mib()),
            "stats": [float(x) for x in ev.stats]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--peer-max-instances", type=int, default=1_000_000, help="run pycocotools only up to this size")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "analysis_metrics" / "results_masks.json")
    args = ap.parse_args()
    results = results_header()
    for n in args.instances:
        work = Path(tempfile.mkdtemp(prefix="bench-masks-"))
        try:
            print(f"[{n}] generating and loading ...", flush=True)
            loaded = run_child(MODULE, "load", n, str(work / "ch"))
            print(f"[{n}] {loaded}; Shoal ...", flush=True)
            shoal = run_child(MODULE, "shoal_side", str(work / "ch"))
            print(f"[{n}] {shoal['coco_seconds']} s; pycocotools ...", flush=True)
            peer = run_child(MODULE, "peer_side", n) if n <= args.peer_max_instances else None
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if peer is not None:
            for name, value in zip(NAMES, peer["stats"], strict=True):  # the same answers, or the timings mean nothing
                assert abs(shoal["stats"][name] - value) <= 1e-6, (name, shoal["stats"][name], value)
        summary = {
            "load": loaded,
            "shoal": {k: v for k, v in shoal.items() if k != "stats"},
            "pycocotools": {k: v for k, v in peer.items() if k != "stats"} if peer else "not run",
            "AP": shoal["stats"]["AP"],
        }
        results["runs"][str(n)] = summary
        print(f"[{n}] {json.dumps(summary)}", flush=True)
    write_results(args.out, results)


if __name__ == "__main__":
    main()
