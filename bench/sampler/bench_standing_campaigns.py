"""Standing campaigns: what two of them cost ingest, and whether a stream through Kafka keeps what
the offline twin keeps.

1. **Ingest with and without two standing campaigns, same run, embedded bus.** A `shoal serve`
   process (all four services, chDB, in-process bus, Milvus Lite) takes N unlabeled frames with a
   128-d embedding and a metadata field from the SDK in this process, timed from the first chunk
   sent until GetUploadStatus says COMPLETED, and until both campaigns judged every frame. The two
   configurations run one after the other on fresh servers (``--repeats`` times, alternating). Beside
   the wall-clock times, the server's CPU seconds (its process tree, read from ``/proc``) at both
   points: a measure that other work on the machine hardly changes.
2. **Agreement at scale through Apache Kafka.** The same kind of server on a real Kafka broker
   (single KRaft node, jars from Maven Central: ``make kafka-jars``) streams N frames into a pool
   watched by two campaigns; once both judged every frame, the server is stopped and the offline
   twin (:func:`shoal.sampler.standing.replay`) runs over the same stores in a process of its own.
   The benchmark reports how many kept frames the two agree on, and whether they are equal.

    python bench/sampler/bench_standing_campaigns.py --frames 1000000 --kafka-frames 1000000
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
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.harness import peak_rss_mib, results_header, write_results  # noqa: E402
from shoal.analysis.v1 import analysis_pb2 as apb  # noqa: E402
from shoal.client import Client  # noqa: E402
from shoal.common.auth import generate_key  # noqa: E402
from shoal.common.v1 import common_pb2 as cpb  # noqa: E402
from shoal.ingest.v1 import ingest_pb2 as pb  # noqa: E402
from shoal.sampler.v1 import sampler_pb2 as spb  # noqa: E402
from shoal.sdk import UploadColumns  # noqa: E402
from tests.harness._wait import tree_cpu_seconds  # noqa: E402

SEEDS = 20
#: seconds without a new verdict after which the wait for the campaigns gives up
STALL_SECONDS = 900
#: every server of the benchmark: a store call under load waits this long before it fails and is retried
ENV = {"SHOAL_STORE_TIMEOUT_SECONDS": "600"}
#: the two campaigns: a wide one that never fills, and a filtered one that fills early
CAMPAIGNS = {
    "wide": {"similarity_threshold": 0.8, "min_distance": 0.05, "budget": 100_000},
    "sunny": {"similarity_threshold": 0.75, "budget": 5_000,
              "filter": cpb.Filter(all=[cpb.Condition(field="metadata.weather", equals=cpb.Value(string_value="sun"))])},
}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def data(n: int, dim: int, seed: int = 0) -> dict[str, Any]:
    """N pool frames: 3 % near one of the seeds (a third of those in groups of near-copies), the
    rest unlike any; and the seeds."""
    rng = np.random.default_rng(seed)
    targets = rng.normal(0, 1, (SEEDS, dim)).astype(np.float32)
    x = rng.normal(0, 1, (n, dim)).astype(np.float32)
    near = rng.choice(n, size=3 * n // 100, replace=False)
    x[near] = targets[rng.integers(0, SEEDS, len(near))] + rng.normal(0, 0.5, (len(near), dim)).astype(np.float32)
    copies = near[: len(near) // 3]
    x[copies[1::2]] = x[copies[0::2][: len(copies[1::2])]] + rng.normal(0, 0.01, (len(copies[1::2]), dim))
    return {
        "ids": [f"f{i:08d}" for i in range(n)],
        "x": x,
        "weather": np.where(rng.random(n) < 0.5, "sun", "fog"),
        "seeds": (targets + rng.normal(0, 0.05, (SEEDS, dim))).astype(np.float32),
    }


class Server:
    """`shoal serve` in a process of its own, on a data directory of its own."""

    def __init__(self, work: Path, env: dict[str, str] | None = None, logs: Path | None = None) -> None:
        self.work = work
        self.logs = logs
        self.port = free_port()
        _, self.key = generate_key()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
        self.env.update({"SHOAL_ADMIN_API_KEY": self.key, "SHOAL_LOG_LEVEL": "WARNING", "SHOAL_WARM_KERNELS": "false",
                         **ENV, **(env or {})})  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.work / f"serve-{self.port}.log"

    def errors(self) -> int:
        """Tracebacks the server logged (a store call that failed and was retried, for one)."""
        return self.log.read_text(errors="replace").count("Traceback (most recent call last)")

    def __enter__(self) -> Server:
        log = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shoal.cli", "serve", "--port", str(self.port), "--data-dir", str(self.work / "data"),
             "--no-console"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        with self.client() as c:
            deadline = time.monotonic() + 300
            while c.health_status() != "SERVING":
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"shoal serve did not start; see {log.name}")
                time.sleep(0.2)
        return self

    def client(self) -> Client:
        return Client(f"127.0.0.1:{self.port}", api_key=self.key)

    def peak_rss(self) -> float:
        assert self.proc is not None
        return peak_rss_mib(self.proc.pid)

    def cpu_seconds(self) -> float:
        """CPU seconds the server and its living descendants used so far (however busy the machine)."""
        assert self.proc is not None
        return tree_cpu_seconds(self.proc.pid)

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if self.logs is not None:
            self.logs.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.log, self.logs / f"{self.work.name}.log")


def prepare(c: Client, d: dict[str, Any], dim: int, campaigns: bool) -> None:
    space = pb.EmbeddingSpace(name="e", dimension=dim, metric=pb.DISTANCE_METRIC_COSINE, level=pb.EMBEDDING_LEVEL_FRAME,
                              model_name="m", model_version="1")  # fmt: skip
    c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
        name="bench", task_type=pb.TASK_TYPE_CLASSIFICATION, classes=[pb.ClassDef(id=0, name="a")],
        embedding_spaces=[space])))  # fmt: skip
    c.ingest.CreateDataset(pb.CreateDatasetRequest(project="bench", dataset=pb.Dataset(
        name="seeds", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
    c.ingest.CreateDataset(pb.CreateDatasetRequest(project="bench", dataset=pb.Dataset(
        name="pool", kind=pb.DATASET_KIND_UNLABELED_POOL)))  # fmt: skip
    ids = [f"s{i:02d}" for i in range(SEEDS)]
    r = c.upload("bench", "seeds", UploadColumns(frame_ids=ids, class_ids=[0] * SEEDS, embeddings={"e": d["seeds"]}),
                 progress=False)  # fmt: skip
    c.wait_for_upload("bench", r.upload_id, timeout=600)
    c.analysis.CreateSegment(apb.CreateSegmentRequest(project="bench", segment=apb.Segment(
        name="seeds", dataset="seeds", kind=apb.SEGMENT_KIND_COLLECTION_SEED), frame_ids=ids))  # fmt: skip
    if campaigns:
        for name, kw in CAMPAIGNS.items():
            c.sampler.StartStandingCampaign(spb.StartStandingCampaignRequest(
                project="bench", name=name, pool_dataset="pool", embedding_space="e", seed_segment="seeds", **kw))  # fmt: skip


def stream(c: Client, server: Server, d: dict[str, Any], campaigns: bool) -> dict[str, Any]:
    """Uploads the pool; times the upload until written, and until both campaigns judged it, in
    seconds and in the server's CPU seconds."""
    n = len(d["ids"])
    cols = UploadColumns(frame_ids=d["ids"], metadata=[{"weather": str(w)} for w in d["weather"]],
                         embeddings={"e": d["x"]})  # fmt: skip
    load_at_start = os.getloadavg()[0]
    cpu0 = server.cpu_seconds()
    t0 = time.perf_counter()
    r = c.upload("bench", "pool", cols, progress=False, deadline_seconds=7200)
    status = c.wait_for_upload("bench", r.upload_id, timeout=7200, poll=0.25)
    written = time.perf_counter() - t0
    cpu_written = server.cpu_seconds() - cpu0
    assert status.state == pb.UPLOAD_STATE_COMPLETED, status
    out: dict[str, Any] = {"frames": n, "ingest_seconds": round(written, 1), "ingest_frames_per_s": round(n / written),
                           "server_cpu_seconds_at_ingest_end": round(cpu_written, 1),
                           "load_average_1m_at_start": round(load_at_start, 1),
                           "load_average_1m_at_ingest_end": round(os.getloadavg()[0], 1)}  # fmt: skip
    if campaigns:
        last, progress = -1, time.monotonic()
        while True:
            got = {name: c.sampler.GetStandingCampaign(spb.GetStandingCampaignRequest(project="bench", name=name)).campaign
                   for name in CAMPAIGNS}  # fmt: skip
            if all(g.judged >= n or g.state == spb.STANDING_CAMPAIGN_STATE_FULL for g in got.values()):
                break
            judged_now = sum(g.judged for g in got.values())
            if judged_now != last:
                last, progress = judged_now, time.monotonic()
            elif time.monotonic() - progress > STALL_SECONDS:
                raise RuntimeError(f"the campaigns judged nothing for {STALL_SECONDS} s: {got}")
            time.sleep(0.25)
        judged = time.perf_counter() - t0
        out["server_cpu_seconds_at_judged"] = round(server.cpu_seconds() - cpu0, 1)
        out["judged_seconds"] = round(judged, 1)
        out["judged_after_ingest_seconds"] = round(judged - written, 1)
        out["campaigns"] = {name: {"judged": g.judged, "kept": g.kept, "filtered": g.filtered,
                                   "below_threshold": g.below_threshold, "near_kept": g.near_kept,
                                   "state": spb.StandingCampaignState.Name(g.state)} for name, g in got.items()}  # fmt: skip
    return out


def throughput(n: int, dim: int, repeats: int, logs: Path | None) -> dict[str, Any]:
    d = data(n, dim)
    runs: dict[str, list[dict[str, Any]]] = {"without": [], "with": []}
    for _ in range(repeats):
        for config in ("without", "with"):
            work = Path(tempfile.mkdtemp(prefix=f"bench-standing-{config}-"))
            try:
                with Server(work, logs=logs) as server, server.client() as c:
                    prepare(c, d, dim, campaigns=config == "with")
                    print(f"[embedded bus] {config} standing campaigns: {n} frames x {dim}-d ...", flush=True)
                    out = stream(c, server, d, campaigns=config == "with")
                    out["server_peak_rss_mib"] = round(server.peak_rss())
                    out["server_errors_logged"] = server.errors()
                print(f"[embedded bus] {config}: {out}", flush=True)
                runs[config].append(out)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    best = {k: max(v, key=lambda r: r["ingest_frames_per_s"]) for k, v in runs.items()}
    # CPU seconds hardly depend on what else runs on the machine; the least of the repeats
    cpu_without = min(r["server_cpu_seconds_at_ingest_end"] for r in runs["without"])
    return {
        "runs": runs,
        "ingest_cost_fraction": round(1 - best["with"]["ingest_frames_per_s"] / best["without"]["ingest_frames_per_s"],
                                      3),
        "server_cpu_added_by_ingest_end": round(
            min(r["server_cpu_seconds_at_ingest_end"] for r in runs["with"]) / cpu_without - 1, 3),
        "server_cpu_added_by_judged": round(min(r["server_cpu_seconds_at_judged"] for r in runs["with"]) / cpu_without - 1,
                                            3),
    }  # fmt: skip


REPLAY = """
import json, sys
from collections import Counter
from pathlib import Path
sys.path.insert(0, {repo!r})
from shoal.common.stores.metrics import EmbeddedMetricsStore
from shoal.common.stores.vectors import open_vector_store
from shoal.sampler import standing
import time
m = EmbeddedMetricsStore(path=Path({chdb!r}), database="shoal")
v = open_vector_store({milvus!r}, timeout_seconds=600)
out = {{}}
for name in {names!r}:
    c = standing.find(m, "bench", name)
    stream = standing.kept_frames(m, "bench", name)
    t0 = time.perf_counter()
    twin = standing.replay(m, v, c)
    seconds = time.perf_counter() - t0
    same = len(set(stream) & set(twin.kept))
    out[name] = {{"stream_kept": len(stream), "twin_kept": len(twin.kept), "agreeing": same,
                 "agreement": same / max(len(twin.kept), 1), "equal": stream == twin.kept,
                 "twin_judged": len(twin.judged), "twin_seconds": round(seconds, 1),
                 "twin_reasons": dict(Counter(twin.reasons))}}
print(json.dumps(out))
"""


def kafka_agreement(n: int, dim: int, logs: Path | None) -> dict[str, Any]:
    from tests.harness.kafka_broker import KafkaBroker, default_libs_dir

    work = Path(tempfile.mkdtemp(prefix="bench-standing-kafka-"))
    broker = KafkaBroker(libs_dir=default_libs_dir(REPO), work_dir=work / "kafka")
    d = data(n, dim, seed=1)
    t_start = time.perf_counter()
    try:
        broker.start()
        env = {"SHOAL_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "SHOAL_TOPIC_PARTITIONS": "4"}
        with Server(work, env, logs) as server, server.client() as c:
            prepare(c, d, dim, campaigns=True)
            print(f"[kafka] {n} frames x {dim}-d through Kafka into two standing campaigns ...", flush=True)
            out = stream(c, server, d, campaigns=True)
            out["server_peak_rss_mib"] = round(server.peak_rss())
            out["server_errors_logged"] = server.errors()
        if broker.pid is not None:
            out["broker_peak_rss_mib"] = round(peak_rss_mib(broker.pid))
        print(f"[kafka] {out}", flush=True)
        print("[kafka] the offline twin over the same stores ...", flush=True)
        code = REPLAY.format(repo=str(REPO), chdb=str(work / "data" / "clickhouse"), milvus=str(work / "data" / "milvus.db"),
                             names=list(CAMPAIGNS))  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-4000:])
        out["twin"] = json.loads(done.stdout.strip().splitlines()[-1])
        out["total_seconds"] = round(time.perf_counter() - t_start, 1)
        print(f"[kafka] twin: {out['twin']}", flush=True)
        return out
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000, help="frames of each ingest run (0: skip)")
    ap.add_argument("--kafka-frames", type=int, default=1_000_000, help="frames streamed through Kafka (0: skip)")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "sampler" / "results_standing.json")
    ap.add_argument("--logs", type=Path, default=None, help="copy each server's log into this directory")
    args = ap.parse_args()
    results = results_header()
    results["dim"] = args.dim
    if args.frames:
        results["runs"]["embedded bus"] = throughput(args.frames, args.dim, args.repeats, args.logs)
    if args.kafka_frames:
        results["runs"]["kafka"] = kafka_agreement(args.kafka_frames, args.dim, args.logs)
    write_results(args.out, results)


if __name__ == "__main__":
    main()
