"""Similarity search into a pool of N x 128-d vectors: the sampler's search (``shoal.sampler.search``, the path
of the SearchSimilar RPC after validation) on Milvus Lite (an exact FLAT index) and on a Milvus server (HNSW,
M = 16, efConstruction = 200, ef = 2k), beside brute-force numpy exact search over the same vectors in memory.

The pool is a mixture of 1,000 Gaussian clusters (the neighbour benchmark's vectors); the queries are new
draws from the same mixture. After loading, the store is flushed and the search waits for the index to cover every
row (a Milvus server searches vectors still in growing segments through a coarse interim index, at lower recall). Per side: the latency of one query for k = 100 (p50, p99 over the queries, after
5 warm-up queries), and recall@100 against the exact answer. Each store side loads the pool, then searches, in
a process of its own.

    python bench/sampler/bench_search.py --frames 1000000 --queries 500 --stores lite server
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.analysis_quality.bench_neighbors import D, vectors  # noqa: E402
from bench.harness import peak_rss_mib, results_header, run_child, write_results  # noqa: E402

MODULE = "bench.sampler.bench_search"
K = 100
PROJECT, POOL, SPACE = "bench", "pool", "emb"
WARMUP = 5


def queries(n: int) -> np.ndarray:
    return vectors(n, 0, seed=99)


def exact(x: np.ndarray, q: np.ndarray, k: int = K) -> tuple[np.ndarray, list[float]]:
    """Exact cosine top-k of each query, one query at a time (the latency a brute-force search has)."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    out = np.empty((len(q), k), dtype=np.int64)
    times = []
    for i, v in enumerate(q):
        t = time.perf_counter()
        sims = xn @ (v / np.linalg.norm(v))
        top = np.argpartition(-sims, k)[:k]
        out[i] = top[np.argsort(-sims[top])]
        times.append(time.perf_counter() - t)
    return out, times


def _percentiles(times: list[float]) -> dict:  # type: ignore[type-arg]
    ms = 1000 * np.asarray(times[WARMUP:])
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "mean_ms": round(float(ms.mean()), 2)}  # fmt: skip


def store_side(n: int, n_queries: int, url: str) -> dict:  # type: ignore[type-arg]
    from shoal.common.data.embeddings import EMBEDDING_FIELDS, vector_pk
    from shoal.common.data.projects import EmbeddingSpace
    from shoal.common.stores.vectors import CollectionSpec, collection_name, open_vector_store
    from shoal.sampler import search

    store = open_vector_store(url, timeout_seconds=600)
    name = collection_name(PROJECT, SPACE)
    store.ensure_collection(CollectionSpec(name=name, dimension=D, metric="COSINE", scalar_fields=EMBEDDING_FIELDS))
    store.ensure_partition(name, POOL)
    ids = [f"f{i:08d}" for i in range(n)]
    t0 = time.perf_counter()
    for s in range(0, n, 100_000):
        x = vectors(min(100_000, n - s), s)
        for b in range(0, len(x), 5000):
            part = ids[s + b : s + b + 5000]
            store.upsert(name, partition=POOL, ids=[vector_pk(POOL, f, "") for f in part], vectors=x[b : b + 5000],
                         fields={"dataset": [POOL] * len(part), "frame_id": part, "object_id": [""] * len(part)})  # fmt: skip
    load = time.perf_counter() - t0
    # seal and index what was written: until then Milvus searches fresh vectors through a coarse interim index
    t0 = time.perf_counter()
    store.flush(name)
    while True:
        indexed, total = store.index_progress(name)
        if indexed >= total or time.perf_counter() - t0 > 1800:
            break
        time.sleep(2)
    index = time.perf_counter() - t0
    space = EmbeddingSpace(SPACE, D, "COSINE", "FRAME", "bench", "1")
    q = queries(n_queries + WARMUP)
    t0 = time.perf_counter()
    search.search(store, PROJECT, pool=POOL, space=space, seeds=q[:1], k=K, pool_scope=None)  # loads the index
    first = time.perf_counter() - t0
    times, found = [], []
    for v in q:
        t = time.perf_counter()
        r = search.search(store, PROJECT, pool=POOL, space=space, seeds=v[None, :], k=K, pool_scope=None)
        times.append(time.perf_counter() - t)
        found.append([int(it.frame_id[1:]) for it in r.items])
    x = vectors(n, 0)
    truth, _ = exact(x, q[WARMUP:])
    recall = float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found[WARMUP:], truth, strict=True)]))
    return {"load_seconds": round(load, 1), "flush_and_index_seconds": round(index, 1),
            "indexed_rows": f"{indexed}/{total}", "first_query_seconds": round(first, 2), **_percentiles(times),
            "recall_at_100": round(recall, 4), "peak_rss_mib": round(peak_rss_mib())}  # fmt: skip


def numpy_side(n: int, n_queries: int) -> dict:  # type: ignore[type-arg]
    x = vectors(n, 0)
    _, times = exact(x, queries(n_queries + WARMUP))
    return {**_percentiles(times), "recall_at_100": 1.0, "peak_rss_mib": round(peak_rss_mib())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--stores", nargs="+", choices=["lite", "server"], default=["lite", "server"])
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "sampler" / "results_search.json")
    args = ap.parse_args()
    results = results_header()
    run = {"numpy_exact": run_child(MODULE, "numpy_side", args.frames, args.queries)}
    for kind in args.stores:
        work = Path(tempfile.mkdtemp(prefix=f"bench-sampler-{kind}-"))
        server = None
        try:
            if kind == "server":
                from tests.harness.milvus_server import MilvusTestServer

                server = MilvusTestServer(work_dir=work)
                server.start()
                url = server.uri
            else:
                url = str(work / "milvus.db")
            run[f"shoal_{kind}"] = run_child(MODULE, "store_side", args.frames, args.queries, url)
        finally:
            if server is not None:
                server.stop()
            shutil.rmtree(work, ignore_errors=True)
        results["runs"][str(args.frames)] = run
        write_results(args.out, results)
    results["runs"][str(args.frames)] = run
    write_results(args.out, results)


if __name__ == "__main__":
    main()
