"""The neighbour job (kNN graph, outlier scores, duplicates) on N x 128-d vectors in Milvus Lite, beside brute-force
numpy exact search on the same vectors.

Three processes, so that each peak memory is its own:

1. a loader upserts N vectors into Milvus Lite (as ingest writes them: one partition per dataset) and the frames'
   labels and splits into chDB. The vectors are a mixture of 1,000 Gaussian clusters, with 1,000 exact and 1,000
   near copies planted, a quarter of them in another split;
2. Shoal: ``neighbors.build``, the whole job: vectors read from Milvus in chunks, the graph (exact up to 20k
   frames, NN-descent above), scores, duplicates, everything written back. Then the recall of its graph against exact search on
   1,000 sampled frames, and the recall of the planted duplicates;
3. the peer: brute-force exact kNN with numpy (normalised vectors, one matrix product per block of rows, then
   ``argpartition``) on the first ``--peer-frames`` vectors, and its time per query.

    python bench/analysis_quality/bench_neighbors.py --frames 100000 1000000
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

MODULE = "bench.analysis_quality.bench_neighbors"
D, K, CLUSTERS, PLANTED = 128, 10, 1000, 1000
PROJECT, DATASET, SPACE = "bench", "d", "emb"
STEP = 100_000


def vectors(n: int, start: int, seed: int = 0) -> np.ndarray:
    """Rows [start, start + n): the mixture, then the planted copies overwrite the last 2 * PLANTED rows of the
    whole set (see :func:`planted`)."""
    rng = np.random.default_rng([seed, 7])
    centers = rng.normal(0, 1, (CLUSTERS, D)).astype(np.float32)
    out = np.empty((n, D), dtype=np.float32)
    for s in range(start, start + n, STEP):
        size = min(STEP, start + n - s)
        r = np.random.default_rng([seed, s])
        out[s - start : s - start + size] = centers[r.integers(0, CLUSTERS, size)] + r.normal(0, 0.5, (size, D))
    return out


def planted(n: int) -> list[tuple[int, int, bool]]:
    """(source row, copy row, exact): the copies are the last 2 * PLANTED rows."""
    rng = np.random.default_rng(11)
    sources = rng.choice(n - 2 * PLANTED, 2 * PLANTED, replace=False)
    return [(int(src), n - 2 * PLANTED + j, j < PLANTED) for j, src in enumerate(sources)]


def all_vectors(n: int) -> np.ndarray:
    x = vectors(n, 0)
    rng = np.random.default_rng(12)
    for src, dup, exact in planted(n):
        x[dup] = x[src] if exact else x[src] + rng.normal(0, 0.01, D).astype(np.float32)
    return x


def splits(n: int) -> np.ndarray:
    s = np.full(n, "train", dtype=object)
    for j, (_, dup, _) in enumerate(planted(n)):
        if j % 4 == 0:
            s[dup] = "test"
    return s


def frame_ids(n: int) -> np.ndarray:
    return np.array([f"f{i:08d}" for i in range(n)], dtype=object)


def _stores(path: str):  # type: ignore[no-untyped-def]
    from shoal.common.stores.metrics import EmbeddedMetricsStore
    from shoal.common.stores.vectors import EmbeddedVectorStore

    return (EmbeddedMetricsStore(path=Path(path) / "ch", database="bench"),
            EmbeddedVectorStore(path=Path(path) / "milvus.db", timeout_seconds=600))  # fmt: skip


def load(n: int, path: str) -> dict:  # type: ignore[type-arg]
    import pyarrow as pa

    from shoal.common.data import datasets, evaluations, frames
    from shoal.ingest import writer
    from shoal.ingest.columns import constant

    m, v = _stores(path)
    m.create_database()
    m.migrate((*frames.MIGRATIONS, *writer.MIGRATIONS, *datasets.MIGRATIONS, *evaluations.MIGRATIONS))
    x, ids, sp = all_vectors(n), frame_ids(n), splits(n)
    labels = np.random.default_rng(3).integers(0, 10, n).astype(np.int32)
    t0 = time.perf_counter()
    m.insert_arrow("frames", pa.table({
        "project": constant(PROJECT, n), "dataset": constant(DATASET, n), "frame_id": pa.array(ids, pa.string()),
        "split": pa.array(sp, pa.string()), "version": pa.array(np.ones(n, np.uint64)),
    }))  # fmt: skip
    m.insert_arrow("evaluations", pa.table({
        "project": constant(PROJECT, n), "inference_set": constant("", n), "dataset": constant(DATASET, n),
        "frame_id": pa.array(ids, pa.string()), "split": pa.array(sp, pa.string()), "label_class": pa.array(labels),
        "version": pa.array(np.ones(n, np.uint64)),
    }))  # fmt: skip
    upsert_vectors(v, ids, x)
    return {"load_seconds": round(time.perf_counter() - t0, 1)}


def upsert_vectors(v, ids: np.ndarray | list[str], x: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """Frame vectors ``x`` under the frame ids ``ids`` into the vector store ``v``, as ingest writes them: the
    space's collection, one partition for the dataset, 5,000 rows per upsert."""
    from shoal.common.data.embeddings import EMBEDDING_FIELDS, vector_pk
    from shoal.common.stores.vectors import CollectionSpec, collection_name

    n = len(ids)
    name = collection_name(PROJECT, SPACE)
    v.ensure_collection(CollectionSpec(name=name, dimension=D, metric="COSINE", scalar_fields=EMBEDDING_FIELDS))
    v.ensure_partition(name, DATASET)
    for s in range(0, n, 5000):
        e = min(n, s + 5000)
        v.upsert(name, partition=DATASET, ids=[vector_pk(DATASET, f, "") for f in ids[s:e]], vectors=x[s:e],
                 fields={"dataset": [DATASET] * (e - s), "frame_id": list(ids[s:e]), "object_id": [""] * (e - s)})  # fmt: skip


def _exact(x: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact cosine kNN (without the query itself) of ``queries`` rows, by blocks."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    out = np.empty((len(queries), k), dtype=np.int64)
    for s in range(0, len(queries), 1000):
        q = queries[s : s + 1000]
        sims = xn[q] @ xn.T
        sims[np.arange(len(q)), q] = -np.inf
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        out[s : s + len(q)] = np.take_along_axis(top, order, axis=1)
    return out


def shoal_side(n: int, path: str) -> dict:  # type: ignore[type-arg]
    from shoal.analysis import label_issues, neighbors
    from shoal.common.data import results
    from shoal.common.jobs import Job

    m, v = _stores(path)
    m.migrate((*results.MIGRATIONS, *label_issues.MIGRATIONS, *neighbors.MIGRATIONS))
    job = Job(PROJECT, "analysis", "neighbors-bench", neighbors.KIND)
    t = time.perf_counter()
    summary = neighbors.build(None, m, v, job, dataset=DATASET, space=SPACE, space_metric="COSINE", k=K)
    seconds = time.perf_counter() - t
    rss = peak_rss_mib()
    # quality: graph recall on sampled frames, and the planted duplicates
    x, ids = all_vectors(n), frame_ids(n)
    sample = np.random.default_rng(5).choice(n, 1000, replace=False)
    graph = m.query_columns(
        "SELECT frame_id, neighbors FROM knn_graph FINAL WHERE project = {p:String} AND job_id = {j:String}"
        " AND frame_id IN {ids:Array(String)}",
        {"p": PROJECT, "j": job.job_id, "ids": list(ids[sample])},
    )
    got = {str(f): {str(g) for g in nb} for f, nb in zip(graph["frame_id"], graph["neighbors"], strict=True)}
    exact = _exact(x, sample, K)
    recall = float(np.mean([len(got[ids[q]] & set(ids[exact[i]])) / K for i, q in enumerate(sample)]))
    pairs = m.query_columns(
        "SELECT frame_a, frame_b, exact FROM duplicate_pairs FINAL WHERE project = {p:String} AND job_id = {j:String}",
        {"p": PROJECT, "j": job.job_id},
    )
    found = {(str(a), str(b)) for a, b in zip(pairs["frame_a"], pairs["frame_b"], strict=True)}
    plant = planted(n)
    hits = sum((min(ids[s], ids[d]), max(ids[s], ids[d])) in found for s, d, _ in plant)
    leaks = [(s, d) for j, (s, d, _) in enumerate(plant) if j % 4 == 0]
    leak_pairs = m.query(
        "SELECT count() FROM duplicate_pairs FINAL WHERE project = {p:String} AND job_id = {j:String}"
        " AND split_a != split_b",
        {"p": PROJECT, "j": job.job_id},
    ).scalar()
    return {
        "seconds": round(seconds, 1),
        "peak_rss_mib": round(rss),
        "graph_recall_at_10": round(recall, 4),
        "exact_search": summary.exact_search,
        "planted_duplicates_found": f"{hits}/{len(plant)}",
        "leaks_reported": int(leak_pairs),
        "leaks_planted": len(leaks),
        "duplicate_distance": summary.duplicate_distance,
    }


def peer_side(n: int) -> dict:  # type: ignore[type-arg]
    x = all_vectors(n)
    t = time.perf_counter()
    _exact(x, np.arange(n), K)
    seconds = time.perf_counter() - t
    return {
        "seconds": round(seconds, 1),
        "peak_rss_mib": round(peak_rss_mib()),
        "ms_per_query": round(1000 * seconds / n, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--peer-frames", type=int, default=100_000, help="brute-force numpy up to this size")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "analysis_quality" / "results_neighbors.json")
    args = ap.parse_args()
    results = results_header()
    for n in args.frames:
        work = Path(tempfile.mkdtemp(prefix="bench-neighbors-"))
        try:
            print(f"[{n}] loading ...", flush=True)
            loaded = run_child(MODULE, "load", n, str(work))
            print(f"[{n}] {loaded}; shoal ...", flush=True)
            shoal = run_child(MODULE, "shoal_side", n, str(work))
            print(f"[{n}] {shoal}", flush=True)
            peer = None
            if n <= args.peer_frames:
                print(f"[{n}] brute-force numpy ...", flush=True)
                peer = run_child(MODULE, "peer_side", n)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        summary = {"load": loaded, "shoal": shoal, "numpy_exact": peer or f"not run (above {args.peer_frames})"}
        results["runs"][str(n)] = summary
        print(f"[{n}] {json.dumps(summary)}", flush=True)
    write_results(args.out, results)


if __name__ == "__main__":
    main()
