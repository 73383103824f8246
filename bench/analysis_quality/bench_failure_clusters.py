"""Failure clusters on N x 128-d frames: planted failure modes among errors spread at random, found by Shoal's
clustering (HDBSCAN on a sample of the errors, regions kept by their error rate) beside two peers on the same
vectors and errors:

- scikit-learn's HDBSCAN on every error, clusters ranked by size (no region, no significance test);
- scikit-learn's k-means on every error with k = 20, clusters ranked by size (the usual first attempt).

The frames are a mixture of 1,000 Gaussian clusters with 8 % of frames wrong at random; in ``MODES`` of the
mixture clusters 70 % of frames are wrong (the failure modes to find). Quality per side: how many clusters it
reports, how many of the planted modes are the best match of some reported cluster (Jaccard over error frames
at least 0.5), how many reported clusters match no mode (chance groupings a user would have to read), the recall of the planted modes' errors inside clusters matched to them, and the share of the
errors of its top ``MODES`` clusters that belong to a planted mode. Each side runs in a process of its own so its
peak memory is its own. The job's other steps (reading vectors from Milvus, writing members) cost what they cost in
the neighbour benchmark.

    python bench/analysis_quality/bench_failure_clusters.py --frames 100000 1000000 --peer-max-frames 100000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.harness import peak_rss_mib, results_header, run_child, write_results  # noqa: E402

MODULE = "bench.analysis_quality.bench_failure_clusters"
D, MIXTURE, MODES, NOISE, MODE_RATE = 128, 1000, 5, 0.08, 0.7
STEP = 100_000


def data(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unit vectors, is_error, mode of each frame: -1 for none)."""
    rng = np.random.default_rng(7)
    centres = rng.normal(0, 1, (MIXTURE, D)).astype(np.float32)
    x = np.empty((n, D), np.float32)
    comp = np.empty(n, np.int64)
    for s in range(0, n, STEP):
        r = np.random.default_rng([7, s])
        size = min(STEP, n - s)
        comp[s : s + size] = r.integers(0, MIXTURE, size)
        x[s : s + size] = centres[comp[s : s + size]] + r.normal(0, 0.5, (size, D))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    r = np.random.default_rng(8)
    error = r.random(n) < NOISE
    mode = np.full(n, -1)
    for j in range(MODES):  # the first MODES mixture components fail often
        rows = np.flatnonzero(comp == j)
        mode[rows] = j
        error[rows] = r.random(len(rows)) < MODE_RATE
    return x, error, mode


def _quality(clusters: list[np.ndarray], error: np.ndarray, mode: np.ndarray) -> dict:  # type: ignore[type-arg]
    """``clusters``: error row indices per reported cluster, most important first."""
    planted = [set(np.flatnonzero(error & (mode == j))) for j in range(MODES)]
    matched: dict[int, set[int]] = {}
    unmatched = 0
    for rows in clusters:
        s = set(rows.tolist())
        best = max(range(MODES), key=lambda j: len(s & planted[j]) / len(s | planted[j]))
        if len(s & planted[best]) / len(s | planted[best]) >= 0.5:
            matched.setdefault(best, set()).update(s)
        else:
            unmatched += 1
    recall = sum(len(matched.get(j, set()) & planted[j]) for j in range(MODES)) / sum(len(p) for p in planted)
    top = [r for rows in clusters[:MODES] for r in rows.tolist()]
    return {
        "clusters": len(clusters),
        "modes_found": f"{len(matched)}/{MODES}",
        "clusters_not_a_mode": unmatched,
        "mode_error_recall": round(recall, 3),
        "top_clusters_precision": round(float(np.mean(mode[top] >= 0)) if top else 0.0, 3),
    }


def shoal_side(n: int) -> dict:  # type: ignore[type-arg]
    from shoal.analysis import failure_clusters

    x, error, mode = data(n)
    t = time.perf_counter()
    region, _, kept = failure_clusters.regions(x, error, failure_clusters.DEFAULT_MAX_CLUSTERS,
                                               failure_clusters.DEFAULT_MIN_SIZE)  # fmt: skip
    seconds = time.perf_counter() - t
    clusters = [np.flatnonzero((region == c) & error) for c, *_ in kept]
    return {"seconds": round(seconds, 1), "peak_rss_mib": round(peak_rss_mib()), "errors": int(error.sum()),
            **_quality(clusters, error, mode)}  # fmt: skip


def hdbscan_side(n: int) -> dict:  # type: ignore[type-arg]
    from sklearn.cluster import HDBSCAN

    x, error, mode = data(n)
    rows = np.flatnonzero(error)
    t = time.perf_counter()
    labels = HDBSCAN(min_cluster_size=5, copy=True).fit(x[rows]).labels_
    seconds = time.perf_counter() - t
    groups = [rows[labels == c] for c in range(labels.max() + 1)]
    groups.sort(key=lambda g: -len(g))
    return {"seconds": round(seconds, 1), "peak_rss_mib": round(peak_rss_mib()), **_quality(groups, error, mode)}


def kmeans_side(n: int) -> dict:  # type: ignore[type-arg]
    from sklearn.cluster import KMeans

    x, error, mode = data(n)
    rows = np.flatnonzero(error)
    t = time.perf_counter()
    labels = KMeans(n_clusters=20, n_init=3, random_state=0).fit(x[rows]).labels_
    seconds = time.perf_counter() - t
    groups = [rows[labels == c] for c in range(20)]
    groups.sort(key=lambda g: -len(g))
    return {"seconds": round(seconds, 1), "peak_rss_mib": round(peak_rss_mib()), **_quality(groups, error, mode)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--peer-max-frames", type=int, default=100_000, help="the peers up to this size")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "analysis_quality" / "results_failure_clusters.json")
    args = ap.parse_args()
    results = results_header()
    for n in args.frames:
        run = {"shoal": run_child(MODULE, "shoal_side", n)}
        if n <= args.peer_max_frames:
            run["hdbscan_all_errors"] = run_child(MODULE, "hdbscan_side", n)
            run["kmeans_20_errors"] = run_child(MODULE, "kmeans_side", n)
        results["runs"][str(n)] = run
        write_results(args.out, results)


if __name__ == "__main__":
    main()
