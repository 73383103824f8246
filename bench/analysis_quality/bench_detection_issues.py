"""Detection label issues on N frames in chDB, beside cleanlab's ObjectLab on the same boxes.

Three processes, so that each peak memory is its own:

1. a loader writes N frames of labeled and predicted boxes into chDB (Arrow inserts into Shoal's tables);
2. Shoal: ``find_detection_issues``, the detection label-issues job, on that chDB (scores for every object and
   frame written back);
3. the peer: cleanlab's ObjectLab, ``get_label_quality_scores`` (frame ranking) and ``find_label_issues`` (flagged
   frames), on the same boxes in memory.

The data: a synthetic scene per frame (1 to 8 objects of 5 classes) and a synthetic model that sees the true
objects: it finds 90 % of them clearly (jittered by 4 % of their size, 97 % with their class, confidence around
0.96, as trained detectors give) and the rest vaguely (10 % jitter, 80 % with their class, confidence around 0.3), a wrong class always with
less confidence, plus a few low-confidence background boxes. The labels are the true objects, with one error planted
in 20 % of the frames, a quarter each: a box dropped (missing label), a random box added (spurious), a box shifted
by 30 to 50 % of its size each way (mislocalized), a box given another class (swap).

    python bench/analysis_quality/bench_detection_issues.py --frames 5000 100000 --peer-max-frames 100000
"""

from __future__ import annotations

import argparse
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

MODULE = "bench.analysis_quality.bench_detection_issues"
K = 5
W, H = 640, 480
PROJECT, DATASET, INFERENCE_SET = "bench", "d", "m"
ERROR_RATE = 0.2
#: planted error kinds (as the issue types number them)
KINDS = {1: "missing_label", 2: "spurious_label", 3: "mislocalized", 4: "class_swap"}


def _clip(box: np.ndarray) -> np.ndarray:
    """xywh boxes inside the image, at least 2 px a side, in half pixels (exact in float32)."""
    b = box.copy()
    b[:, 2:] = np.clip(b[:, 2:], 2, None)
    b[:, 0] = np.clip(b[:, 0], 0, W - 2)
    b[:, 1] = np.clip(b[:, 1], 0, H - 2)
    b[:, 2] = np.minimum(b[:, 2], W - b[:, 0])
    b[:, 3] = np.minimum(b[:, 3], H - b[:, 1])
    return np.floor(b * 2) / 2


def data(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Labeled boxes (g_*), predicted boxes (d_*) sorted by frame, and per frame the planted error kind (0: none)."""
    rng = np.random.default_rng(seed)
    per = rng.integers(1, 9, n)
    t_frame = np.repeat(np.arange(n), per)
    t = len(t_frame)
    side = np.exp(rng.uniform(np.log(24), np.log(220), (t, 2)))
    t_box = _clip(np.concatenate([rng.uniform(0, 1, (t, 2)) * ([W, H] - side), side], axis=1))
    t_cls = rng.integers(0, K, t)
    # the model: sees most true objects, jittered, mostly with their class; a few background boxes
    seen = np.arange(t)
    clear = rng.random(t) < 0.9  # the rest: small, occluded or blurred, found with little confidence
    spread = np.where(clear, 0.04, 0.1)[:, None]
    d_box = t_box + rng.normal(0, 1, (t, 4)) * spread * np.tile(t_box[:, 2:], 2)
    right = rng.random(t) < np.where(clear, 0.97, 0.8)
    d_cls = np.where(right, t_cls, (t_cls + rng.integers(1, K, t)) % K)
    d_conf = np.where(clear, rng.beta(25, 1, t), rng.beta(2, 5, t)) * np.where(right, 1.0, 0.6)
    d_frame = t_frame[seen]
    bg = rng.poisson(0.3, n)
    b = int(bg.sum())
    b_side = np.exp(rng.uniform(np.log(16), np.log(120), (b, 2)))
    b_box = np.concatenate([rng.uniform(0, 1, (b, 2)) * ([W, H] - b_side), b_side], axis=1)
    d_box = _clip(np.concatenate([d_box, b_box]))
    d_cls = np.concatenate([d_cls, rng.integers(0, K, b)])
    d_conf = np.concatenate([d_conf, rng.beta(1.5, 8, b)])
    d_frame = np.concatenate([d_frame, np.repeat(np.arange(n), bg)])
    order = np.argsort(d_frame, kind="stable")
    # the labels: the true objects with one error planted in some frames
    kind = np.where(rng.random(n) < ERROR_RATE, rng.integers(1, 5, n), 0)
    first = np.concatenate([[0], np.cumsum(per)[:-1]])
    victim = first + rng.integers(0, per)  # the object an error is planted on
    g_box, g_cls = t_box.copy(), t_cls.copy()
    keep = np.ones(t, bool)
    f = np.flatnonzero(kind == 1)
    keep[victim[f]] = False
    f = np.flatnonzero(kind == 3)
    v = victim[f]
    shift = rng.uniform(0.3, 0.5, (len(f), 2)) * rng.choice([-1, 1], (len(f), 2)) * g_box[v, 2:]
    g_box[v, :2] += shift
    g_box[v] = _clip(g_box[v])
    f = np.flatnonzero(kind == 4)
    g_cls[victim[f]] = (g_cls[victim[f]] + rng.integers(1, K, len(f))) % K
    f = np.flatnonzero(kind == 2)
    s_side = np.exp(rng.uniform(np.log(24), np.log(160), (len(f), 2)))
    s_box = _clip(np.concatenate([rng.uniform(0, 1, (len(f), 2)) * ([W, H] - s_side), s_side], axis=1))
    g_frame = np.concatenate([t_frame[keep], f])
    g_box = np.concatenate([g_box[keep], s_box])
    g_cls = np.concatenate([g_cls[keep], rng.integers(0, K, len(f))])
    g_order = np.argsort(g_frame, kind="stable")
    return {
        "g_frame": g_frame[g_order], "g_box": g_box[g_order], "g_cls": g_cls[g_order],
        "d_frame": d_frame[order], "d_box": d_box[order], "d_cls": d_cls[order], "d_conf": d_conf[order],
        "kind": kind,
    }  # fmt: skip


def load(n: int, path: str) -> dict:  # type: ignore[type-arg]
    d = data(n)
    return load_boxes(path, project=PROJECT, dataset=DATASET, inference_set=INFERENCE_SET, n=n,
                      boxes={**d, "d_score": d["d_conf"]}, size=(W, H))  # fmt: skip


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a positive frame scores lower than a negative one (ties count half)."""
    from scipy.stats import rankdata

    r = rankdata(-np.asarray(score, np.float64))
    p = int(positive.sum())
    q = len(positive) - p
    return float((r[positive].sum() - p * (p + 1) / 2) / max(p * q, 1))


def quality(score: np.ndarray, found: np.ndarray, kind: np.ndarray) -> dict:  # type: ignore[type-arg]
    """Frame ranking AUROC and precision/recall/F1 of the flagged frames against the planted ones."""
    planted = kind > 0
    tp = int((found & planted).sum())
    p = tp / max(int(found.sum()), 1)
    r = tp / max(int(planted.sum()), 1)
    top = np.argsort(score, kind="stable")[: int(planted.sum())]
    return {
        "auroc": round(auroc(score, planted), 4),
        "precision_at_planted": round(float(planted[top].mean()), 4),
        "flagged": int(found.sum()),
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
        "recall_per_kind": {name: round(float(found[kind == k].mean()), 4) for k, name in KINDS.items()},
    }


def shoal_side(n: int, path: str) -> dict:  # type: ignore[type-arg]
    from shoal.analysis import detection_issues as di
    from shoal.analysis import label_issues, ranked
    from shoal.common.data import results
    from shoal.common.jobs import Job
    from shoal.common.stores.metrics import EmbeddedMetricsStore

    m = EmbeddedMetricsStore(path=Path(path), database="bench")
    m.migrate([*results.MIGRATIONS, *label_issues.MIGRATIONS, *ranked.MIGRATIONS, *di.MIGRATIONS, *di.RANK_MIGRATIONS])
    job = Job(PROJECT, "analysis", "detection_label_issues-bench", di.KIND)
    t = time.perf_counter()
    summary = di.find_detection_issues(None, m, job, dataset=DATASET, inference_set=INFERENCE_SET)
    seconds = time.perf_counter() - t
    rss = peak_rss_mib()
    cols = m.query_columns(
        "SELECT frame_id, score, is_issue FROM detection_issue_frames FINAL WHERE project = {p:String}"
        " AND job_id = {j:String} ORDER BY frame_id",
        {"p": PROJECT, "j": job.job_id},
    )
    assert len(cols["frame_id"]) == n
    kind = data(n)["kind"]
    # per kind: the planted frames whose flagged objects include that kind
    typed = m.query_columns(
        "SELECT frame_id, groupUniqArray(issue_type) AS types FROM detection_issue_objects FINAL"
        " WHERE project = {p:String} AND job_id = {j:String} AND is_issue GROUP BY frame_id",
        {"p": PROJECT, "j": job.job_id},
    )
    by_type = {k: np.zeros(n, bool) for k in KINDS}
    for f, types in zip(typed["frame_id"], typed["types"], strict=True):
        for t in types:
            by_type[int(t)][int(f[1:])] = True
    score, found = np.asarray(cols["score"], np.float64), np.asarray(cols["is_issue"], bool)
    out = {"seconds": round(seconds, 2), "peak_rss_mib": round(rss), **quality(score, found, kind)}
    out["recall_per_kind_right_type"] = {
        name: round(float(by_type[k][kind == k].mean()), 4) for k, name in KINDS.items()
    }
    out["issues"] = summary.issues
    return out


def _objectlab_inputs(n: int) -> tuple[list, list, np.ndarray]:  # type: ignore[type-arg]
    d = data(n)

    def xyxy(b: np.ndarray) -> np.ndarray:
        return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1).astype(np.float32)

    g_cut = np.searchsorted(d["g_frame"], np.arange(n + 1))
    d_cut = np.searchsorted(d["d_frame"], np.arange(n + 1))
    g_xyxy, d_xyxy = xyxy(d["g_box"]), xyxy(d["d_box"])
    labels, predictions = [], []
    for i in range(n):
        a, b = g_cut[i], g_cut[i + 1]
        labels.append({"bboxes": g_xyxy[a:b], "labels": d["g_cls"][a:b]})
        a, b = d_cut[i], d_cut[i + 1]
        boxes = np.concatenate([d_xyxy[a:b], d["d_conf"][a:b, None].astype(np.float32)], axis=1)
        cls = d["d_cls"][a:b]
        predictions.append(np.array([boxes[cls == k] for k in range(K)] + [None], dtype=object)[:-1])
    return labels, predictions, d["kind"]


def peer_side(n: int) -> dict:  # type: ignore[type-arg]
    from cleanlab.object_detection.filter import find_label_issues
    from cleanlab.object_detection.rank import get_label_quality_scores

    labels, predictions, kind = _objectlab_inputs(n)
    t = time.perf_counter()
    score = get_label_quality_scores(labels, predictions, verbose=False)
    found = find_label_issues(labels, predictions)
    seconds = time.perf_counter() - t
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(peak_rss_mib()),
            **quality(np.asarray(score), np.asarray(found, bool), kind)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[5_000, 100_000])
    ap.add_argument("--peer-max-frames", type=int, default=100_000, help="run ObjectLab only up to this size")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "analysis_quality" / "results_detection_issues.json")
    args = ap.parse_args()
    results = results_header()
    for n in args.frames:
        work = Path(tempfile.mkdtemp(prefix="bench-detection-issues-"))
        try:
            print(f"[{n}] loading ...", flush=True)
            loaded = run_child(MODULE, "load", n, str(work / "ch"))
            print(f"[{n}] {loaded}; shoal ...", flush=True)
            shoal = run_child(MODULE, "shoal_side", n, str(work / "ch"))
            print(f"[{n}] {shoal}", flush=True)
            peer = None
            if n <= args.peer_max_frames:
                print(f"[{n}] objectlab ...", flush=True)
                peer = run_child(MODULE, "peer_side", n)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        summary = {"load": loaded, "shoal": shoal, "objectlab": peer or "not run"}
        results["runs"][str(n)] = summary
        print(f"[{n}] {json.dumps(summary)}", flush=True)
    write_results(args.out, results)


if __name__ == "__main__":
    main()
