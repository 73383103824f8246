"""The embedded event bus on SQLite beside the hand-written segment log it replaced.

Each store runs in a process of its own (its own peak memory), on the same events, in one run:

1. publish: N events to the uploads topic with one key (an upload goes to one dataset, so to one
   partition), as the upload RPC does: every chunk of a stream published, then every
   acknowledgement waited for (each acknowledgement means the event is on disk, synced);
2. consume: a consumer group reads them all, 64 events a poll and a commit after each poll, as
   the ingest consumer does;
3. bytes on disk: the bus's directory after ``close``; peak memory: the process's VmHWM.

Events: upload chunks as the SDK cuts them (``UploadColumns.auto_chunk_size``: 5,000 frames of a
class label and 10-class probabilities, with 128-d embeddings about 3 MiB an event, without
about 0.3 MiB), and the ``ingested`` notifications the consumer publishes (a few hundred bytes).
The segment log is the module as it was at the last commit before SQLite (read from git history,
so this needs a clone with history).

    python bench/event_bus/bench_event_bus.py --frames 1000000 --notifications 20000
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.harness import machine, peak_rss_mib  # noqa: E402

K = 10
#: the last commit whose embedded bus is the hand-written segment log
SEGMENT_LOG_COMMIT = "d597922c608a8cc595f6de4ca88ad74043ed012b"


def upload_events(frames: int, dim: int) -> list[bytes]:
    """The upload events of ``frames`` frames, serialized as the ingest service publishes them."""
    from shoal.ingest.pipeline import SCHEMA_VERSION
    from shoal.ingest.v1 import ingest_pb2 as pb
    from shoal.sdk import UploadColumns

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(K), size=frames).astype(np.float32)
    columns = UploadColumns(
        frame_ids=[f"f{i:08d}" for i in range(frames)],
        class_ids=rng.integers(0, K, frames),
        inference_set="i",
        probabilities=probs,
        embeddings={"e": rng.normal(size=(frames, dim)).astype(np.float32)} if dim else None,
    )
    out = []
    for index, chunk in enumerate(columns.chunks(columns.auto_chunk_size())):
        event = pb.UploadEvent(
            schema_version=SCHEMA_VERSION, upload_id="u", chunk_index=index, idempotency_key=f"u/{index}",
            project="bench", dataset="d", chunk=chunk,
        )  # fmt: skip
        event.produced_time.GetCurrentTime()
        out.append(event.SerializeToString())
    return out


def notification_events(n: int) -> list[bytes]:
    """What the ingest consumer publishes to the ``ingested`` topic after writing a chunk."""
    from shoal.ingest.v1 import ingest_pb2 as pb

    out = []
    for i in range(n):
        note = pb.IngestedEvent(
            project="bench", dataset="d", upload_id=f"upload-{i // 100:06d}", chunk_index=i % 100,
            written=pb.UploadCounts(frames=5000, labels=5000, inferences=5000, embeddings=5000),
        )  # fmt: skip
        note.written_time.GetCurrentTime()
        out.append(note.SerializeToString())
    return out


def bus_class(store: str) -> Any:
    if store == "sqlite":
        from shoal.common.stores.events import EmbeddedEventBus

        return EmbeddedEventBus
    # the module as it was at the last commit with the segment log, read from git history
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{SEGMENT_LOG_COMMIT}:services/common/stores/events.py"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp(prefix="segment-log-")) / "segment_log.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("segment_log", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["segment_log"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module.EmbeddedEventBus


def disk_bytes(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())


def child(store: str, events_file: str, work: str) -> dict[str, Any]:
    """One store: publish then consume the events saved in ``events_file``."""
    from shoal.common.stores.events import TopicPartition
    from shoal.common.topics import Topics

    values = [bytes(v) for v in np.load(events_file, allow_pickle=True)]
    directory = Path(work) / store
    topics = Topics("bench")
    bus = bus_class(store)(directory)
    bus.ensure_topics(topics.specs(4, 1))
    headers = (("shoal-schema-version", b"1"),)
    t0 = time.perf_counter()
    futures = [bus.publish(topics.uploads, key=b"bench/d", value=v, headers=headers) for v in values]
    for f in futures:
        f.result(timeout=600)
    publish_s = time.perf_counter() - t0
    read = 0
    read_bytes = 0
    t0 = time.perf_counter()
    with bus.consumer("bench", [topics.uploads]) as consumer:
        while read < len(values):
            events = consumer.poll(1.0, max_records=64)
            read += len(events)
            read_bytes += sum(len(e.value) for e in events)
            if events:
                consumer.commit({TopicPartition(e.topic, e.partition): e.offset + 1 for e in events})
    consume_s = time.perf_counter() - t0
    bus.close()
    assert read == len(values) and read_bytes == sum(map(len, values))
    return {
        "publish_events_per_s": round(len(values) / publish_s),
        "publish_mib_per_s": round(read_bytes / publish_s / 2**20, 1),
        "consume_events_per_s": round(len(values) / consume_s),
        "consume_mib_per_s": round(read_bytes / consume_s / 2**20, 1),
        "disk_mib": round(disk_bytes(directory) / 2**20, 1),
        "peak_rss_mib": round(peak_rss_mib()),
    }


def save_events(values: list[bytes], work: Path) -> Path:
    events_file = work / "events.npy"
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    np.save(events_file, arr, allow_pickle=True)
    return events_file


def run(store: str, events_file: Path, work: Path) -> dict[str, Any]:
    code = (
        f"import json, sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from bench.event_bus.bench_event_bus import child\n"
        f"print(json.dumps(child({store!r}, {str(events_file)!r}, {str(work)!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    shutil.rmtree(work / store, ignore_errors=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=100_000, help="frames uploaded (in 5,000-frame chunks)")
    ap.add_argument("--notifications", type=int, default=20_000, help="small events published")
    ap.add_argument("--stores", nargs="+", default=["segment-log", "sqlite"], choices=["segment-log", "sqlite"])
    ap.add_argument("--repeat", type=int, default=3, help="runs of each store, alternating; the median is kept")
    ap.add_argument("--work", type=Path, default=None, help="directory for the buses (default: a temporary one)")
    args = ap.parse_args()
    cases = {
        "upload chunks, 128-d embeddings": upload_events(args.frames, 128),
        "upload chunks, no embeddings": upload_events(args.frames, 0),
        "ingested notifications": notification_events(args.notifications),
    }
    results: dict[str, Any] = {"machine": machine(), "command": " ".join(["python", *sys.argv]), "cases": {}}
    work = Path(tempfile.mkdtemp(prefix="bench-event-bus-", dir=args.work))
    try:
        for name, values in cases.items():
            size = sum(map(len, values))
            case: dict[str, Any] = {"events": len(values), "mean_event_bytes": size // len(values)}
            events_file = save_events(values, work)
            runs: dict[str, list[dict[str, Any]]] = {store: [] for store in args.stores}
            for i in range(args.repeat):
                for store in args.stores if i % 2 == 0 else reversed(args.stores):
                    runs[store].append(run(store, events_file, work))
            for store, done in runs.items():  # the median of each figure
                case[store] = {k: sorted(r[k] for r in done)[len(done) // 2] for k in done[0]}
            results["cases"][name] = case
            print(json.dumps({name: case}), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
