"""Semantic segmentation metrics over N frames of 512 x 512 in chDB, beside the plain numpy computation.

Each step in a process of its own, so that each peak memory is its own:

1. a maker draws the pool: 256 street scenes of 19 classes (Cityscapes' train ids: road and sidewalk below a
   horizon, buildings, walls and vegetation up to a skyline, sky, poles with signs and lights, cars, trucks, buses,
   people, riders and two-wheelers in perspective; an ego-vehicle band and a few blobs left unlabeled) and a model's
   map of each (some regions given a confusable class, objects missed, a few seen where there are none, boundaries
   moved in 16-pixel blocks, 0.1% speckle), kept in both forms: uint8 arrays (255 = unlabeled), numpy's input, and
   class runs (:func:`shoal.common.classmaps.encode`), the form Shoal stores;
2. Shoal at ingest: each frame's pixel confusion by one walk over both maps' runs (``confusion_table``, which calls
   ``classmaps.confusion``), 2,000 frames at a time as ``ConfusionRefresher`` steps, written into a real chDB
   ``segmentation_confusion`` table with ``insert_arrow``;
3. Shoal at query time: ``segmentation.report`` over all N frames (what GetSegmentationMetrics costs), first call
   in a new process and warm, and again under a filter selecting half the frames (the even ones);
4. numpy: for each frame ``np.bincount(K * y[valid] + p[valid], minlength=K * K)`` summed into a K x K matrix (the
   ``fast_hist`` of the FCN and DeepLab evaluation scripts; mmsegmentation's ``intersect_and_union`` takes the same
   sums with histograms), then per-class IoU, mIoU, pixel accuracy and frequency-weighted IoU. Frames are streamed,
   so its memory stays bounded. It runs twice: as a plain process, and with glibc's malloc told to keep freed memory
   (``KEEP_FREED``), which spares its per-frame temporaries a fresh mapping and page faults each time.

Frame i is the pool's pair i % 256: both sides do the same work per frame as with distinct maps (numpy reads every
pixel, the walk every run), but the maps are drawn once, not N times. Neither side's reading of maps (numpy's PNG
decoding, Shoal's reading of the runs out of ``label_versions`` and ``inferences``) is measured: both start from
their maps in memory. The confusion matrices must be equal and the metrics agree to 1e-12, or the timings mean
nothing.

    python bench/analysis_metrics/bench_segmentation.py --frames 20000 100000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.harness import peak_rss_mib, results_header, run_child, write_results  # noqa: E402

MODULE = "bench.analysis_metrics.bench_segmentation"

H = W = 512
K = 19
POOL = 256
STEP = 2_000  # frames compared and written at a time (ConfusionRefresher's step)
VOID = 255  # unlabeled in the uint8 maps; classmaps.UNLABELED (65535) in the runs
PROJECT, DATASET, INFERENCE_SET = "bench", "d", "m"
REPEATS = 10
# glibc's malloc told to keep freed memory: numpy's per-frame temporaries (0.25 to 1 MiB) then reuse pages instead of
# each being mapped afresh and faulted in, which is most of the default run's time (see RESULTS.md)
KEEP_FREED = {"MALLOC_MMAP_THRESHOLD_": "8388608", "MALLOC_TRIM_THRESHOLD_": "67108864"}

# Cityscapes' 19 train ids
ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, TERRAIN, SKY = range(11)
PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = range(11, 19)
# the class a model takes each class for when it is wrong about a region
CONFUSED = np.array([SIDEWALK, ROAD, WALL, BUILDING, WALL, BUILDING, POLE, POLE, TERRAIN, VEGETATION, BUILDING,
                     RIDER, PERSON, TRUCK, BUS, TRAIN, BUS, BICYCLE, MOTORCYCLE], np.uint8)  # fmt: skip
OBJECTS = np.array([CAR, CAR, CAR, PERSON, PERSON, RIDER, TRUCK, BUS, BICYCLE, MOTORCYCLE, TRAIN])
OBJECT_P = np.array([0.3, 0.15, 0.1, 0.12, 0.1, 0.04, 0.05, 0.04, 0.05, 0.03, 0.02])


def _ellipse(a: np.ndarray, cy: float, cx: float, ry: float, rx: float, value: int | np.ndarray) -> None:
    """Sets the pixels of ``a`` whose centres lie in the ellipse to ``value`` (a class, or a lookup table of the
    class each class becomes)."""
    y0, y1 = max(0, int(cy - ry)), min(a.shape[0], int(cy + ry) + 1)
    x0, x1 = max(0, int(cx - rx)), min(a.shape[1], int(cx + rx) + 1)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.ogrid[y0:y1, x0:x1]
    inside = ((yy + 0.5 - cy) / ry) ** 2 + ((xx + 0.5 - cx) / rx) ** 2 < 1
    box = a[y0:y1, x0:x1]
    box[inside] = value[box[inside]] if isinstance(value, np.ndarray) else value


def scene(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A street scene of (H, W) class ids, every pixel classed, and its horizon row."""
    a = np.full((H, W), SKY, np.uint8)
    horizon = int(H * rng.uniform(0.35, 0.5))
    x = 0
    while x < W:  # a skyline of blocks
        w = int(rng.integers(20, 120))
        a[int(horizon * rng.uniform(0.05, 0.8)) : horizon, x : x + w] = rng.choice(
            [BUILDING, BUILDING, BUILDING, VEGETATION, WALL]
        )
        x += w
    for _ in range(rng.integers(2, 8)):  # trees in front of it
        _ellipse(a, horizon * rng.uniform(0.3, 1), rng.uniform(0, W), rng.uniform(15, 70), rng.uniform(15, 70),
                 VEGETATION)  # fmt: skip
    t = (np.arange(horizon, H) - horizon) / (H - horizon)  # 0 at the horizon, 1 at the bottom
    centre = W / 2 + rng.uniform(-60, 60)
    road = 10 + t * W * rng.uniform(0.3, 0.55)
    walk = road + 4 + t * rng.uniform(40, 120)
    d = np.abs(np.arange(W) + 0.5 - centre)[None, :]
    a[horizon:] = np.where(d < road[:, None], ROAD, np.where(d < walk[:, None], SIDEWALK, TERRAIN))
    if rng.random() < 0.5:  # a fence along one side
        side = rng.choice([-1, 1])
        fx = np.arange(W) if side > 0 else np.arange(W)[::-1]
        x0 = int(centre + side * (road[-1] + 20))
        span = fx[(fx - x0) * side >= 0]
        if len(span):
            a[horizon - int(rng.integers(10, 40)) : horizon + 5, span.min() : span.max() + 1] = FENCE
    for _ in range(rng.integers(2, 7)):  # poles, some with a sign or a light
        px, pw = int(rng.integers(0, W - 6)), int(rng.integers(2, 6))
        top = int(rng.integers(int(horizon * 0.2), horizon))
        a[top : horizon + int(rng.integers(5, 80)), px : px + pw] = POLE
        if rng.random() < 0.7:
            sh, sw = int(rng.integers(6, 20)), int(rng.integers(6, 24))
            a[top : top + sh, max(0, px - sw // 2) : px + pw + sw // 2] = rng.choice([SIGN, LIGHT])
    for _ in range(rng.integers(2, 14)):  # objects, larger lower down
        cls = int(rng.choice(OBJECTS, p=OBJECT_P))
        bottom = rng.uniform(horizon + 5, H)
        scale = 0.15 + (bottom - horizon) / (H - horizon)
        cx = rng.uniform(0, W)
        if cls in (PERSON, RIDER):
            rx, ry = 6 * scale * rng.uniform(0.8, 1.4), 18 * scale * rng.uniform(0.8, 1.3)
            _ellipse(a, bottom - ry, cx, ry, rx, cls)
            if cls == RIDER:
                _ellipse(a, bottom, cx, 8 * scale, 14 * scale, rng.choice([BICYCLE, MOTORCYCLE]))
        elif cls in (BICYCLE, MOTORCYCLE):
            _ellipse(a, bottom - 8 * scale, cx, 8 * scale, 14 * scale, cls)
        else:
            w = {CAR: 60, TRUCK: 90, BUS: 120, TRAIN: 200}[cls] * scale * rng.uniform(0.7, 1.3)
            h = w * rng.uniform(0.45, 0.8)
            y0, x0 = int(max(0, bottom - h)), int(max(0, cx - w / 2))
            a[y0 : int(bottom), x0 : int(cx + w / 2)] = cls
            _ellipse(a, bottom - h, cx, h * 0.35, w * 0.4, cls)  # a cabin
    return a, horizon


def prediction(rng: np.random.Generator, truth: np.ndarray, horizon: int) -> np.ndarray:
    """A model's map of a scene: some regions given a confusable class, objects missed or imagined, boundaries
    moved in blocks, speckle."""
    p = truth.copy()
    for _ in range(rng.integers(1, 6)):  # regions given a confusable class
        _ellipse(p, rng.uniform(0, H), rng.uniform(0, W), rng.uniform(8, 60), rng.uniform(8, 60), CONFUSED)
    for _ in range(rng.integers(0, 3)):  # objects missed (road where a car is) or imagined
        _ellipse(p, rng.uniform(horizon, H), rng.uniform(0, W), rng.uniform(5, 25), rng.uniform(5, 35),
                 int(rng.choice([ROAD, CAR, PERSON])))  # fmt: skip
    dy, dx = (int(v) for v in rng.integers(-4, 5, 2))  # boundaries off by a few pixels, in 16 x 16 blocks
    shifted = np.roll(p, (dy, dx), axis=(0, 1))
    blocks = np.repeat(np.repeat(rng.random((H // 16, W // 16)) < 0.5, 16, axis=0), 16, axis=1)
    p = np.where(blocks, shifted, p)
    speckle = rng.random((H, W)) < 0.001
    p[speckle] = rng.integers(0, K, int(speckle.sum()))
    return p


def labeled(rng: np.random.Generator, truth: np.ndarray) -> np.ndarray:
    """The label map of a scene: the ego vehicle's band at the bottom and a few blobs unlabeled."""
    y = truth.copy()
    if rng.random() < 0.8:
        _ellipse(y, H + 10, W / 2 + rng.uniform(-40, 40), rng.uniform(30, 70), rng.uniform(260, 400), VOID)
    for _ in range(rng.integers(0, 4)):
        _ellipse(y, rng.uniform(0, H), rng.uniform(0, W), rng.uniform(3, 20), rng.uniform(3, 20), VOID)
    return y


def make_pool(path: str, pool: int = POOL, seed: int = 0) -> dict:  # type: ignore[type-arg]
    """Draws the pool and writes both forms to ``path`` (an .npz)."""
    from shoal.common import classmaps

    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    labels = np.empty((pool, H, W), np.uint8)
    preds = np.empty((pool, H, W), np.uint8)
    for i in range(pool):
        truth, horizon = scene(rng)
        preds[i] = prediction(rng, truth, horizon)
        labels[i] = labeled(rng, truth)
    drawn = time.perf_counter() - t
    t = time.perf_counter()
    out: dict[str, np.ndarray] = {"labels": labels, "preds": preds}
    for side, maps in (("l", labels), ("p", preds)):
        runs = [classmaps.encode(np.where(m == VOID, classmaps.UNLABELED, m).astype(np.uint16)) for m in maps]
        out[f"{side}_off"] = np.concatenate([[0], np.cumsum([len(r) for _, r in runs])]).astype(np.int64)
        out[f"{side}_values"] = np.concatenate([v for v, _ in runs])
        out[f"{side}_runs"] = np.concatenate([r for _, r in runs])
    encoded = time.perf_counter() - t
    np.savez(path, **out)
    l_runs, p_runs = np.diff(out["l_off"]), np.diff(out["p_off"])
    return {
        "pool": pool, "draw_seconds": round(drawn, 1), "encode_seconds": round(encoded, 2),
        "label_runs_mean": round(float(l_runs.mean())), "pred_runs_mean": round(float(p_runs.mean())),
        "runs_per_pair": (l_runs + p_runs).tolist(), "unlabeled_share": round(float((labels == VOID).mean()), 4),
    }  # fmt: skip


def _runs(path: str) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[tuple[np.ndarray, np.ndarray]]]:
    d = np.load(path)
    sides = []
    for side in ("l", "p"):
        off, values, runs = d[f"{side}_off"], d[f"{side}_values"], d[f"{side}_runs"]
        sides.append([(values[off[i] : off[i + 1]], runs[off[i] : off[i + 1]]) for i in range(len(off) - 1)])
    return sides[0], sides[1]


def frame_ids(start: int, stop: int) -> list[str]:
    return [f"f{i:08d}" for i in range(start, stop)]


def shoal_ingest(n: int, pool_path: str, db_path: str) -> dict:  # type: ignore[type-arg]
    """The rows of N frames compared and written as the ingest side does; their size on disk."""
    import pyarrow as pa

    from shoal.common import classmaps
    from shoal.common.data import segmentation
    from shoal.common.stores.metrics import EmbeddedMetricsStore

    labels, preds = _runs(pool_path)
    pool = len(labels)
    t = time.perf_counter()
    classmaps.confusion(labels[:1], preds[:1])  # numba's compiled walk, loaded from its cache or compiled
    jit = time.perf_counter() - t
    m = EmbeddedMetricsStore(path=Path(db_path), database="bench")
    m.create_database()
    m.migrate(segmentation.MIGRATIONS)
    compare = write = 0.0
    t_all = time.perf_counter()
    for start in range(0, n, STEP):
        stop = min(n, start + STEP)
        t = time.perf_counter()
        rows = segmentation.confusion_table(PROJECT, INFERENCE_SET, DATASET, frame_ids(start, stop),
                                            [labels[i % pool] for i in range(start, stop)],
                                            [preds[i % pool] for i in range(start, stop)], version=1)  # fmt: skip
        compare += time.perf_counter() - t
        t = time.perf_counter()
        m.insert_arrow("segmentation_confusion", rows)
        write += time.perf_counter() - t
    total = time.perf_counter() - t_all
    peak = peak_rss_mib()
    parts = m.query(
        "SELECT sum(rows), sum(bytes_on_disk), sum(data_uncompressed_bytes), count() FROM system.parts"
        " WHERE database = {db:String} AND table = 'segmentation_confusion' AND active",
        {"db": "bench"},
    ).rows[0]
    cells = m.query("SELECT sum(length(pixels)) FROM segmentation_confusion").scalar()
    # the filter of the half-set query: the even frames, as a slice's frame ids would be kept
    m.command("CREATE TABLE bench_half (frame_id String) ENGINE = MergeTree ORDER BY frame_id")
    m.insert_arrow("bench_half", pa.table({"frame_id": pa.array(frame_ids(0, n)[::2], pa.string())}))
    m.close()
    return {
        "jit_seconds": round(jit, 2), "compare_seconds": round(compare, 2), "write_seconds": round(write, 2),
        "ingest_seconds": round(total, 2), "peak_rss_mib": round(peak), "rows": int(parts[0]), "cells": int(cells),
        "bytes_on_disk": int(parts[1]), "bytes_uncompressed": int(parts[2]), "parts": int(parts[3]),
    }  # fmt: skip


def shoal_query(db_path: str) -> dict:  # type: ignore[type-arg]
    """``segmentation.report`` over every frame, first call and warm, and over the even frames."""
    from shoal.analysis import segmentation
    from shoal.common.stores.metrics import EmbeddedMetricsStore

    t = time.perf_counter()
    m = EmbeddedMetricsStore(path=Path(db_path), database="bench")
    m.ping()
    opened = time.perf_counter() - t
    ontology = list(range(K))

    def timed(frames_sql: str = "") -> tuple[float, segmentation.Report]:
        t = time.perf_counter()
        r = segmentation.report(m, PROJECT, INFERENCE_SET, ontology, frames_sql)
        return time.perf_counter() - t, r

    first, report = timed()
    warm = [timed()[0] for _ in range(REPEATS)]
    half_sql = "SELECT frame_id FROM bench_half"
    half_first, half = timed(half_sql)
    half_warm = [timed(half_sql)[0] for _ in range(REPEATS)]
    iou, _, _ = report.per_class()
    m.close()
    return {
        "open_seconds": round(opened, 3), "first_seconds": round(first, 3),
        "warm_seconds": round(statistics.median(warm), 3), "half_first_seconds": round(half_first, 3),
        "half_warm_seconds": round(statistics.median(half_warm), 3), "peak_rss_mib": round(peak_rss_mib()),
        "frames": report.frames, "half_frames": half.frames, "confusion": report.confusion.tolist(),
        "half_confusion": half.confusion.tolist(), "iou": iou.tolist(), "summary": list(report.summary()),
    }  # fmt: skip


def metrics(confusion: np.ndarray) -> tuple[list[float], dict[str, float]]:
    """Per-class IoU and the summary of a K x K confusion matrix, as numpy evaluation scripts write them."""
    m = confusion.astype(np.float64)
    tp, labeled_px, predicted_px = np.diag(m), m.sum(axis=1), m.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = tp / (labeled_px + predicted_px - tp)
        acc = tp / labeled_px
    freq = labeled_px / m.sum()
    seen = freq > 0
    return iou.tolist(), {
        "pixel_accuracy": float(tp.sum() / m.sum()),
        "mean_accuracy": float(np.nanmean(acc)),
        "mIoU": float(np.nanmean(iou)),
        "fwIoU": float((freq[seen] * iou[seen]).sum()),
    }


def numpy_side(n: int, pool_path: str) -> dict:  # type: ignore[type-arg]
    """The streaming numpy computation over N frames of uint8 maps."""
    d = np.load(pool_path)
    labels, preds = d["labels"], d["preds"]
    pool = len(labels)
    total = np.zeros(K * K, np.int64)
    half = np.zeros(K * K, np.int64)  # the even frames, to check the filtered query
    t = time.perf_counter()
    for i in range(n):
        y, p = labels[i % pool], preds[i % pool]
        valid = y != VOID
        hist = np.bincount(K * y[valid].astype(np.int32) + p[valid], minlength=K * K)
        total += hist
        if i % 2 == 0:
            half += hist
    confusion = total.reshape(K, K)
    iou, summary = metrics(confusion)
    seconds = time.perf_counter() - t
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(peak_rss_mib()), "confusion": confusion.tolist(),
            "half_confusion": half.reshape(K, K).tolist(), "iou": iou, "summary": summary}  # fmt: skip


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def run_child_with(env: dict[str, str], fn: str, *args: object) -> dict:  # type: ignore[type-arg]
    """``run_child`` with these variables in the child's environment."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return run_child(MODULE, fn, *args)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def table(runs: dict) -> str:  # type: ignore[type-arg]
    head = ("| frames | numpy: time, peak memory | numpy, malloc keeping freed memory "
            "| Shoal ingest (walk + write): time, peak memory "
            "| Shoal report, first call / warm | report over half, first / warm | report: peak memory |")  # fmt: skip
    lines = [head, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for n, r in runs.items():
        s, q, p, k = r["shoal_ingest"], r["shoal_query"], r["numpy"], r["numpy_keep_freed"]
        lines.append(
            f"| {int(n):,} | {p['seconds']:.1f} s, {p['peak_rss_mib']:,} MiB "
            f"| {k['seconds']:.1f} s, {k['peak_rss_mib']:,} MiB "
            f"| {s['ingest_seconds']:.1f} s ({s['compare_seconds']:.1f} + {s['write_seconds']:.1f}), "
            f"{s['peak_rss_mib']:,} MiB | {q['first_seconds'] * 1000:,.0f} / {q['warm_seconds'] * 1000:,.0f} ms "
            f"| {q['half_first_seconds'] * 1000:,.0f} / {q['half_warm_seconds'] * 1000:,.0f} ms "
            f"| {q['peak_rss_mib']:,} MiB |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[20_000, 100_000])
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "analysis_metrics" / "results_segmentation.json")
    args = ap.parse_args()
    results = results_header()
    results["cpu"] = cpu_model()
    work = Path(tempfile.mkdtemp(prefix="bench-segmentation-"))
    try:
        pool_path = str(work / "pool.npz")
        print("drawing the pool ...", flush=True)
        pool = run_child(MODULE, "make_pool", pool_path)
        per_pair = np.asarray(pool.pop("runs_per_pair"), np.int64)
        results["pool"] = pool
        print(json.dumps(pool), flush=True)
        for n in args.frames:
            db = str(work / f"ch{n}")
            print(f"[{n}] Shoal ingest ...", flush=True)
            load = [os.getloadavg()[0]]  # the machine may be shared: its 1-minute load around each side
            ingest = run_child(MODULE, "shoal_ingest", n, pool_path, db)
            load.append(os.getloadavg()[0])
            print(f"[{n}] {ingest}; Shoal report ...", flush=True)
            query = run_child(MODULE, "shoal_query", db)
            load.append(os.getloadavg()[0])
            shutil.rmtree(db, ignore_errors=True)
            print(f"[{n}] first {query['first_seconds']} s, warm {query['warm_seconds']} s; numpy ...", flush=True)
            peer = run_child(MODULE, "numpy_side", n, pool_path)
            load.append(os.getloadavg()[0])
            print(f"[{n}] numpy {peer['seconds']} s; numpy, malloc keeping freed memory ...", flush=True)
            kept = run_child_with(KEEP_FREED, "numpy_side", n, pool_path)
            load.append(os.getloadavg()[0])
            print(f"[{n}] numpy, malloc keeping freed memory {kept['seconds']} s", flush=True)
            assert kept["confusion"] == peer["confusion"]
            # the same answers, or the timings mean nothing
            assert query["confusion"] == peer["confusion"], "the confusion matrices differ"
            assert query["half_confusion"] == peer["half_confusion"], "the half-set confusion matrices differ"
            assert (query["frames"], query["half_frames"]) == (n, (n + 1) // 2), "frames counted wrong"
            np.testing.assert_allclose(query["iou"], peer["iou"], rtol=0, atol=1e-12)
            for name, value in zip(("pixel_accuracy", "mean_accuracy", "mIoU", "fwIoU"), query["summary"], strict=True):
                assert abs(value - peer["summary"][name]) <= 1e-12, (name, value, peer["summary"][name])
            runs_bytes = int(per_pair[np.arange(n) % len(per_pair)].sum()) * 6  # uint16 value + uint32 length
            results["runs"][str(n)] = {
                "numpy": {k: v for k, v in peer.items() if k not in ("confusion", "half_confusion", "iou")},
                "numpy_keep_freed": {"env": KEEP_FREED, "seconds": kept["seconds"],
                                     "peak_rss_mib": kept["peak_rss_mib"]},
                "shoal_ingest": ingest,
                "shoal_query": {k: v for k, v in query.items()
                                if k not in ("confusion", "half_confusion", "iou", "summary")},
                "load_average": {"before": load[0], "after_ingest": load[1], "after_query": load[2],
                                 "after_numpy": load[3], "after_numpy_keep_freed": load[4]},
                "sizes": {"uint8_maps_bytes": n * 2 * H * W, "class_runs_bytes": runs_bytes,
                          "confusion_rows_on_disk_bytes": ingest["bytes_on_disk"]},
            }  # fmt: skip
            print(f"[{n}] {json.dumps(results['runs'][str(n)])}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_results(args.out, results)
    print()
    print(table(results["runs"]))


if __name__ == "__main__":
    main()
