"""The embedding map split into 1, 2 and 4 shards (the Pods of an Indexed Job), beside the whole map in one
process, on the same N x 128-d vectors (bench_neighbors.py's mixture of 1,000 Gaussian clusters).

What is timed is the computation each Pod does with the map's own code (``embedding_map.plan_of``, ``fit``,
``placements``), not the stores: each shard reads the fitted frames' vectors and its slice's, and writes its slice's
points, both of which divide over the shards as the placing does.

- **whole**: the job in one process: UMAP fitted on the sample (NN-descent's graph on every core), then every
  other frame placed, :data:`embedding_map.TRANSFORM_STEP` at a time;
- **shards S**: ``build_shard``'s computation for each of the S shards, each in a process of its own with the
  whole machine, one after another, as a Pod on a node of its own would run it: the same sample fitted on one
  numba thread (so that every shard fits the same map), then its slice of the other frames placed. UMAP's and
  NN-descent's kernels are loaded first, as the warm-up does as a Pod starts. The job's time on S such nodes is
  the slowest shard (the finishing Pod compares the shards' digests and sums up: one small query);
- every shard's fit is checked to be the same (its digest), and the points of the S shards together are checked
  to equal the 1-shard map's.

Peak RSS per process (VmHWM). The vectors are written to a file once; each process reads from it the fitted
frames' vectors, then its slice's :data:`embedding_map.WRITE_STEP` at a time, as a Pod reads them from the
vector store (bench_neighbor_shards.py's reader: a chunk read, the rows asked for kept, the chunk dropped).

    python bench/analysis_quality/bench_map_shards.py --frames 2020000
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.analysis_quality.bench_neighbor_shards import _file_reader  # noqa: E402
from bench.analysis_quality.bench_neighbors import vectors  # noqa: E402
from bench.harness import frame_name, peak_rss_mib, results_header, write_results  # noqa: E402

SAMPLE = 20_000
OUT = Path(__file__).with_name("results_map_shards.json")


def _warm() -> float:
    """Loads UMAP's and NN-descent's kernels (a fit large enough to take NN-descent's graph), as a Pod's warm-up
    does; returns its seconds."""
    from shoal.analysis import embedding_map

    began = time.perf_counter()
    embedding_map.fit(vectors(embedding_map.UMAP_OWN_GRAPH + 100, 0, seed=1), "cosine")
    return time.perf_counter() - began


def _pod(path: str, n: int, shard: int, shards: int, out: str, report: Any) -> None:
    """One Pod: kernels loaded, the sample fitted (on one thread when ``shards`` > 0, on every core for the
    whole map, ``shards`` 0), its slice placed; its points saved to ``out``; its times and peak RSS reported."""
    from shoal.analysis import embedding_map, neighbors

    vectors_of = _file_reader(path, n)
    warm = _warm()
    began = time.perf_counter()
    plan = embedding_map.plan_of(frame_name(np.arange(n)), "COSINE", SAMPLE)
    fitted_x = vectors_of(plan.fit_rows)
    if shards:
        with embedding_map._one_thread():
            fitted_xy = embedding_map.fit(fitted_x, plan.metric)
        span = neighbors.shard_rows(len(plan.rest), shard, shards)
    else:
        fitted_xy = embedding_map.fit(fitted_x, plan.metric)
        span = range(len(plan.rest))
    fit_s = time.perf_counter() - began
    mine = plan.rest[span.start : span.stop]
    placed = [xy for _, xy in embedding_map.placements(plan, mine, vectors_of, fitted_x, fitted_xy)]
    coords = np.concatenate(placed) if placed else np.zeros((0, 2), np.float32)
    seconds = time.perf_counter() - began
    np.save(out, coords)
    report.put({"shard": shard, "seconds": seconds, "fit_s": fit_s, "place_s": seconds - fit_s, "warm_s": warm,
                "placed": len(mine), "fit_digest": embedding_map._digest(plan, fitted_xy),
                "peak_rss_gib": peak_rss_mib() / 1024})  # fmt: skip


def _run_pods(path: Path, n: int, shards: int, work: Path) -> list[dict]:  # type: ignore[type-arg]
    """Each shard in a process of its own, one after another (each with the whole machine, as on a node of its
    own); ``shards`` 0 is the whole map in one process."""
    ctx = mp.get_context("spawn")
    report = ctx.Queue()
    reports = []
    for shard in range(max(shards, 1)):
        proc = ctx.Process(target=_pod, args=(str(path), n, shard, shards, str(work / f"xy-{shard}.npy"), report))
        proc.start()
        reports.append(report.get())
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"a shard process exited with {proc.exitcode}")
    return reports


def _points_digest(work: Path, shards: int) -> str:
    h = hashlib.sha256()
    for shard in range(max(shards, 1)):
        h.update(np.load(work / f"xy-{shard}.npy").tobytes())
    return h.hexdigest()


def run(n: int, shard_counts: list[int], whole: bool) -> dict:  # type: ignore[type-arg]
    out: dict = {"frames": n, "sample": SAMPLE, "placed": n - SAMPLE}  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        path = work / "vectors.f32"
        vectors(n, 0).tofile(path)
        if whole:
            (r,) = _run_pods(path, n, 0, work)
            out["whole"] = r
            print(f"{n:>10,} whole: fit {r['fit_s']:.1f} s + place {r['place_s']:.1f} s = {r['seconds']:.1f} s, "
                  f"peak {r['peak_rss_gib']:.2f} GiB", flush=True)  # fmt: skip
        digests = {}
        for shards in shard_counts:
            reports = _run_pods(path, n, shards, work)
            fits = {r["fit_digest"] for r in reports}
            assert len(fits) == 1, f"the {shards} shards fitted different maps"
            digests[shards] = (fits.pop(), _points_digest(work, shards))
            times = [r["seconds"] for r in reports]
            out[f"shards_{shards}"] = {
                "shard_s": times, "fit_s": [r["fit_s"] for r in reports], "place_s": [r["place_s"] for r in reports],
                "warm_s": max(r["warm_s"] for r in reports), "slowest_s": max(times),
                "shard_peak_rss_gib": max(r["peak_rss_gib"] for r in reports),
            }  # fmt: skip
            print(f"{n:>10,} {shards} shard(s): slowest {max(times):.1f} s (fit {max(r['fit_s'] for r in reports):.1f}"
                  f" s on one thread), peak {out[f'shards_{shards}']['shard_peak_rss_gib']:.2f} GiB", flush=True)  # fmt: skip
        assert len(set(digests.values())) <= 1, "the shards' points differ with their number"
        out["same_points_for_every_shard_count"] = len(set(digests.values())) == 1
    if 1 in shard_counts:
        one = out["shards_1"]["slowest_s"]
        for shards in shard_counts:
            out[f"shards_{shards}"]["speedup"] = one / out[f"shards_{shards}"]["slowest_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[2_020_000])
    ap.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4], help="shard counts to run")
    ap.add_argument("--no-whole", action="store_true", help="skip the whole map in one process")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    results = {**results_header(), "runs": [run(n, args.shards, not args.no_whole) for n in args.frames]}
    write_results(args.out, results)
    print(f"results in {args.out}")


if __name__ == "__main__":
    main()
