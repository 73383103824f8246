"""Shoal vs the in-memory peer at N frames: five operations run end to end through the real server over gRPC, cold
and warm, beside the library a data scientist would call on arrays already in memory.

For each N, in a temporary directory removed afterwards, in processes of their own (so each peak memory is its own):

1. a loader writes the console benchmark's classification project (N frames, 10 classes, a label and 10-class
   probabilities each; ``bench.console.bench_console.load``) into chDB and, when a neighbour or map job will run,
   N x 128-d frame vectors (the neighbour benchmark's mixture of clusters) into Milvus Lite at the server's default
   vector path;
2. the server (``bench_console.serve``, all services on those stores); the benchmark's client calls it over gRPC.
   The first call of each operation on the fresh server is *cold*: it is made as soon as the server answers
   SERVING, while the server still warms its compiled kernels in a background thread. Then the same call is made
   3 more times (jobs with ``rerun``) and their median is *warm*. The operations, in this order:
   - *metrics*: GetClassificationMetrics over the inference set;
   - *query page*: QueryDatapoints, 1,000 rows of the confusion cell labeled 3 / predicted 5, by loss descending;
   - *label issues*: StartLabelIssues and the wait for the job, then reading every frame's scores (the job's
     exported result when the client can export it, otherwise QueryLabelIssues with all frames, 1,000 a page);
   - *neighbour job*: StartNeighborAnalysis (kNN graph, outliers, duplicates) and the wait;
   - *map job*: StartEmbeddingMap (UMAP on a 20k sample, the rest placed) and the wait.
3. the peers, one process per operation on the same data regenerated in memory; *cold* includes importing the
   library, *warm* is the median of 3 more calls in that process:
   - label issues: cleanlab's ``find_label_issues(labels, pred_probs)`` with its defaults;
   - neighbours: scikit-learn's exact brute-force ``NearestNeighbors(11, cosine).fit(x).kneighbors(x)``;
   - map: umap-learn's ``UMAP(n_components=2, metric="cosine").fit_transform`` on min(N, 20,000) sampled vectors;
   - metrics: scikit-learn's ``confusion_matrix`` and ``precision_recall_fscore_support``;
   - query page: numpy, the frames labeled 3 whose argmax is 5, loss = -log p[label], the top 1,000 by loss.

    python bench/sweep/bench_sweep.py --frames 2000 20000 200000
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.analysis_metrics.bench_classification import data  # noqa: E402
from bench.analysis_quality import bench_neighbors  # noqa: E402
from bench.console import bench_console  # noqa: E402
from bench.harness import peak_rss_mib, results_header, run_child, write_results  # noqa: E402

MODULE = "bench.sweep.bench_sweep"
PROJECT, DATASET, INFERENCE_SET, SPACE = (bench_console.PROJECT, bench_console.DATASET, bench_console.INFERENCE_SET,
                                          bench_console.SPACE)  # fmt: skip
K, CELL = bench_console.K, bench_console.CELL
#: warm calls after the cold one (the warm figure is their median)
REPEATS = 3
PAGE = 1000
#: the map is fitted on this many frames (Shoal's default sample, and the peer's sample)
MAP_SAMPLE = 20_000
#: how often the client asks for a job's state while it waits
POLL_SECONDS = 0.05
#: the loader's batch: the peers regenerate the probabilities batch by batch with the same seeds
LOAD_BATCH = inspect.signature(bench_console.load).parameters["batch"].default
OPERATIONS = ("metrics", "query page", "label issues", "neighbour job", "map job")


# -- the data ------------------------------------------------------------------------------------------------------
def load(n: int, work: str, vectors: bool) -> dict:  # type: ignore[type-arg]
    """The console benchmark's chDB under ``work/ch``; with ``vectors``, N frame vectors into Milvus Lite at
    ``work/data/milvus.db``, the server's default vector path for ``data_dir=work/data``."""
    out = bench_console.load(n, work)
    if vectors:
        from shoal.common.stores.vectors import EmbeddedVectorStore

        store = EmbeddedVectorStore(path=Path(work) / "data" / "milvus.db", timeout_seconds=600)
        t = time.perf_counter()
        bench_neighbors.upsert_vectors(store, bench_console.frame_ids(0, n), frame_vectors(n))
        out["vectors_seconds"] = round(time.perf_counter() - t, 1)
    out["peak_rss_mib"] = round(peak_rss_mib())
    return out


def frame_vectors(n: int) -> np.ndarray:
    """The neighbour benchmark's vectors; below 4,000 frames, too few to plant its 2,000 copies among, its mixture
    of clusters alone."""
    if n >= 4 * bench_neighbors.PLANTED:
        return bench_neighbors.all_vectors(n)
    return bench_neighbors.vectors(n, 0)


def classification(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The labels and probabilities the loader wrote (float32, as stored), regenerated batch by batch."""
    parts = [data(min(s + LOAD_BATCH, n) - s, seed=s) for s in range(0, n, LOAD_BATCH)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


# -- the server side -----------------------------------------------------------------------------------------------
def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _cold_warm(fn: Callable[[bool], dict]) -> dict:  # type: ignore[type-arg]
    """``fn(first)`` returns {"seconds": ..., ...}; the first call is cold, then REPEATS warm ones."""
    cold = fn(True)
    warm = [fn(False) for _ in range(REPEATS)]
    out = {"cold_s": round(cold["seconds"], 6), "warm_s": round(statistics.median(w["seconds"] for w in warm), 6),
           "warm_all_s": [round(w["seconds"], 6) for w in warm]}  # fmt: skip
    for k, v in cold.items():
        if k != "seconds":
            out[k] = v
        if k.endswith("_s"):  # the parts of a call: their warm medians too
            out[f"warm_{k}"] = round(statistics.median(w[k] for w in warm), 6)
    return out


def measure_shoal(info: dict, n: int, run_neighbours: bool, run_map: bool) -> dict:  # type: ignore[type-arg]
    from shoal.analysis.v1 import analysis_pb2 as apb
    from shoal.client import Client
    from shoal.common.v1 import common_pb2 as cpb

    client = Client(info["target"], api_key=info["key"])
    stub = client.analysis

    def wait(job: Any) -> Any:
        done = client.wait_for_job(PROJECT, job.job_id, progress=False, poll=POLL_SECONDS)
        assert done.state == cpb.JOB_STATE_SUCCEEDED, f"job {job.job_id}: {done.state} {done.message}"
        return done

    def server_s(job: Any) -> float:
        """The job's own record: from its submission to its end (no polling in it)."""
        return (job.finish_time.ToMilliseconds() - job.create_time.ToMilliseconds()) / 1000

    def metrics(_: bool) -> dict:  # type: ignore[type-arg]
        request = apb.GetClassificationMetricsRequest(project=PROJECT, inference_set=INFERENCE_SET)
        seconds, answer = _timed(lambda: stub.GetClassificationMetrics(request))
        counted = sum(answer.metrics.confusion.counts)
        assert counted == n, f"metrics: the confusion matrix counts {counted} frames of {n}"
        return {"seconds": seconds, "frames_counted": counted}

    cell = cpb.Filter(all=[cpb.Condition(field="label_class", equals=cpb.Value(number_value=CELL[0])),
                           cpb.Condition(field="predicted_class", equals=cpb.Value(number_value=CELL[1]))])  # fmt: skip
    grid = apb.QueryDatapointsRequest(project=PROJECT, dataset=DATASET, inference_set=INFERENCE_SET, filter=cell,
                                      sort=[apb.SortKey(field="loss", descending=True)],
                                      page=cpb.PageRequest(page_size=PAGE))  # fmt: skip

    def query(_: bool) -> dict:  # type: ignore[type-arg]
        seconds, answer = _timed(lambda: stub.QueryDatapoints(grid))
        assert len(answer.datapoints) > 0, "query page: no rows"
        return {"seconds": seconds, "rows": len(answer.datapoints), "cell_total": answer.page.total_count}

    exporter = getattr(client, "export_job_result", None)

    def read_issues(job_id: str) -> int:
        if exporter is not None:
            return int(exporter(PROJECT, job_id).num_rows)
        rows, token = 0, ""
        while True:
            page = stub.QueryLabelIssues(apb.QueryLabelIssuesRequest(
                project=PROJECT, job_id=job_id, all_frames=True, page=cpb.PageRequest(page_size=PAGE, page_token=token)))  # fmt: skip
            rows += len(page.issues)
            token = page.page.next_page_token
            if not token:
                return rows

    def label_issues(_: bool) -> dict:  # type: ignore[type-arg]
        request = apb.StartLabelIssuesRequest(project=PROJECT, inference_set=INFERENCE_SET, rerun=True)
        job_s, job = _timed(lambda: wait(stub.StartLabelIssues(request).job))
        read_s, rows = _timed(lambda: read_issues(job.job_id))
        assert rows == n, f"label issues: read {rows} rows of {n}"
        return {"seconds": job_s + read_s, "job_s": job_s, "job_server_s": server_s(job), "read_s": read_s, "rows_read": rows,
                "read_by": "export_job_result" if exporter is not None else f"QueryLabelIssues, {PAGE} a page"}  # fmt: skip

    # every job call reruns: the loader wrote a finished map job with the parameters the server fills in
    def neighbours(_: bool) -> dict:  # type: ignore[type-arg]
        request = apb.StartNeighborAnalysisRequest(project=PROJECT, dataset=DATASET, embedding_space=SPACE, rerun=True)
        seconds, job = _timed(lambda: wait(stub.StartNeighborAnalysis(request).job))
        return {"seconds": seconds, "job_server_s": server_s(job)}

    def embedding_map(_: bool) -> dict:  # type: ignore[type-arg]
        request = apb.StartEmbeddingMapRequest(project=PROJECT, dataset=DATASET, embedding_space=SPACE, rerun=True)
        seconds, job = _timed(lambda: wait(stub.StartEmbeddingMap(request).job))
        return {"seconds": seconds, "job_server_s": server_s(job)}

    out: dict[str, Any] = {}
    for name, fn, run in (("metrics", metrics, True), ("query page", query, True), ("label issues", label_issues, True),
                          ("neighbour job", neighbours, run_neighbours), ("map job", embedding_map, run_map)):  # fmt: skip
        if run:
            out[name] = _cold_warm(fn)
            print(f"  shoal {name}: {json.dumps(out[name])}", flush=True)
    client.close()
    return out


# -- the peers (each in a process of its own) ----------------------------------------------------------------------
def _peer(fn: Callable[[], dict]) -> dict:  # type: ignore[type-arg]
    out = _cold_warm(lambda _: dict(zip(("seconds", "check"), _timed(fn), strict=True)))
    out["peak_rss_mib"] = round(peak_rss_mib())
    return out


def peer_label_issues(n: int) -> dict:  # type: ignore[type-arg]
    labels, probs = classification(n)

    def call() -> dict:  # type: ignore[type-arg]
        from cleanlab.filter import find_label_issues

        return {"issues": int(find_label_issues(labels, probs).sum())}

    return _peer(call)


def peer_neighbours(n: int) -> dict:  # type: ignore[type-arg]
    x = frame_vectors(n)

    def call() -> dict:  # type: ignore[type-arg]
        from sklearn.neighbors import NearestNeighbors

        _, idx = NearestNeighbors(n_neighbors=11, algorithm="brute", metric="cosine").fit(x).kneighbors(x)
        return {"shape": list(idx.shape)}

    return _peer(call)


def peer_map(n: int) -> dict:  # type: ignore[type-arg]
    x = frame_vectors(n)
    sample = x[np.sort(np.random.default_rng(0).choice(n, min(n, MAP_SAMPLE), replace=False))]

    def call() -> dict:  # type: ignore[type-arg]
        import umap

        return {"points": len(umap.UMAP(n_components=2, metric="cosine").fit_transform(sample))}

    return _peer(call)


def peer_metrics(n: int) -> dict:  # type: ignore[type-arg]
    labels, probs = classification(n)

    def call() -> dict:  # type: ignore[type-arg]
        from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

        predicted = probs.argmax(1)
        cm = confusion_matrix(labels, predicted, labels=range(K))
        precision_recall_fscore_support(labels, predicted, labels=range(K), zero_division=0)
        return {"frames_counted": int(cm.sum())}

    return _peer(call)


def peer_query(n: int) -> dict:  # type: ignore[type-arg]
    labels, probs = classification(n)

    def call() -> dict:  # type: ignore[type-arg]
        rows = np.flatnonzero((labels == CELL[0]) & (probs.argmax(1) == CELL[1]))
        loss = -np.log(probs[rows, CELL[0]])
        top = np.argpartition(-loss, PAGE - 1)[:PAGE] if len(rows) > PAGE else np.arange(len(rows))
        page = rows[top[np.argsort(-loss[top])]]
        return {"rows": len(page), "cell_total": len(rows)}

    return _peer(call)


PEERS = {"label issues": ("peer_label_issues", "cleanlab find_label_issues"),
         "neighbour job": ("peer_neighbours", "scikit-learn brute-force cosine kNN (k=11)"),
         "map job": ("peer_map", "umap-learn on min(N, 20k) vectors"),
         "metrics": ("peer_metrics", "scikit-learn confusion_matrix + precision_recall_fscore_support"),
         "query page": ("peer_query", "numpy: cell mask, -log p, argpartition + sort")}  # fmt: skip


# -- the run -------------------------------------------------------------------------------------------------------
def run(n: int, args: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    skipped = {}
    if n > args.neighbour_max:
        skipped["neighbour job"] = "not run: above --neighbour-max"
    if n > args.map_max:
        skipped["map job"] = "not run: above --map-max"
    peer_skipped = dict(skipped)
    if n > args.peer_knn_max and "neighbour job" not in peer_skipped:
        peer_skipped["neighbour job"] = "not run: above --peer-knn-max"
    work = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    try:
        vectors = n <= args.neighbour_max or n <= args.map_max
        print(f"[{n}] loading{' (and the vectors)' if vectors else ''} ...", flush=True)
        loaded = run_child(MODULE, "load", n, str(work), vectors)
        print(f"[{n}] {json.dumps(loaded)}; serving ...", flush=True)
        with bench_console.serving(work) as (info, served):
            shoal = measure_shoal(info, n, "neighbour job" not in skipped, "map job" not in skipped)
        shoal["server_peak_rss_mib"] = served.get("peak_rss_mib")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peers: dict[str, Any] = {}
    for name in OPERATIONS:
        if name in peer_skipped:
            continue
        fn, what = PEERS[name]
        print(f"[{n}] peer {name} ({what}) ...", flush=True)
        peers[name] = {"what": what, **run_child(MODULE, fn, n)}
        print(f"  peer {name}: {json.dumps(peers[name])}", flush=True)
    return {"load": loaded, "shoal": shoal, "peer": peers, "shoal_skipped": skipped, "peer_skipped": peer_skipped}


def _s(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1000:.2f} ms"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def table(runs: dict) -> str:  # type: ignore[type-arg]
    lines = ["| frames | operation | Shoal cold | Shoal warm | peer cold | peer warm | warm / warm |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for key, r in runs.items():
        n = int(key)
        for name in OPERATIONS:
            s, p = r["shoal"].get(name), r["peer"].get(name)
            shoal_cells = [_s(s["cold_s"]), _s(s["warm_s"])] if s else [r["shoal_skipped"][name]] * 2
            peer_cells = [_s(p["cold_s"]), _s(p["warm_s"])] if p else [r["peer_skipped"][name]] * 2
            ratio = f"{s['warm_s'] / p['warm_s']:,.1f}x" if s and p and p["warm_s"] > 0 else ""
            label = name
            if name == "label issues" and s:
                label = "label issues (job + read)"
            lines.append(f"| {n:,} | {label} | {' | '.join(shoal_cells)} | {' | '.join(peer_cells)} | {ratio} |")
            if name == "label issues" and s:
                for part, what in (("job_s", "job"), ("read_s", f"read {s['rows_read']:,} rows")):
                    lines.append(f"| {n:,} | label issues: {what} | {_s(s[part])} | {_s(s['warm_' + part])} | | | |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[2_000, 20_000, 200_000])
    ap.add_argument("--neighbour-max", type=int, default=200_000, help="the neighbour job up to this many frames")
    ap.add_argument("--map-max", type=int, default=200_000, help="the map job (and UMAP) up to this many frames")
    ap.add_argument("--peer-knn-max", type=int, default=200_000, help="scikit-learn's kNN up to this many frames")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "sweep" / "results.json")
    args = ap.parse_args()
    results = results_header()
    results["load_average_at_start"] = os.getloadavg()[0]
    for n in args.frames:
        results["runs"][str(n)] = run(n, args)
    results["load_average_at_end"] = os.getloadavg()[0]
    write_results(args.out, results)
    print()
    print(table(results["runs"]))


if __name__ == "__main__":
    main()
