"""The neighbour graph split into 1, 2 and 4 shards (the Pods of an Indexed Job), beside the whole job's graph in
one process and scikit-learn's exact brute-force kNN, on the same N x 128-d vectors (bench_neighbors.py's mixture
of 1,000 Gaussian clusters).

What is timed is the computation each Pod does, not the stores (each shard reads all vectors and writes its rows;
both scale as the whole job's reading and writing do):

- **whole**: ``neighbors.knn``, the graph of the job in one process today (NN-descent above 20k frames);
- **shards S**: ``neighbors.knn_shard`` for each of the S slices, each timed alone with the whole machine, as a
  Pod on a node of its own would run it; the job's time on S such nodes is the slowest shard plus the finish
  (the scores from the graph: neighbour labels, within-class graphs, duplicates), timed once;
- **S shards on this machine**: the S shards as S processes at once on these 2 cores;
- **peer**: ``sklearn.neighbors.NearestNeighbors(algorithm="brute", metric="cosine")``, exact.

Recall@10 of each graph is measured against exact search on 1,000 sampled frames.

    python bench/analysis_quality/bench_neighbor_shards.py --frames 100000 200000 --peer-frames 100000
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.analysis_quality.bench_neighbors import vectors  # noqa: E402
from bench.harness import results_header, write_results  # noqa: E402

K, SAMPLE, LABELS = 10, 1_000, 10
OUT = Path(__file__).with_name("results_shards.json")


def _recall(x: np.ndarray, idx: np.ndarray, rows: np.ndarray) -> float:
    """Mean share of the exact 10 nearest (cosine) found in ``idx`` for the sampled ``rows``."""
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = u[rows] @ u.T
    sims[np.arange(len(rows)), rows] = -np.inf
    exact = np.argpartition(-sims, K, axis=1)[:, :K]
    return float(np.mean([len(set(exact[i]) & set(idx[r])) / K for i, r in enumerate(rows)]))


def _finish(x: np.ndarray, idx: np.ndarray, dist: np.ndarray, labels: np.ndarray) -> float:
    """Seconds of what the finishing Pod computes from the graph (as neighbors.build does after it)."""
    from shoal.analysis import neighbors

    started = time.perf_counter()
    neighbors._neighbor_labels(idx, labels)
    neighbors.class_outlier_scores(x, labels, K, "cosine")
    nearest = dist[:, 0]
    close = np.argwhere(dist <= 0.1 * float(np.median(nearest)))
    a, b = close[:, 0], idx[close[:, 0], close[:, 1]]
    np.unique(np.minimum(a, b) * len(x) + np.maximum(a, b))
    return time.perf_counter() - started


def _shard_in_process(n: int, shard: int, shards: int, start: mp.Barrier) -> None:  # type: ignore[valid-type]
    from shoal.analysis import neighbors

    x = vectors(n, 0)
    start.wait()
    neighbors.knn_shard(x, neighbors.shard_rows(n, shard, shards), K, "cosine")


def _shards_at_once(n: int, shards: int) -> float:
    """Wall seconds of ``shards`` processes computing their shards at once on this machine."""
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(shards + 1)
    procs = [ctx.Process(target=_shard_in_process, args=(n, s, shards, start)) for s in range(shards)]
    for p in procs:
        p.start()
    start.wait()
    began = time.perf_counter()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"a shard process exited with {p.exitcode}")
    return time.perf_counter() - began


def run(n: int, peer: bool) -> dict:  # type: ignore[type-arg]
    from shoal.analysis import neighbors

    x = vectors(n, 0)
    labels = np.random.default_rng(3).integers(0, LABELS, n)
    rows = np.random.default_rng(5).choice(n, SAMPLE, replace=False)
    # NN-descent's kernels compiled (or loaded from numba's cache) before timing, as the warm-up does as a
    # service starts: a graph just above the exact limit
    neighbors.knn(x[: neighbors.EXACT_LIMIT + 1_000], K, "cosine")
    out: dict = {"frames": n}  # type: ignore[type-arg]

    started = time.perf_counter()
    idx, dist = neighbors.knn(x, K, "cosine")
    graph = time.perf_counter() - started
    out["whole"] = {"graph_s": graph, "finish_s": _finish(x, idx, dist, labels), "recall": _recall(x, idx, rows),
                    "method": "exact (faiss)" if n <= neighbors.EXACT_LIMIT else "NN-descent"}  # fmt: skip
    print(f"{n:>9,} whole: graph {graph:.1f} s, recall {out['whole']['recall']:.3f}", flush=True)

    finish = None
    for shards in (1, 2, 4):
        times, parts = [], []
        for s in range(shards):
            started = time.perf_counter()
            parts.append(neighbors.knn_shard(x, neighbors.shard_rows(n, s, shards), K, "cosine"))
            times.append(time.perf_counter() - started)
        sidx = np.concatenate([p[0] for p in parts])
        sdist = np.concatenate([p[1] for p in parts])
        if finish is None:
            finish = _finish(x, sidx, sdist, labels)
        entry = {"shard_s": times, "slowest_s": max(times), "finish_s": finish,
                 "on_s_nodes_s": max(times) + finish, "recall": _recall(x, sidx, rows)}  # fmt: skip
        if shards > 1:
            entry["at_once_here_s"] = _shards_at_once(n, shards)
        out[f"shards_{shards}"] = entry
        print(f"{n:>9,} {shards} shard(s): slowest {max(times):.1f} s + finish {finish:.1f} s, "
              f"recall {entry['recall']:.3f}" + (f", at once here {entry['at_once_here_s']:.1f} s" if shards > 1
                                                  else ""), flush=True)  # fmt: skip
    one = out["shards_1"]["on_s_nodes_s"]
    for shards in (2, 4):
        out[f"shards_{shards}"]["speedup"] = one / out[f"shards_{shards}"]["on_s_nodes_s"]

    if peer:
        from sklearn.neighbors import NearestNeighbors

        started = time.perf_counter()
        found = NearestNeighbors(n_neighbors=K + 1, algorithm="brute", metric="cosine").fit(x).kneighbors(x)[1]
        peer_s = time.perf_counter() - started
        out["peer"] = {"sklearn_brute_s": peer_s, "recall": _recall(x, found[:, 1:], rows)}
        print(f"{n:>9,} scikit-learn brute force: {peer_s:.1f} s", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[100_000, 200_000])
    ap.add_argument("--peer-frames", type=int, default=100_000, help="run scikit-learn up to this many frames")
    args = ap.parse_args()
    results = {**results_header(), "runs": [run(n, n <= args.peer_frames) for n in args.frames]}
    write_results(OUT, results)
    print(f"results in {OUT}")


if __name__ == "__main__":
    main()
