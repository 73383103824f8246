"""Label issues on N frames x 10 classes in chDB, beside cleanlab's find_label_issues on the same probabilities.

Three processes, so that each peak memory is its own:

1. a loader writes N rows into the ``evaluations`` table (given label, probabilities) with 20 % of the labels
   flipped uniformly;
2. Shoal: ``find_label_issues``, the label-issues job, on that chDB (scores for every frame written back);
3. the peer: cleanlab's ``find_label_issues`` on the same labels and float32 probabilities in memory.

The probabilities come from a synthetic model: a Dirichlet draw around the true class with a per-frame confidence,
so that some correct labels look doubtful and some flips look plausible.

    python bench/analysis_quality/bench_label_issues.py --frames 100000 1000000 10000000
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

from bench.harness import peak_rss_mib, results_header, run_child, write_results  # noqa: E402

MODULE = "bench.analysis_quality.bench_label_issues"
K = 10
PROJECT, DATASET, INFERENCE_SET = "bench", "d", "m"
STEP = 1_000_000


def data(n: int, start: int = 0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows [start, start + n) of the benchmark data: (true labels, given labels, float32 probabilities)."""
    rng = np.random.default_rng([seed, start])
    true = rng.integers(0, K, n)
    given = true.copy()
    flip = rng.random(n) < 0.2
    given[flip] = (true[flip] + rng.integers(1, K, flip.sum())) % K
    strength = rng.gamma(2.0, 2.0, n)[:, None]  # some frames the model is unsure about
    alpha = np.full((n, K), 0.3)
    alpha[np.arange(n), true] += strength[:, 0] * 3
    # a class the model often confuses each class with
    alpha[np.arange(n), (true + 1) % K] += strength[:, 0] * 0.5
    g = rng.gamma(alpha)
    probs = (g / g.sum(axis=1, keepdims=True)).astype(np.float32)
    return true, given, probs


def load(n: int, path: str) -> dict:  # type: ignore[type-arg]
    import pyarrow as pa

    from shoal.common.data import evaluations
    from shoal.common.stores.metrics import EmbeddedMetricsStore
    from shoal.ingest.columns import constant

    m = EmbeddedMetricsStore(path=Path(path), database="bench")
    m.create_database()
    m.migrate(evaluations.MIGRATIONS)
    t0 = time.perf_counter()
    for start in range(0, n, STEP):
        size = min(STEP, n - start)
        _, given, probs = data(size, start)
        flat = pa.array(probs.reshape(-1))
        offsets = pa.array(np.arange(0, size * K + 1, K, dtype=np.int32))
        m.insert_arrow("evaluations", pa.table({
            "project": constant(PROJECT, size), "inference_set": constant(INFERENCE_SET, size),
            "dataset": constant(DATASET, size),
            "frame_id": pa.array([f"f{i:09d}" for i in range(start, start + size)]),
            "label_class": pa.array(given.astype(np.int32)),
            "pred_raw": pa.array(probs.argmax(1).astype(np.int32)),
            "confidence": pa.array(probs.max(1)),
            "probs": pa.ListArray.from_arrays(offsets, flat),
            "version": pa.array(np.ones(size, np.uint64)),
        }))  # fmt: skip
    return {"load_seconds": round(time.perf_counter() - t0, 1)}


def _truth(n: int) -> np.ndarray:
    flipped = []
    for start in range(0, n, STEP):
        true, given, _ = data(min(STEP, n - start), start)
        flipped.append(true != given)
    return np.concatenate(flipped)


def _scores(found: np.ndarray, flipped: np.ndarray) -> dict:  # type: ignore[type-arg]
    tp = int((found & flipped).sum())
    p = tp / max(int(found.sum()), 1)
    r = tp / max(int(flipped.sum()), 1)
    return {"found": int(found.sum()), "precision": round(p, 4), "recall": round(r, 4),
            "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0}  # fmt: skip


def shoal_side(n: int, path: str) -> dict:  # type: ignore[type-arg]
    from shoal.analysis import label_issues
    from shoal.common.data import results
    from shoal.common.data.query import View
    from shoal.common.jobs import Job
    from shoal.common.stores.metrics import EmbeddedMetricsStore
    from shoal.common.v1 import common_pb2

    m = EmbeddedMetricsStore(path=Path(path), database="bench")
    m.migrate((*results.MIGRATIONS, *label_issues.MIGRATIONS))
    view = View(PROJECT, DATASET, INFERENCE_SET, ontology=tuple(range(K)))
    job = Job(PROJECT, "analysis", "label_issues-bench", label_issues.KIND)
    t = time.perf_counter()
    summary = label_issues.find_label_issues(None, m, view, common_pb2.Filter(), job)
    seconds = time.perf_counter() - t
    rss = peak_rss_mib()
    flagged = m.query_columns(
        "SELECT frame_id FROM label_issue_frames FINAL WHERE project = {p:String} AND job_id = {j:String}"
        " AND is_issue ORDER BY frame_id",
        {"p": PROJECT, "j": job.job_id},
    )["frame_id"]
    found = np.zeros(n, dtype=bool)
    found[[int(f[1:]) for f in flagged]] = True
    assert summary.issues == int(found.sum())
    np.save(Path(path).parent / "shoal_found.npy", found)
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(rss), **_scores(found, _truth(n))}


def peer_side(n: int, out: str) -> dict:  # type: ignore[type-arg]
    from cleanlab.filter import find_label_issues

    parts = [data(min(STEP, n - s), s) for s in range(0, n, STEP)]
    given = np.concatenate([p[1] for p in parts])
    probs = np.concatenate([p[2] for p in parts])
    flipped = np.concatenate([p[0] != p[1] for p in parts])
    del parts
    t = time.perf_counter()
    found = find_label_issues(given, probs)
    seconds = time.perf_counter() - t
    np.save(out, found)
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(peak_rss_mib()), **_scores(found, flipped)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--peer-max-frames", type=int, default=10_000_000, help="run cleanlab only up to this size")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "analysis_quality" / "results_label_issues.json")
    args = ap.parse_args()
    results = results_header()
    for n in args.frames:
        work = Path(tempfile.mkdtemp(prefix="bench-label-issues-"))
        try:
            print(f"[{n}] loading ...", flush=True)
            loaded = run_child(MODULE, "load", n, str(work / "ch"))
            print(f"[{n}] {loaded}; shoal ...", flush=True)
            shoal = run_child(MODULE, "shoal_side", n, str(work / "ch"))
            print(f"[{n}] {shoal}", flush=True)
            peer = None
            if n <= args.peer_max_frames:
                print(f"[{n}] cleanlab ...", flush=True)
                peer = run_child(MODULE, "peer_side", n, str(work / "peer_found.npy"))
                ours, theirs = np.load(work / "shoal_found.npy"), np.load(work / "peer_found.npy")
                peer["differing_frames"] = int((ours != theirs).sum())
        finally:
            shutil.rmtree(work, ignore_errors=True)
        summary = {"load": loaded, "shoal": shoal, "cleanlab": peer or "not run"}
        results["runs"][str(n)] = summary
        print(f"[{n}] {json.dumps(summary)}", flush=True)
    write_results(args.out, results)


if __name__ == "__main__":
    main()
