"""End-to-end ingest throughput and peak memory, beside the raw ceiling of the same stores.

End to end: the SDK in this process uploads N frames (labels, 10-class probabilities and, unless
--no-embeddings, 128-d embeddings) to a `shoal serve` process (all four services, embedded chDB
and in-process bus), timed from the first chunk sent until GetUploadStatus says COMPLETED.

Raw ceiling, in the same run and on the same arrays: the frames, labels and inferences inserted
column-wise straight into chDB, and the vectors upserted straight into Milvus (Lite, or the server)
in batches of the same size, with no validation, no events and no status.

    python bench/ingest/bench_ingest.py --frames 1000000 --vectors lite server
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.harness import machine, peak_rss_mib  # noqa: E402
from shoal.client import Client  # noqa: E402
from shoal.common.auth import generate_key  # noqa: E402
from shoal.ingest.v1 import ingest_pb2 as pb  # noqa: E402
from shoal.sdk import UploadColumns  # noqa: E402

K = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def data(n: int, dim: int, seed: int = 0) -> dict:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(K), size=n).astype(np.float32)
    probs /= probs.sum(axis=1, keepdims=True)
    return {
        "ids": [f"f{i:08d}" for i in range(n)],
        "classes": rng.integers(0, K, n),
        "probs": probs,
        "vecs": rng.normal(size=(n, dim)).astype(np.float32) if dim else None,
    }


def end_to_end(n: int, dim: int, vectors_url: str | None, chunk: int, work: Path) -> dict:  # type: ignore[type-arg]
    port = free_port()
    _, key = generate_key()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    # steady ingest is measured: the analysis kernels' warm-up, a one-off at start, is left out
    env.update({"SHOAL_ADMIN_API_KEY": key, "SHOAL_LOG_LEVEL": "WARNING", "SHOAL_WARM_KERNELS": "false"})
    if vectors_url:
        env["SHOAL_VECTORS_URL"] = vectors_url
    log = (work / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shoal.cli", "serve", "--port", str(port), "--data-dir", str(work / "data"), "--no-console"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with Client(f"127.0.0.1:{port}", api_key=key) as c:
            deadline = time.monotonic() + 180
            while c.health_status() != "SERVING":
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"shoal serve did not start; see {work / 'serve.log'}")
                time.sleep(0.2)
            spaces = [pb.EmbeddingSpace(name="e", dimension=dim, metric=pb.DISTANCE_METRIC_L2, level=pb.EMBEDDING_LEVEL_FRAME,
                                        model_name="m", model_version="1")] if dim else []  # fmt: skip
            c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
                name="bench", task_type=pb.TASK_TYPE_CLASSIFICATION,
                classes=[pb.ClassDef(id=i, name=str(i)) for i in range(K)], embedding_spaces=spaces)))  # fmt: skip
            c.ingest.CreateDataset(
                pb.CreateDatasetRequest(project="bench", dataset=pb.Dataset(name="d", kind=pb.DATASET_KIND_LABELED))
            )
            c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(
                project="bench", inference_set=pb.InferenceSet(name="i", dataset="d", model_name="m", model_version="1")))  # fmt: skip
            d = data(n, dim)
            columns = UploadColumns(
                frame_ids=d["ids"], class_ids=d["classes"], inference_set="i", probabilities=d["probs"],
                embeddings={"e": d["vecs"]} if dim else None,
            )  # fmt: skip
            t0 = time.perf_counter()
            result = c.upload("bench", "d", columns, chunk_size=chunk, progress=False, deadline_seconds=3600)
            sent = time.perf_counter() - t0
            status = c.wait_for_upload("bench", result.upload_id, timeout=7200, poll=0.25)
            total = time.perf_counter() - t0
            stats = c.ingest.GetDataset(pb.GetDatasetRequest(project="bench", dataset="d", include_stats=True)).stats
            server_rss = peak_rss_mib(proc.pid)
        assert status.state == pb.UPLOAD_STATE_COMPLETED, status
        assert stats.frames == n and stats.inferences == n and (not dim or stats.embeddings["e"] == n), stats
        return {
            "frames_per_s": round(n / total),
            "accepted_per_s": round(n / sent),
            "seconds": round(total, 1),
            "server_peak_rss_mib": round(server_rss),
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()


def raw_ceiling(n: int, dim: int, vectors_url: str | None, chunk: int, work: Path) -> dict:  # type: ignore[type-arg]
    """Same arrays straight into the stores, in a child process (own chDB, own peak memory)."""
    code = f"""
import json, time, resource, sys
import numpy as np
from pathlib import Path
sys.path.insert(0, {str(REPO)!r})
from bench.ingest.bench_ingest import raw_child
print(json.dumps(raw_child({n}, {dim}, {vectors_url!r}, {chunk or 5000}, Path({str(work)!r}))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def raw_child(n: int, dim: int, vectors_url: str | None, chunk: int, work: Path, batch: int = 50_000) -> dict:  # type: ignore[type-arg]
    import pyarrow as pa

    from shoal.common.data import frames
    from shoal.common.stores.metrics import EmbeddedMetricsStore
    from shoal.common.stores.vectors import CollectionSpec, ScalarField, open_vector_store
    from shoal.ingest import writer
    from shoal.ingest.columns import constant

    d = data(n, dim)
    m = EmbeddedMetricsStore(path=work / "raw-clickhouse", database="raw")
    m.migrate((*frames.MIGRATIONS, *writer.MIGRATIONS))
    ids = d["ids"]

    # Arrow tables of the columns Shoal writes, in large batches: the fastest direct path into chDB
    t0 = time.perf_counter()
    for s in range(0, n, batch):
        e = min(s + batch, n)
        k = e - s
        fid = pa.array(ids[s:e], pa.string())
        version = pa.array(np.full(k, 1, dtype=np.uint64))
        m.insert_arrow("frames", pa.table({"project": constant("p", k), "dataset": constant("d", k), "frame_id": fid,
                                           "version": version}))  # fmt: skip
        m.insert_arrow("label_versions", pa.table({"project": constant("p", k), "dataset": constant("d", k), "frame_id": fid,
                                                   "label_version": constant("v", k),
                                                   "class_id": pa.array(d["classes"][s:e].astype(np.int32))}))  # fmt: skip
        p = np.ascontiguousarray(d["probs"][s:e])
        probs = pa.ListArray.from_arrays(pa.array(np.arange(0, (k + 1) * K, K, dtype=np.int32)), pa.array(p.ravel()))
        m.insert_arrow("inferences", pa.table({"project": constant("p", k), "inference_set": constant("i", k),
                                               "dataset": constant("d", k), "frame_id": fid,
                                               "pred_class": pa.array(p.argmax(1).astype(np.int32)),
                                               "confidence": pa.array(p.max(1)), "probs": probs,
                                               "version": version}))  # fmt: skip
    t_ch = time.perf_counter() - t0
    t_vec = 0.0
    if dim:
        store = open_vector_store(vectors_url or str(work / "raw-milvus.db"), timeout_seconds=600)
        store.ensure_collection(
            CollectionSpec(
                "raw",
                dim,
                "L2",
                (
                    ScalarField("dataset", "string"),
                    ScalarField("frame_id", "string"),
                    ScalarField("object_id", "string"),
                ),
            )
        )
        t1 = time.perf_counter()
        for s in range(0, n, chunk):
            e = min(s + chunk, n)
            k = e - s
            store.upsert("raw", partition="d", ids=ids[s:e], vectors=d["vecs"][s:e],
                         fields={"dataset": ["d"] * k, "frame_id": ids[s:e], "object_id": [""] * k})  # fmt: skip
        t_vec = time.perf_counter() - t1
        store.drop_collection("raw")
        store.close()
    total = t_ch + t_vec
    return {
        "frames_per_s": round(n / total),
        "clickhouse_rows_per_s": round(n / t_ch),
        "milvus_vectors_per_s": round(n / t_vec) if t_vec else None,
        "seconds": round(total, 1),
        # VmHWM of this process image (ru_maxrss would include the parent's RSS at fork, kept across exec)
        "peak_rss_mib": round(peak_rss_mib(os.getpid())),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--chunk", type=int, default=None, help="frames per chunk (default: the SDK's choice)")
    ap.add_argument(
        "--vectors",
        nargs="*",
        choices=["lite", "server"],
        default=["lite", "server"],
        help="vector stores to measure with embeddings (none: only --no-embeddings-run)",
    )
    ap.add_argument("--no-embeddings-run", action="store_true", help="also measure frames without embeddings")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "ingest" / "results.json")
    args = ap.parse_args()
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "frames": args.frames,
        "runs": {},
    }
    server = None
    try:
        for kind in args.vectors:
            url = None
            if kind == "server":
                from tests.harness.milvus_server import MilvusTestServer

                server = MilvusTestServer(work_dir=Path(tempfile.mkdtemp(prefix="bench-milvus-")))
                server.start()
                url = server.uri
            work = Path(tempfile.mkdtemp(prefix=f"bench-ingest-{kind}-"))
            print(f"[{kind}] end to end, {args.frames} frames x {args.dim}-d ...", flush=True)
            e2e = end_to_end(args.frames, args.dim, url, args.chunk, work)
            print(f"[{kind}] {e2e}", flush=True)
            print(f"[{kind}] raw ceiling ...", flush=True)
            raw = raw_ceiling(args.frames, args.dim, url, args.chunk, work)
            print(f"[{kind}] {raw}", flush=True)
            results["runs"][f"{kind}, {args.dim}-d embeddings"] = {"end_to_end": e2e, "raw_ceiling": raw,
                                                                   "ratio": round(e2e["frames_per_s"] / raw["frames_per_s"], 2)}  # fmt: skip
            shutil.rmtree(work, ignore_errors=True)
            if server is not None:
                server.stop()
                server = None
        if args.no_embeddings_run:
            work = Path(tempfile.mkdtemp(prefix="bench-ingest-noemb-"))
            print("[no embeddings] end to end ...", flush=True)
            e2e = end_to_end(args.frames, 0, None, args.chunk, work)
            raw = raw_ceiling(args.frames, 0, None, args.chunk, work)
            print(f"[no embeddings] {e2e} / {raw}", flush=True)
            results["runs"]["no embeddings"] = {"end_to_end": e2e, "raw_ceiling": raw,
                                                "ratio": round(e2e["frames_per_s"] / raw["frames_per_s"], 2)}  # fmt: skip
            shutil.rmtree(work, ignore_errors=True)
    finally:
        if server is not None:
            server.stop()
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
