"""Classification metrics and drill-down on N frames in chDB, beside scikit-learn and numpy on the same arrays.

Three processes, so that each peak memory is its own:

1. a loader writes N frames with labels and 10-class probabilities into chDB (Arrow inserts into Shoal's tables);
2. Shoal: `classification_report` (confusion matrix, per-class metrics, top-k, calibration) and two drill-down
   pages (a confusion cell sorted by loss, and the page after it) on that chDB, the way the analysis service
   runs them;
3. the peers: scikit-learn's `confusion_matrix` and `precision_recall_fscore_support`, and a numpy brute-force
   drill-down (mask the cell, sort by loss, take a page), on the same arrays in memory.

    python bench/analysis_metrics/bench_classification.py --frames 10000000
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

MODULE = "bench.analysis_metrics.bench_classification"

K = 10
PROJECT, DATASET, INFERENCE_SET = "bench", "d", "m"
CELL = (3, 5)  # labeled 3, predicted 5


def data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities): a model right about 70% of the time."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, K, n).astype(np.int32)
    logits = rng.normal(size=(n, K)).astype(np.float32)
    logits[np.arange(n), labels] += rng.uniform(0, 3, n).astype(np.float32)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return labels, logits


def frame_ids(n: int) -> list[str]:
    return [f"f{i:09d}" for i in range(n)]


def load(n: int, path: str, batch: int = 500_000) -> dict:  # type: ignore[type-arg]
    import pyarrow as pa

    from shoal.common.data import datasets, evaluations, frames
    from shoal.common.data import projects as catalog
    from shoal.common.data.evaluations import EvaluationRefresher
    from shoal.common.stores.metrics import EmbeddedMetricsStore
    from shoal.ingest import writer
    from shoal.ingest.columns import constant

    labels, probs = data(n)
    ids = frame_ids(n)
    m = EmbeddedMetricsStore(path=Path(path), database="bench")
    m.create_database()
    m.migrate(
        [*catalog.MIGRATIONS, *datasets.MIGRATIONS, *frames.MIGRATIONS, *writer.MIGRATIONS, *evaluations.MIGRATIONS]
    )
    projects = catalog.ProjectCatalog(m)
    projects.create(
        catalog.Project(PROJECT, "CLASSIFICATION", classes=tuple(catalog.ClassDef(i, str(i)) for i in range(K)))
    )
    sets = datasets.DatasetCatalog(m, projects)
    sets.create(datasets.Dataset(PROJECT, DATASET, "LABELED", ("train",)))
    sets.create_inference_set(datasets.InferenceSet(PROJECT, INFERENCE_SET, DATASET, "model", "1"))

    t0 = time.perf_counter()
    for s in range(0, n, batch):
        e = min(s + batch, n)
        k = e - s
        fid = pa.array(ids[s:e], pa.string())
        one = pa.array(np.ones(k, dtype=np.uint64))
        m.insert_arrow("frames", pa.table({"project": constant(PROJECT, k), "dataset": constant(DATASET, k), "frame_id": fid,
                                           "split": constant("train", k), "version": one}))  # fmt: skip
        m.insert_arrow("label_versions", pa.table({
            "project": constant(PROJECT, k), "dataset": constant(DATASET, k), "frame_id": fid, "label_version": constant("v", k),
            "class_id": pa.array(labels[s:e])}))  # fmt: skip
        p = np.ascontiguousarray(probs[s:e])
        m.insert_arrow("inferences", pa.table({
            "project": constant(PROJECT, k), "inference_set": constant(INFERENCE_SET, k), "dataset": constant(DATASET, k),
            "frame_id": fid, "pred_class": pa.array(p.argmax(1).astype(np.int32)), "confidence": pa.array(p.max(1)),
            "probs": pa.ListArray.from_arrays(pa.array(np.arange(0, (k + 1) * K, K, dtype=np.int32)), pa.array(p.ravel())),
            "version": one}))  # fmt: skip
    loaded = time.perf_counter() - t0
    # what the ingest consumer does after each batch it writes: refresh the rows analyses read
    refresher = EvaluationRefresher(m)
    t0 = time.perf_counter()
    for s in range(0, n, batch):
        refresher.refresh(PROJECT, DATASET, ids[s : s + batch], list(range(K)))
    return {"load_seconds": round(loaded, 1), "refresh_seconds": round(time.perf_counter() - t0, 1)}


def shoal_side(path: str, repeats: int) -> dict:  # type: ignore[type-arg]
    """Timed right after loading (the refresh left many unmerged parts), then once ClickHouse has
    merged them (as its background merges do within minutes)."""
    fresh = _shoal_queries(path, repeats)
    from shoal.common.stores.metrics import EmbeddedMetricsStore

    m = EmbeddedMetricsStore(path=Path(path), database="bench")
    t = time.perf_counter()
    m.command("OPTIMIZE TABLE evaluations FINAL")
    merge = time.perf_counter() - t
    merged = _shoal_queries(path, repeats)
    assert merged["confusion"] == fresh["confusion"] and merged["page_1_ids"] == fresh["page_1_ids"]
    fresh["merged"] = {k: merged[k] for k in ("metrics_seconds", "page_1_seconds", "page_2_seconds")}
    fresh["merged"]["optimize_seconds"] = round(merge, 1)
    return fresh


def _shoal_queries(path: str, repeats: int) -> dict:  # type: ignore[type-arg]
    from shoal.analysis.classification import classification_report
    from shoal.analysis.datapoints import query_datapoints
    from shoal.analysis.v1 import analysis_pb2 as apb
    from shoal.common.data.query import View
    from shoal.common.stores.metrics import EmbeddedMetricsStore
    from shoal.common.v1 import common_pb2 as cpb

    m = EmbeddedMetricsStore(path=Path(path), database="bench")
    view = View(PROJECT, DATASET, INFERENCE_SET, ontology=tuple(range(K)))
    cell = cpb.Filter(all=[cpb.Condition(field="label_class", equals=cpb.Value(number_value=CELL[0])),
                           cpb.Condition(field="predicted_class", equals=cpb.Value(number_value=CELL[1]))])  # fmt: skip
    sort = [apb.SortKey(field="loss", descending=True)]
    times: dict[str, list[float]] = {"metrics": [], "page_1": [], "page_2": []}
    report = page = page2 = None
    for _ in range(repeats):
        t = time.perf_counter()
        report = classification_report(m, view, cpb.Filter())
        times["metrics"].append(time.perf_counter() - t)
        t = time.perf_counter()
        page = query_datapoints(m, view, cell, sort, 50, "", scope="bench")
        times["page_1"].append(time.perf_counter() - t)
        t = time.perf_counter()
        page2 = query_datapoints(m, view, cell, sort, 50, page.next_token, scope="bench")
        times["page_2"].append(time.perf_counter() - t)
    assert report is not None and page is not None and page2 is not None
    return {
        "metrics_seconds": round(min(times["metrics"]), 3),
        "page_1_seconds": round(min(times["page_1"]), 3),
        "page_2_seconds": round(min(times["page_2"]), 3),
        "peak_rss_mib": round(peak_rss_mib()),
        "confusion": report.confusion[:, :K].tolist(),
        "accuracy": report.accuracy,
        "cell_total": page.total,
        "page_1_ids": [r.frame_id for r in page.rows],
        "page_2_ids": [r.frame_id for r in page2.rows],
    }


def peer_side(n: int, repeats: int) -> dict:  # type: ignore[type-arg]
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    labels, probs = data(n)
    ids = np.array(frame_ids(n))
    times: dict[str, list[float]] = {"metrics": [], "page_1": []}
    cm = acc = None
    page: list[str] = []
    for _ in range(repeats):
        t = time.perf_counter()
        pred = probs.argmax(axis=1)
        cm = confusion_matrix(labels, pred, labels=list(range(K)))
        precision_recall_fscore_support(labels, pred, labels=list(range(K)), zero_division=0)
        acc = accuracy_score(labels, pred)
        times["metrics"].append(time.perf_counter() - t)
        t = time.perf_counter()
        rows = np.flatnonzero((labels == CELL[0]) & (pred == CELL[1]))
        loss = -np.log(np.maximum(probs[rows, CELL[0]].astype(np.float64), 1e-12))
        order = np.lexsort((ids[rows], -loss))
        page = ids[rows[order[:50]]].tolist()
        times["page_1"].append(time.perf_counter() - t)
    assert cm is not None
    return {
        "metrics_seconds": round(min(times["metrics"]), 3),
        "page_1_seconds": round(min(times["page_1"]), 3),
        "peak_rss_mib": round(peak_rss_mib()),
        "confusion": cm.tolist(),
        "accuracy": float(acc),  # type: ignore[arg-type]
        "page_1_ids": page,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--repeats", type=int, default=3, help="each timing is the best of this many runs")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "analysis_metrics" / "results_classification.json")
    args = ap.parse_args()
    results = results_header()
    for n in args.frames:
        work = Path(tempfile.mkdtemp(prefix="bench-analysis-"))
        try:
            print(f"[{n}] loading ...", flush=True)
            loaded = run_child(MODULE, "load", n, str(work / "ch"))
            print(f"[{n}] {loaded}; shoal ...", flush=True)
            shoal = run_child(MODULE, "shoal_side", str(work / "ch"), args.repeats)
            print(f"[{n}] peers ...", flush=True)
            peer = run_child(MODULE, "peer_side", n, args.repeats)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        # the same answers, or the timings mean nothing
        assert shoal["confusion"] == peer["confusion"], "confusion matrices differ"
        assert abs(shoal["accuracy"] - peer["accuracy"]) < 1e-12
        assert shoal["page_1_ids"] == peer["page_1_ids"], "drill-down pages differ"
        summary = {
            "load": loaded,
            "shoal": {k: v for k, v in shoal.items() if k not in ("confusion", "page_1_ids", "page_2_ids")},
            "peers": {k: v for k, v in peer.items() if k not in ("confusion", "page_1_ids")},
        }
        results["runs"][str(n)] = summary
        print(f"[{n}] {json.dumps(summary)}", flush=True)
    write_results(args.out, results)


if __name__ == "__main__":
    main()
