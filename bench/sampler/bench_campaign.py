"""A collection campaign over a pool of N x 128-d vectors: the whole campaign job (``shoal.sampler.campaign.build``:
pool vectors read from Milvus Lite in chunks, similarity to 100 seed frames, pre-selection of 10 x budget, lazy MMR
selection with near-duplicate removal, the sample and its segment written to chDB), beside the same strategy in
plain numpy on the vectors in memory (one pick at a time, every candidate's similarity to the picks updated per
pick).

The pool is the neighbour benchmark's mixture of 1,000 Gaussian clusters, unlabeled; the seeds are 100 pool
frames (a seed segment). Strategy: similarity 1, diversity 0.5 (MMR), near-duplicate distance 0.02.

    python bench/sampler/bench_campaign.py --frames 1000000 --budget 10000
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

MODULE = "bench.sampler.bench_campaign"
PROJECT, POOL, SPACE = "bench", "pool", "emb"
SEEDS = 100
DIVERSITY, DUPLICATE = 0.5, 0.02


def seed_rows(n: int) -> np.ndarray:
    return np.sort(np.random.default_rng(4).choice(n, SEEDS, replace=False))


def frame_ids(n: int) -> list[str]:
    return [f"f{i:08d}" for i in range(n)]


def _stores(path: str):  # type: ignore[no-untyped-def]
    from shoal.common.stores.metrics import EmbeddedMetricsStore
    from shoal.common.stores.vectors import EmbeddedVectorStore

    return (EmbeddedMetricsStore(path=Path(path) / "ch", database="bench"),
            EmbeddedVectorStore(path=Path(path) / "milvus.db", timeout_seconds=600))  # fmt: skip


def load(n: int, path: str) -> dict:  # type: ignore[type-arg]
    import pyarrow as pa

    from shoal.common.data import datasets, evaluations, frames, results, segments
    from shoal.common.data.embeddings import EMBEDDING_FIELDS, vector_pk
    from shoal.common.data.projects import Project
    from shoal.common.stores.vectors import CollectionSpec, collection_name
    from shoal.ingest import writer
    from shoal.ingest.columns import constant
    from shoal.sampler import campaign

    m, v = _stores(path)
    m.create_database()
    m.migrate(
        (
            *frames.MIGRATIONS,
            *writer.MIGRATIONS,
            *datasets.MIGRATIONS,
            *evaluations.MIGRATIONS,
            *segments.MIGRATIONS,
            *results.MIGRATIONS,
            *campaign.MIGRATIONS,
        )
    )
    ids = frame_ids(n)
    t0 = time.perf_counter()
    for table in ("frames", "evaluations"):
        extra = {"inference_set": constant("", n)} if table == "evaluations" else {}
        m.insert_arrow(table, pa.table({"project": constant(PROJECT, n), "dataset": constant(POOL, n), **extra,
                                        "frame_id": pa.array(ids), "version": pa.array(np.ones(n, np.uint64))}))  # fmt: skip
    name = collection_name(PROJECT, SPACE)
    v.ensure_collection(CollectionSpec(name=name, dimension=D, metric="COSINE", scalar_fields=EMBEDDING_FIELDS))
    v.ensure_partition(name, POOL)
    for s in range(0, n, 100_000):
        x = vectors(min(100_000, n - s), s)
        for b in range(0, len(x), 5000):
            part = ids[s + b : s + b + 5000]
            v.upsert(name, partition=POOL, ids=[vector_pk(POOL, f, "") for f in part], vectors=x[b : b + 5000],
                     fields={"dataset": [POOL] * len(part), "frame_id": part, "object_id": [""] * len(part)})  # fmt: skip
    v.flush(name)
    project = Project(PROJECT, "CLASSIFICATION")
    segments.SegmentStore(m).create(segments.Segment(project=PROJECT, name="seeds", dataset=POOL, kind="COLLECTION_SEED"),
                                    project, [ids[i] for i in seed_rows(n)])  # fmt: skip
    return {"load_seconds": round(time.perf_counter() - t0, 1)}


def shoal_side(n: int, budget: int, path: str) -> dict:  # type: ignore[type-arg]
    from shoal.common.data.projects import Project
    from shoal.common.data.query import View
    from shoal.common.jobs import Job
    from shoal.common.v1 import common_pb2
    from shoal.sampler import campaign

    m, v = _stores(path)
    job = Job(PROJECT, "sampler", "campaign-bench", campaign.KIND)
    strategy = campaign.Strategy(similarity=1.0, uncertainty=0.0, diversity=DIVERSITY, balance=0.0, method="mmr",
                                 measure="entropy")  # fmt: skip
    t = time.perf_counter()
    summary = campaign.build(
        None, m, v, job, project=Project(PROJECT, "CLASSIFICATION"), view=View(project=PROJECT, dataset=POOL),
        name="bench-campaign", space=SPACE, seed_space=SPACE, seed_segment="seeds", budget=budget, strategy=strategy,
        inference_set="", duplicate_distance=DUPLICATE, labeled_dataset="", flt=common_pb2.Filter(),
        exclude_labeled=False, exclude_segments=[],
    )  # fmt: skip
    seconds = time.perf_counter() - t
    rows = campaign.query_items(m, PROJECT, job.job_id, offset=0, size=budget)
    picked = [int(str(r[1])[1:]) for r in rows]
    return {"seconds": round(seconds, 1), "peak_rss_mib": round(peak_rss_mib()), "selected": summary.selected,
            "skipped_duplicates": summary.skipped_duplicates_of_picked, "picked": picked}  # fmt: skip


def numpy_side(n: int, budget: int) -> dict:  # type: ignore[type-arg]
    """The same strategy one pick at a time in numpy, every candidate updated per pick."""
    x = vectors(n, 0)
    t = time.perf_counter()
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    seeds = seed_rows(n)
    sim = np.full(n, -np.inf)
    for s in range(0, n, 100_000):
        sim[s : s + 100_000] = (x[s : s + 100_000] @ x[seeds].T).max(axis=1)
    sim[seeds] = -np.inf  # seeds are not candidates
    pre = np.argsort(-sim, kind="stable")[: min(n - SEEDS, 10 * budget)]
    xp, score = x[pre], sim[pre]
    near = np.full(len(pre), -np.inf)  # similarity to the nearest pick
    alive = np.ones(len(pre), dtype=bool)
    picked = []
    while len(picked) < budget and alive.any():
        gain = np.where(alive, score - DIVERSITY * np.maximum(near, 0.0), -np.inf)
        i = int(np.argmax(gain))
        alive[i] = False
        if near[i] >= 1.0 - DUPLICATE:  # a near-duplicate of an earlier pick
            continue
        picked.append(int(pre[i]))
        near = np.maximum(near, xp @ xp[i])
    return {"seconds": round(time.perf_counter() - t, 1), "peak_rss_mib": round(peak_rss_mib()),
            "selected": len(picked), "picked": picked}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--budget", type=int, default=10_000)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "sampler" / "results_campaign.json")
    args = ap.parse_args()
    results = results_header()
    work = Path(tempfile.mkdtemp(prefix="bench-campaign-"))
    try:
        run = {"load": run_child(MODULE, "load", args.frames, str(work))}
        shoal = run_child(MODULE, "shoal_side", args.frames, args.budget, str(work))
        peer = run_child(MODULE, "numpy_side", args.frames, args.budget)
        same = len(set(shoal.pop("picked")) & set(peer.pop("picked")))
        run |= {"shoal": shoal, "numpy_greedy": peer, "same_frames_picked": same}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["runs"][f"{args.frames} frames, budget {args.budget}"] = run
    write_results(args.out, results)


if __name__ == "__main__":
    main()
