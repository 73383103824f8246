"""The neighbour graph split into 1, 2 and 4 shards (the Pods of an Indexed Job), beside the whole job's graph in
one process and scikit-learn's exact brute-force kNN, on the same N x 128-d vectors (bench_neighbors.py's mixture
of 1,000 Gaussian clusters).

What is timed is the computation each Pod does, not the stores (each shard reads all vectors and writes its rows;
both scale as the whole job's reading and writing do):

- **whole**: ``neighbors.knn``, the graph of the job in one process (NN-descent above 20k frames);
- **shards S**: ``neighbors.shard_graph`` for each of the S shards, each in a process of its own with the whole
  machine, one after another, as a Pod on a node of its own would run it (NN-descent's kernels warmed first, as
  the warm-up does): up to 100,000 frames the exact neighbours of the shard's slice, above the graphs of the
  overlapping cells dealt to it, then the graphs within the classes dealt to it. The job's time on S such nodes
  is the slowest shard, plus the merge of the parts and the finish (the scores from the graph: neighbour labels
  and duplicates), timed once; the whole job's finish also builds the graphs within classes;
- **S shards on this machine** (up to ``--at-once-frames``): the S shard processes at once on these 2 cores;
- **peer**: ``sklearn.neighbors.NearestNeighbors(algorithm="brute", metric="cosine")``, exact.

Recall@10 of each graph is measured against exact search on 1,000 sampled frames; peak RSS per process. With
``--stored`` each shard also runs reading the vectors as it needs them, as it reads the vector store in a Pod
(the sample, every vector a block at a time, then its cells' and classes' vectors), from a file of them: its
peak memory beside the shard that holds every vector, and the finishing Pod's (the parts merged, the neighbour
labels and duplicates scored, in a process of its own).

    python bench/analysis_quality/bench_neighbor_shards.py --frames 50000 100000 --peer-frames 50000
    python bench/analysis_quality/bench_neighbor_shards.py --frames 1000000 --out results_shards_1m.json
    python bench/analysis_quality/bench_neighbor_shards.py --frames 1000000 --no-whole --peer-frames 0 \
        --at-once-frames 0 --stored --out bench/analysis_quality/results_shards_stored.json
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.analysis_quality.bench_neighbors import D, vectors  # noqa: E402
from bench.harness import results_header, write_results  # noqa: E402

K, SAMPLE, LABELS = 10, 1_000, 10
OUT = Path(__file__).with_name("results_shards.json")


def _recall(x: np.ndarray, idx: np.ndarray, rows: np.ndarray) -> float:
    """Mean share of the exact 10 nearest (cosine) found in ``idx`` for the sampled ``rows`` (100 at a time, so
    that the measurement does not set the process's peak memory)."""
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    found = []
    for s in range(0, len(rows), 100):
        block = rows[s : s + 100]
        sims = u[block] @ u.T
        sims[np.arange(len(block)), block] = -np.inf
        exact = np.argpartition(-sims, K, axis=1)[:, :K]
        found += [len(set(exact[i]) & set(idx[r])) / K for i, r in enumerate(block)]
    return float(np.mean(found))


def _finish(x: np.ndarray, idx: np.ndarray, dist: np.ndarray, labels: np.ndarray, classes: bool = True) -> float:
    """Seconds of what the finishing Pod computes from the graph (as neighbors.build does after it): the
    neighbour labels, the duplicates and, unless the shards built them (``classes`` false), the graphs within
    classes."""
    from shoal.analysis import neighbors

    started = time.perf_counter()
    neighbors._neighbor_labels(idx, labels)
    if classes:
        neighbors.class_outlier_scores(x, labels, K, "cosine")
    nearest = dist[:, 0]
    close = np.argwhere(dist <= 0.1 * float(np.median(nearest)))
    a, b = close[:, 0], idx[close[:, 0], close[:, 1]]
    np.unique(np.minimum(a, b) * len(x) + np.maximum(a, b))
    return time.perf_counter() - started


def _labels(n: int) -> np.ndarray:
    return np.random.default_rng(3).integers(0, LABELS, n)


def _file_reader(path: str, n: int) -> Any:
    """``vectors_of(rows)`` on a file of n x D float32 rows, as a shard reads the vector store by id: a chunk of
    rows is read, the rows asked for taken, the chunk dropped, so the process holds only what it asked for."""
    chunk = 65_536

    def vectors_of(rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), D), dtype=np.float32)
        order = np.argsort(rows, kind="stable")
        with open(path, "rb") as f:
            for c in np.unique(rows // chunk):
                lo, hi = np.searchsorted(rows[order], [c * chunk, (c + 1) * chunk])
                f.seek(int(c) * chunk * D * 4)
                block = np.fromfile(f, np.float32, count=(min(n, (c + 1) * chunk) - c * chunk) * D).reshape(-1, D)
                out[order[lo:hi]] = block[rows[order[lo:hi]] - c * chunk]
        return out

    return vectors_of


def _shard_alone(n: int, shard: int, shards: int, out: str, report: Any, start: Any, stored: str = "") -> None:
    """A shard's Pod: NN-descent's kernels warmed, then ``neighbors.shard_graph`` timed, with every vector in
    memory, or (``stored``: the file holding them) reading them as a shard reads the vector store; its parts
    saved to ``out`` for the finish; (seconds, warm-up seconds, peak RSS) put on ``report``."""
    from shoal.analysis import neighbors

    x = vectors(neighbors.EXACT_LIMIT + 1_000, 0) if stored else vectors(n, 0)
    vectors_of = _file_reader(stored, n) if stored else (lambda rows: x[rows])
    began = time.perf_counter()
    neighbors.knn(x[: neighbors.EXACT_LIMIT + 1_000], K, "cosine")  # what the warm-up does as a Pod starts
    warm = time.perf_counter() - began
    if stored:
        del x
    if start is not None:
        start.wait()
    began = time.perf_counter()
    parts = list(neighbors.shard_graph(vectors_of, n, shard, shards, K, "cosine"))
    graph = time.perf_counter() - began
    labels = _labels(n)
    classes = neighbors.shard_classes(labels, shard, shards)
    rows = np.flatnonzero(np.isin(labels, classes))
    neighbors.class_outlier_scores(vectors_of(rows), labels[rows], K, "cosine", classes=classes)
    seconds = time.perf_counter() - began
    np.savez(out, frames=np.concatenate([np.repeat(r, K) for _, r, _, _ in parts]),
             near=np.concatenate([i.reshape(-1) for _, _, i, _ in parts]),
             dist=np.concatenate([d.reshape(-1) for _, _, _, d in parts]))  # fmt: skip
    report.put({"shard": shard, "shard_s": seconds, "graph_s": graph, "warm_s": warm,
                "peak_rss_gib": _rss_gib()})  # fmt: skip


def _shards(n: int, shards: int, work: Path, at_once: bool, stored: str = "") -> tuple[list[dict], float | None]:  # type: ignore[type-arg]
    """Each shard in a process of its own: one after another, each with the whole machine (as on a node of its
    own), or all at once on this machine; returns each shard's report and, at once, the wall seconds."""
    ctx = mp.get_context("spawn")
    report = ctx.Queue()
    start = ctx.Barrier(shards + 1) if at_once else None
    procs = [ctx.Process(target=_shard_alone, args=(n, s, shards, str(work / f"part-{s}.npz"), report, start,
                                                    stored))
             for s in range(shards)]  # fmt: skip
    wall = None
    if at_once:
        for proc in procs:
            proc.start()
        start.wait()  # type: ignore[union-attr]
        began = time.perf_counter()
        reports = [report.get() for _ in procs]
        wall = time.perf_counter() - began
    else:
        reports = []
        for proc in procs:
            proc.start()
            reports.append(report.get())
            proc.join()
    for proc in procs:
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"a shard process exited with {proc.exitcode}")
    return sorted(reports, key=lambda r: r["shard"]), wall


def _merged(n: int, shards: int, work: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """The graph from the shards' parts, as the finishing Pod merges them, and the merge's seconds."""
    from shoal.analysis import graph_cells

    parts = [np.load(work / f"part-{s}.npz") for s in range(shards)]
    began = time.perf_counter()
    idx, dist, have = graph_cells.merge(n, K, np.concatenate([p["frames"] for p in parts]),
                                        np.concatenate([p["near"] for p in parts]),
                                        np.concatenate([p["dist"] for p in parts]))  # fmt: skip
    assert (have >= K).all(), "a frame got fewer than k neighbours"
    return idx, dist, time.perf_counter() - began


def _finish_alone(n: int, shards: int, work: str, report: Any) -> None:
    """The finishing Pod of a job whose shards built the graphs within classes: the parts merged, then the
    neighbour labels and the duplicates; its peak RSS put on ``report``. The vectors are not read."""
    from shoal.analysis import neighbors

    idx, dist, _ = _merged(n, shards, Path(work))
    neighbors._neighbor_labels(idx, _labels(n))
    close = np.argwhere(dist <= 0.1 * float(np.median(dist[:, 0])))
    a, b = close[:, 0], idx[close[:, 0], close[:, 1]]
    np.unique(np.minimum(a, b) * n + np.maximum(a, b))
    report.put(_rss_gib())


def _finishing_pod_gib(n: int, shards: int, work: Path) -> float:
    ctx = mp.get_context("spawn")
    report = ctx.Queue()
    proc = ctx.Process(target=_finish_alone, args=(n, shards, str(work), report))
    proc.start()
    gib = report.get()
    proc.join()
    return float(gib)


def run(n: int, peer: bool, at_once: bool, shard_counts: list[int], whole: bool, stored: bool = False) -> dict:  # type: ignore[type-arg]
    from shoal.analysis import neighbors

    x = vectors(n, 0)
    labels = _labels(n)
    rows = np.random.default_rng(5).choice(n, SAMPLE, replace=False)
    out: dict = {"frames": n, "method": "exact" if n <= neighbors.SHARDED_EXACT_LIMIT else  # type: ignore[type-arg]
                 f"cells of about {neighbors.PARTITIONED_CELL_FRAMES:,} frames, each frame in two"}  # fmt: skip
    if whole:
        # NN-descent's kernels compiled (or loaded from numba's cache) before timing, as the warm-up does as a
        # service starts: a graph just above the exact limit
        neighbors.knn(x[: neighbors.EXACT_LIMIT + 1_000], K, "cosine")
        started = time.perf_counter()
        idx, dist = neighbors.knn(x, K, "cosine")
        graph = time.perf_counter() - started
        out["whole"] = {"graph_s": graph, "finish_s": _finish(x, idx, dist, labels),
                        "recall": _recall(x, idx, rows), "peak_rss_gib": _rss_gib(),
                        "method": "exact (faiss)" if n <= neighbors.EXACT_LIMIT else "NN-descent"}  # fmt: skip
        print(f"{n:>9,} whole: graph {graph:.1f} s + finish {out['whole']['finish_s']:.1f} s, "
              f"recall {out['whole']['recall']:.3f}", flush=True)  # fmt: skip
        del idx, dist

    finish = None
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for shards in shard_counts:
            reports, _ = _shards(n, shards, work, at_once=False)
            sidx, sdist, merge_s = _merged(n, shards, work)
            if finish is None:
                finish = _finish(x, sidx, sdist, labels, classes=False)
            times = [r["shard_s"] for r in reports]
            entry = {"shard_s": times, "shard_graph_s": [r["graph_s"] for r in reports], "slowest_s": max(times),
                     "merge_s": merge_s, "finish_s": finish,
                     "on_s_nodes_s": max(times) + merge_s + finish, "recall": _recall(x, sidx, rows),
                     "shard_peak_rss_gib": max(r["peak_rss_gib"] for r in reports),
                     "warm_s": max(r["warm_s"] for r in reports)}  # fmt: skip
            if shards > 1 and at_once:
                entry["at_once_here_s"] = _shards(n, shards, work, at_once=True)[1]
            if stored:
                # the same shards reading the vectors as they need them (a file here, the vector store in a Pod)
                stored_file = work / "vectors.f32"
                if not stored_file.exists():
                    x.tofile(stored_file)
                again, _ = _shards(n, shards, work, at_once=False, stored=str(stored_file))
                entry["stored_shard_s"] = [r["shard_s"] for r in again]
                entry["stored_shard_peak_rss_gib"] = max(r["peak_rss_gib"] for r in again)
                entry["stored_recall"] = _recall(x, _merged(n, shards, work)[0], rows)
                entry["finishing_pod_peak_rss_gib"] = _finishing_pod_gib(n, shards, work)
            out[f"shards_{shards}"] = entry
            print(f"{n:>9,} {shards} shard(s): slowest {max(times):.1f} s + merge {merge_s:.1f} s + finish "
                  f"{finish:.1f} s, recall {entry['recall']:.3f}, shard peak {entry['shard_peak_rss_gib']:.1f} GiB"
                  + (f", at once here {entry['at_once_here_s']:.1f} s" if "at_once_here_s" in entry else "")
                  + (f"; reading as needed: shard peak {entry['stored_shard_peak_rss_gib']:.2f} GiB, recall"
                     f" {entry['stored_recall']:.3f}, finishing Pod {entry['finishing_pod_peak_rss_gib']:.2f} GiB"
                     if stored else ""),
                  flush=True)  # fmt: skip
    if 1 in shard_counts:
        one = out["shards_1"]["on_s_nodes_s"]
        for shards in shard_counts:
            out[f"shards_{shards}"]["speedup"] = one / out[f"shards_{shards}"]["on_s_nodes_s"]

    if peer:
        from sklearn.neighbors import NearestNeighbors

        started = time.perf_counter()
        found = NearestNeighbors(n_neighbors=K + 1, algorithm="brute", metric="cosine").fit(x).kneighbors(x)[1]
        peer_s = time.perf_counter() - started
        out["peer"] = {"sklearn_brute_s": peer_s, "recall": _recall(x, found[:, 1:], rows)}
        print(f"{n:>9,} scikit-learn brute force: {peer_s:.1f} s", flush=True)
    return out


def _rss_gib() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the parent a spawned
    process was forked from)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[100_000, 200_000])
    ap.add_argument("--peer-frames", type=int, default=100_000, help="run scikit-learn up to this many frames")
    ap.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4], help="shard counts to run")
    ap.add_argument(
        "--at-once-frames",
        type=int,
        default=100_000,
        help="also run the shards at once on this machine up to this many frames",
    )
    ap.add_argument("--no-whole", action="store_true", help="skip the whole graph in one process")
    ap.add_argument(
        "--stored",
        action="store_true",
        help="also run each shard reading the vectors as it needs them (from a file), as in a Pod",
    )
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    results = {**results_header(), "runs": [run(n, n <= args.peer_frames, n <= args.at_once_frames, args.shards,
                                                not args.no_whole, args.stored) for n in args.frames]}  # fmt: skip
    write_results(args.out, results)
    print(f"results in {args.out}")


if __name__ == "__main__":
    main()
