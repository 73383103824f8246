"""Load on a `shoal serve` process, measured with ghz (a standard gRPC load tool) on the loopback.

One `shoal serve` (all four services, embedded chDB, Milvus Lite and the in-process bus) runs as a subprocess
with its data in a temporary folder and an administrator key from SHOAL_ADMIN_API_KEY. A classification
project of 20 classes gets a labeled dataset of 20k frames (two splits, one metadata key) and an inference set,
uploaded with the SDK. Then, for each RPC and each number of concurrent clients (1, 8, 32; each client on a
connection of its own), ghz sends a bounded number of requests and reports p50, p99, requests/s and the
status of every request; the server's resident memory is sampled from /proc while it runs, and its peak
(VmHWM) read after. Three RPCs:

- catalog: ``IngestService/GetProject``;
- query page: ``AnalysisService/QueryDatapoints``, a page of 100 frames of the "val" split that the model got
  wrong, by loss descending;
- metrics: ``AnalysisService/GetClassificationMetrics`` over the whole inference set.

Writes ``bench/load/results.json`` and prints a Markdown table::

    make bench-load                        # builds ghz (scripts/fetch-ghz.sh), then runs this
    python -m bench.load.bench_load --frames 20000 --clients 1 8 32
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from shoal.client import Client  # noqa: E402
from shoal.ingest.v1 import ingest_pb2 as pb  # noqa: E402
from shoal.sdk import UploadColumns  # noqa: E402

#: A fixed administrator key of the form shoal_<16 hex>_<secret>: the benchmark's own, never a real one.
ADMIN_KEY = "shoal_0123456789abcdef_bench-load-key-0123456789abcdefghijklmnopq"
PROJECT, DATASET, INFERENCE_SET = "load", "d", "i"
PROTOS = REPO / "protos"


def calls(page_size: int) -> dict[str, dict[str, Any]]:
    """The RPCs under load: the ghz method name, the proto file that declares it and the request as JSON."""
    return {
        "catalog": {
            "rpc": "shoal.ingest.v1.IngestService.GetProject",
            "proto": "shoal/ingest/v1/ingest.proto",
            "data": {"project": PROJECT},
        },
        "query page": {
            "rpc": "shoal.analysis.v1.AnalysisService.QueryDatapoints",
            "proto": "shoal/analysis/v1/analysis.proto",
            "data": {
                "project": PROJECT,
                "dataset": DATASET,
                "inference_set": INFERENCE_SET,
                "filter": {
                    "all": [
                        {"field": "split", "equals": {"string_value": "val"}},
                        {"field": "correct", "equals": {"bool_value": False}},
                    ]
                },
                "sort": [{"field": "loss", "descending": True}],
                "page": {"page_size": page_size},
            },
        },
        "metrics": {
            "rpc": "shoal.analysis.v1.AnalysisService.GetClassificationMetrics",
            "proto": "shoal/analysis/v1/analysis.proto",
            "data": {"project": PROJECT, "inference_set": INFERENCE_SET},
        },
    }


# --- the machine ----------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(memory, 1),
        "cpu": model,
        "arch": platform.machine(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# --- the server's memory --------------------------------------------------------------------------
def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Milvus Lite runs its server as a child of `shoal serve`)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path("/proc", entry, "stat").read_text()
                parents[int(entry)] = int(stat[stat.rfind(")") + 2 :].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(child for child, parent in parents.items() if parent == current)
    return found


class RssSampler:
    """Samples VmRSS of the server (and of the server with its child processes) every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.pid, self.every = pid, every
        self.peak_kib = self.peak_tree_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        tree = _tree(self.pid)
        refreshed = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - refreshed > 1.0:
                tree, refreshed = _tree(self.pid), time.monotonic()
            self.peak_kib = max(self.peak_kib, _status_kib(self.pid, "VmRSS"))
            self.peak_tree_kib = max(self.peak_tree_kib, sum(_status_kib(p, "VmRSS") for p in tree))
            self._stop.wait(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- the server -----------------------------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(work: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    env.update({"SHOAL_ADMIN_API_KEY": ADMIN_KEY, "SHOAL_LOG_LEVEL": "WARNING"})
    log = (work / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shoal.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--data-dir", str(work / "data"), "--no-console"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    with Client(f"127.0.0.1:{port}") as c:
        while c.health_status(timeout=2) != "SERVING":
            if proc.poll() is not None:
                tail = (work / "serve.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"shoal serve exited with code {proc.returncode}:\n{tail}")
            time.sleep(0.2)
    return proc


def load_data(target: str, frames: int, classes: int, seed: int = 0) -> dict[str, Any]:
    """The project, the dataset and its inference set, uploaded with the SDK; returns what was written."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, frames)
    logits = rng.normal(size=(frames, classes)).astype(np.float32)
    logits[np.arange(frames), labels] += 2.0  # right about half the time
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    columns = UploadColumns(
        frame_ids=[f"f{i:07d}" for i in range(frames)],
        splits=np.where(rng.random(frames) < 0.2, "val", "train").tolist(),
        metadata=[{"camera": f"cam-{i % 8}"} for i in range(frames)],
        class_ids=labels,
        inference_set=INFERENCE_SET,
        probabilities=probs.astype(np.float32),
    )
    with Client(target, api_key=ADMIN_KEY) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=PROJECT, task_type=pb.TASK_TYPE_CLASSIFICATION,
            classes=[pb.ClassDef(id=k, name=f"class-{k}") for k in range(classes)])))  # fmt: skip
        c.ingest.CreateDataset(
            pb.CreateDatasetRequest(
                project=PROJECT, dataset=pb.Dataset(name=DATASET, kind=pb.DATASET_KIND_LABELED, splits=["train", "val"])
            )
        )
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=PROJECT, inference_set=pb.InferenceSet(
            name=INFERENCE_SET, dataset=DATASET, model_name="m", model_version="1")))  # fmt: skip
        t0 = time.perf_counter()
        result = c.upload(PROJECT, DATASET, columns, progress=False)
        status = c.wait_for_upload(PROJECT, result.upload_id, timeout=3600, poll=0.25)
        seconds = time.perf_counter() - t0
        if status.state != pb.UPLOAD_STATE_COMPLETED:
            raise RuntimeError(f"the upload ended {pb.UploadState.Name(status.state)}: {status}")
    return {"frames": status.written.frames, "inferences": status.written.inferences, "seconds": round(seconds, 1)}


def check_page(target: str, request: dict[str, Any], page_size: int) -> None:
    """The query page under load is a full page: the filter matches more frames than a page holds."""
    from google.protobuf import json_format

    from shoal.analysis.v1 import analysis_pb2 as apb

    with Client(target, api_key=ADMIN_KEY) as c:
        page = c.analysis.QueryDatapoints(json_format.ParseDict(request, apb.QueryDatapointsRequest()))
    if len(page.datapoints) != page_size:
        raise RuntimeError(f"the query page has {len(page.datapoints)} frames, not {page_size}: use more --frames")


# --- ghz ------------------------------------------------------------------------------------------
def find_ghz(given: str | None) -> str:
    candidates = [given] if given else [str(REPO / ".cache" / "ghz-bin" / "ghz"), shutil.which("ghz") or ""]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise SystemExit("ghz not found: run scripts/fetch-ghz.sh (make bench-load does), or pass --ghz PATH")


def run_ghz(ghz: str, target: str, call: dict[str, Any], clients: int, requests: int, timeout_s: int) -> dict[str, Any]:
    """One ghz run; returns its JSON report."""
    command = [
        ghz, "--insecure", "--proto", str(PROTOS / call["proto"]), "--import-paths", str(PROTOS),
        "--call", call["rpc"], "--data", json.dumps(call["data"]),
        "--metadata", json.dumps({"authorization": f"Bearer {ADMIN_KEY}"}),
        "--concurrency", str(clients), "--connections", str(clients), "--total", str(requests),
        "--timeout", f"{timeout_s}s", "--format", "json", target,
    ]  # fmt: skip
    # bounded: every request has its deadline, and the run as a whole one per request at worst
    out = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s * requests + 60, check=False)
    if out.returncode != 0 or not out.stdout.strip():
        raise RuntimeError(f"ghz failed (exit {out.returncode}): {out.stderr[-2000:]}")
    return json.loads(out.stdout)


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """p50, p99 (ms), requests/s and the count of each status from a ghz JSON report."""
    latencies = {int(d["percentage"]): d["latency"] / 1e6 for d in report.get("latencyDistribution") or []}
    statuses = dict(report.get("statusCodeDistribution") or {})
    return {
        "requests": report["count"],
        "p50_ms": round(latencies.get(50, float("nan")), 2),
        "p99_ms": round(latencies.get(99, float("nan")), 2),
        "mean_ms": round(report["average"] / 1e6, 2),
        "max_ms": round(report["slowest"] / 1e6, 2),
        "rps": round(report["rps"], 1),
        "statuses": statuses,
        "errors": sum(n for code, n in statuses.items() if code != "OK"),
        "error_messages": dict(list((report.get("errorDistribution") or {}).items())[:5]),
    }


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "| RPC | clients | requests | p50 (ms) | p99 (ms) | requests/s | errors (by status) | peak RSS of the server |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for run in results["runs"]:
        errors = ", ".join(f"{code} {n}" for code, n in run["statuses"].items() if code != "OK") or "none"
        lines.append(
            f"| {run['name']} (`{run['rpc'].rsplit('.', 2)[-2]}/{run['rpc'].rsplit('.', 1)[-1]}`) | {run['clients']} "
            f"| {run['requests']:,} | {run['p50_ms']:,.1f} | {run['p99_ms']:,.1f} | {run['rps']:,.1f} | {errors} "
            f"| {run['server_peak_rss_mib']:,} MiB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests-one", type=int, default=200, help="requests of a run with one client")
    parser.add_argument("--requests", type=int, default=1000, help="requests of a run with several clients")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--timeout", type=int, default=30, help="deadline of each request, seconds")
    parser.add_argument("--ghz", help="the ghz binary (default: .cache/ghz-bin/ghz, then PATH)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results.json")
    args = parser.parse_args()

    ghz = find_ghz(args.ghz)
    version = subprocess.run([ghz, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    stamp = Path(ghz).parent / ".version"
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": " ".join([Path(sys.executable).name, "-m", "bench.load.bench_load", *sys.argv[1:]]),
        "ghz": stamp.read_text().strip() if stamp.exists() else version,
        "server": "shoal serve, all four services, chDB + Milvus Lite + in-process bus, worker_threads 16, "
        "maximum_concurrent_rpcs 128",
        "runs": [],
    }
    work = Path(tempfile.mkdtemp(prefix="shoal-bench-load-"))
    port = free_port()
    target = f"127.0.0.1:{port}"
    proc = start_server(work, port)
    try:
        results["data"] = {**load_data(target, args.frames, args.classes), "classes": args.classes}
        results["server_rss_after_load_mib"] = round(_status_kib(proc.pid, "VmRSS") / 1024)
        check_page(target, calls(args.page_size)["query page"]["data"], args.page_size)
        for name, call in calls(args.page_size).items():
            run_ghz(ghz, target, call, 1, 10, args.timeout)  # warm-up, not recorded
            for clients in args.clients:
                requests = args.requests_one if clients == 1 else args.requests
                with RssSampler(proc.pid) as rss:
                    report = run_ghz(ghz, target, call, clients, requests, args.timeout)
                run = {
                    "name": name,
                    "rpc": call["rpc"],
                    "clients": clients,
                    **summarize(report),
                    "server_peak_rss_mib": round(rss.peak_kib / 1024),
                    "server_and_children_peak_rss_mib": round(rss.peak_tree_kib / 1024),
                    "server_vmhwm_mib": round(_status_kib(proc.pid, "VmHWM") / 1024),
                }
                results["runs"].append(run)
                print(
                    f"{name:10s} {clients:3d} clients: p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms, "
                    f"{run['rps']} req/s, errors {run['errors']} {run['statuses']}, RSS {run['server_peak_rss_mib']} MiB",
                    flush=True,
                )
        results["server_vmhwm_mib"] = round(_status_kib(proc.pid, "VmHWM") / 1024)
        results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    except BaseException:
        sys.stderr.write("the end of the server's log:\n" + (work / "serve.log").read_text(errors="replace")[-4000:])
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(markdown(results))
    print(f"\nresults: {args.out}")


if __name__ == "__main__":
    main()
