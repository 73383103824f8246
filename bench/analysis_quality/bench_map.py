"""The embedding-map job (UMAP fitted on a sample, every frame placed) on N x 128-d vectors in Milvus Lite, beside
UMAP fitted on all N vectors in memory where that fits in the time.

Uses the vectors of ``bench_neighbors`` (a mixture of 1,000 Gaussian clusters). Quality: the share of each frame's
10 nearest frames in 2-D that come from its own cluster (cluster purity of the map), for Shoal and the peer.

    python bench/analysis_quality/bench_map.py --frames 100000 1000000 --peer-max-frames 100000
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

from bench.analysis_quality import bench_neighbors as data  # noqa: E402
from bench.harness import peak_rss_mib, results_header, run_child, write_results  # noqa: E402

MODULE = "bench.analysis_quality.bench_map"


def clusters(n: int) -> np.ndarray:
    """The cluster of each vector of ``bench_neighbors.vectors`` (same generator)."""
    out = np.empty(n, dtype=np.int64)
    for s in range(0, n, data.STEP):
        size = min(data.STEP, n - s)
        out[s : s + size] = np.random.default_rng([0, s]).integers(0, data.CLUSTERS, size)
    return out


def purity(xy: np.ndarray, labels: np.ndarray, sample: int = 5000) -> float:
    from sklearn.neighbors import NearestNeighbors

    rows = np.random.default_rng(1).choice(len(xy), min(sample, len(xy)), replace=False)
    nn = NearestNeighbors(n_neighbors=11).fit(xy)
    _, idx = nn.kneighbors(xy[rows])
    return float(np.mean(labels[idx[:, 1:]] == labels[rows][:, None]))


def shoal_side(n: int, path: str) -> dict:  # type: ignore[type-arg]
    from shoal.analysis import embedding_map, label_issues
    from shoal.common.data import results
    from shoal.common.jobs import Job

    m, v = data._stores(path)
    m.migrate((*results.MIGRATIONS, *label_issues.MIGRATIONS, *embedding_map.MIGRATIONS))
    job = Job(data.PROJECT, "analysis", "map-bench", embedding_map.KIND)
    t = time.perf_counter()
    summary = embedding_map.build(None, m, v, job, dataset=data.DATASET, space=data.SPACE, space_metric="COSINE")
    seconds = time.perf_counter() - t
    rss = peak_rss_mib()
    pts = m.query_columns(
        "SELECT frame_id, x, y FROM map_points FINAL WHERE project = {p:String} AND job_id = {j:String}",
        {"p": data.PROJECT, "j": job.job_id},
    )
    rows = np.array([int(str(f)[1:]) for f in pts["frame_id"]])
    xy = np.stack([np.asarray(pts["x"]), np.asarray(pts["y"])], axis=1)
    labels = clusters(n)[rows]
    plain = rows < n - 2 * data.PLANTED  # the planted copies are not of the mixture's clusters
    return {"seconds": round(seconds, 1), "peak_rss_mib": round(rss), "fitted_on": summary.fitted_on,
            "points": len(rows), "cluster_purity": round(purity(xy[plain], labels[plain]), 4)}  # fmt: skip


def peer_side(n: int) -> dict:  # type: ignore[type-arg]
    import umap

    x = data.all_vectors(n)
    t = time.perf_counter()
    xy = umap.UMAP(n_components=2, metric="cosine", random_state=0, low_memory=True).fit_transform(x)
    seconds = time.perf_counter() - t
    plain = np.arange(n) < n - 2 * data.PLANTED
    return {"seconds": round(seconds, 1), "peak_rss_mib": round(peak_rss_mib()),
            "cluster_purity": round(purity(xy[plain], clusters(n)[plain]), 4)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[100_000])
    ap.add_argument("--peer-max-frames", type=int, default=100_000, help="fit UMAP on everything up to this size")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "analysis_quality" / "results_map.json")
    args = ap.parse_args()
    results = results_header()
    for n in args.frames:
        work = Path(tempfile.mkdtemp(prefix="bench-map-"))
        try:
            print(f"[{n}] loading ...", flush=True)
            loaded = run_child(data.MODULE, "load", n, str(work))
            print(f"[{n}] {loaded}; shoal ...", flush=True)
            shoal = run_child(MODULE, "shoal_side", n, str(work))
            print(f"[{n}] {shoal}", flush=True)
            peer = None
            if n <= args.peer_max_frames:
                print(f"[{n}] umap on everything ...", flush=True)
                peer = run_child(MODULE, "peer_side", n)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        summary = {"load": loaded, "shoal": shoal, "umap_fit_all": peer or f"not run (above {args.peer_max_frames})"}
        results["runs"][str(n)] = summary
        print(f"[{n}] {json.dumps(summary)}", flush=True)
    write_results(args.out, results)


if __name__ == "__main__":
    main()
