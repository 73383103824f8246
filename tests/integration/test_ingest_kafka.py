"""Ingest on real infrastructure: Apache Kafka, Milvus Lite and a Milvus server, chDB.

- 200k frames with labels, predictions and 128-d embeddings land exactly in chDB and a Milvus server (40k
  with Milvus Lite, the same path at a fifth of the volume), while the ingest process is killed with SIGKILL
  three times and restarted;
- a broker restart during an SDK upload ends in a complete upload or a clear error;
- bad input on the Kafka path is dead-lettered while good frames of the same event are written.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from shoal.client import Client
from shoal.common.auth import generate_key
from shoal.common.data.embeddings import vector_pk
from shoal.common.settings import ShoalSettings
from shoal.common.stores.events import KafkaEventBus
from shoal.common.stores.vectors import collection_name
from shoal.common.topics import Topics
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import UploadColumns, UploadFailed
from tests.conftest import REPO
from tests.harness._wait import process_exit, scaled
from tests.server.conftest import Running, project_name, start_server, wait_for
from tests.server.test_analysis_instances import check_shape_dead_letters
from tests.server.test_analysis_segmentation import check_map_dead_letters
from tests.server.test_ingest_scenes import check_scene_dead_letters
from tests.server.test_ingest_upload import check_column_dead_letters, check_dead_letters

pytestmark = pytest.mark.integration

#: frames sent, by vector store: 200k into the Milvus server; Milvus Lite, the embedded default, proves the same
#: exactly-once path through the same three kills at a fifth of that
FRAMES = {"milvus-server": 200_000, "milvus-lite": 40_000}
K = 10
DIM = 128
CHUNK = 1000
#: upload events the customer's producer has in flight at once
IN_FLIGHT = 10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _project(c: Client, project: str = "bulk") -> None:
    c.ingest.CreateProject(
        pb.CreateProjectRequest(
            project=pb.Project(
                name=project,
                task_type=pb.TASK_TYPE_CLASSIFICATION,
                classes=[pb.ClassDef(id=i, name=str(i)) for i in range(K)],
                embedding_spaces=[
                    pb.EmbeddingSpace(name="emb", dimension=DIM, metric=pb.DISTANCE_METRIC_L2,
                                      level=pb.EMBEDDING_LEVEL_FRAME, model_name="m", model_version="1")
                ],
            )
        )
    )  # fmt: skip
    c.ingest.CreateDataset(
        pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(name="d", kind=pb.DATASET_KIND_LABELED))
    )
    c.ingest.CreateInferenceSet(
        pb.CreateInferenceSetRequest(
            project=project, inference_set=pb.InferenceSet(name="i", dataset="d", model_name="m", model_version="1")
        )
    )


def _data(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = [f"f{i:07d}" for i in range(n)]
    classes = rng.integers(0, K, n)
    probs = rng.dirichlet(np.ones(K), size=n).astype(np.float32)
    probs /= probs.sum(axis=1, keepdims=True)
    vecs = rng.normal(size=(n, DIM)).astype(np.float32)
    return ids, classes, probs, vecs


class IngestProcess:
    """`shoal serve --service ingest` as a pod would run it, restartable on the same stores."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.port = _free_port()
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}, **env}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        path = self.tmp / f"ingest-{self.starts}.log"
        log = path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shoal.cli", "serve", "--service", "ingest", "--port", str(self.port)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        with Client(self.target) as c:
            wait_for(lambda: c.health_status(timeout=2) == "SERVING", timeout=120, what="the ingest process to serve",
                     dead=process_exit(self.proc, "shoal serve --service ingest", path))  # fmt: skip

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _read_chdb(path: Path, database: str, project: str, sample: list[str]) -> dict:  # type: ignore[type-arg]
    """Counts and sample rows read from the chDB directory, in a fresh process (chDB opens one
    directory per process)."""
    code = textwrap.dedent(
        f"""
        import json
        from pathlib import Path
        from shoal.common.stores.metrics import EmbeddedMetricsStore
        m = EmbeddedMetricsStore(path=Path({str(path)!r}), database={database!r})
        out = {{}}
        for table in ("frames", "label_versions", "inferences"):
            m.command(f"OPTIMIZE TABLE {{table}} FINAL")
            out[table] = m.query(
                f"SELECT count(), uniqExact(frame_id) FROM {{table}} WHERE project = {{{{p:String}}}}", {{"p": {project!r}}}
            ).rows[0]
        rows = m.query(
            "SELECT l.frame_id, l.class_id, i.probs FROM label_versions AS l"
            " JOIN inferences AS i ON i.frame_id = l.frame_id AND i.project = l.project"
            " WHERE l.project = {{p:String}} AND l.frame_id IN {{ids:Array(String)}}",
            {{"p": {project!r}, "ids": {sample!r}}},
        ).rows
        out["sample"] = [[r[0], r[1], list(r[2])] for r in rows]
        m.command("OPTIMIZE TABLE evaluations FINAL")
        out["evaluations"] = m.query(
            "SELECT inference_set, count(), uniqExact(frame_id), countIf(label_class IS NULL),"
            " countIf(inference_set != '' AND pred_raw IS NULL) FROM evaluations"
            " WHERE project = {{p:String}} GROUP BY inference_set ORDER BY inference_set", {{"p": {project!r}}}
        ).rows
        print(json.dumps(out))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=scaled(300))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(params=list(FRAMES))
def vectors(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, int]]:
    """The vector store's URL, and how many frames go into it."""
    if request.param == "milvus-lite":
        yield str(tmp_path / "vectors.db"), FRAMES[request.param]
    else:
        yield request.getfixturevalue("milvus_server"), FRAMES[request.param]


@pytest.mark.timeout(1200)  # times SHOAL_TEST_WAIT_SCALE; the waits inside end on a stall long before
def test_frames_land_exactly_through_three_consumer_kills(
    tmp_path: Path, kafka_broker, vectors: tuple[str, int]
) -> None:  # type: ignore[no-untyped-def]
    vectors_url, n = vectors
    prefix = f"kill-{uuid.uuid4().hex[:8]}"
    _, key = generate_key()
    chdb_dir = tmp_path / "clickhouse"
    ingest = IngestProcess(
        tmp_path,
        {
            "SHOAL_METRICS_URL": f"chdb://{chdb_dir}",
            "SHOAL_VECTORS_URL": vectors_url,
            "SHOAL_KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
            "SHOAL_TOPIC_PREFIX": prefix,
            "SHOAL_TOPIC_PARTITIONS": "4",
            "SHOAL_ADMIN_API_KEY": key,
            "SHOAL_INGEST_CONSUMER_GROUP": f"{prefix}-ingest",
            "SHOAL_DRAIN_SECONDS": "0",
            "SHOAL_GRACE_SECONDS": "5",
            # a store call's bound, scaled as the test's waits are: the stats of 200k vectors in Milvus Lite took
            # longer than 30 s on a machine shared with two other test runs
            "SHOAL_STORE_TIMEOUT_SECONDS": str(scaled(30)),
        },
    )
    project = f"bulk-{uuid.uuid4().hex[:6]}"
    ingest.start()
    try:
        with Client(ingest.target, api_key=key) as c:
            _project(c, project)
        ids, classes, probs, vecs = _data(n)
        columns = UploadColumns(
            frame_ids=ids, class_ids=classes, inference_set="i", probabilities=probs, embeddings={"emb": vecs}
        )
        # A producer of the customer's writes the events straight to Kafka.
        bus = KafkaEventBus(kafka_broker.bootstrap_servers)
        topics = Topics(prefix)
        total = n // CHUNK
        futures = []
        for index, chunk in enumerate(columns.chunks(CHUNK)):
            event = pb.UploadEvent(schema_version=1, upload_id="bulk-1", chunk_index=index, total_chunks=total,
                                   project=project, dataset="d", chunk=chunk)  # fmt: skip
            futures.append(bus.publish(topics.uploads, key=f"{project}/d".encode(), value=event.SerializeToString()))
            if len(futures) == IN_FLIGHT:
                # as a producer of 115 MB should: a few events in flight, so none waits in the producer's buffer
                # past its delivery timeout (120 s from being buffered) on a machine busy enough to be slow
                for f in futures:
                    f.result(timeout=scaled(60))
                futures = []
        bus.flush(timeout_seconds=scaled(120))
        for f in futures:
            f.result(timeout=scaled(60))
        bus.close()

        seen = {"chunks processed": 0, "frames written": 0}

        def processed() -> int:
            with Client(ingest.target, api_key=key) as c:
                try:
                    st = c.ingest.GetUploadStatus(
                        pb.GetUploadStatusRequest(project=project, upload_id="bulk-1"), timeout=10
                    )
                except grpc.RpcError:
                    return 0
                seen.update(
                    {"chunks processed": st.status.chunks_processed, "frames written": st.status.written.frames}
                )
                return st.status.chunks_processed

        # Waits on progress: each ends when the rows written stop increasing for a stall period (the
        # ingest process stuck), not when a clock meant for an idle machine runs out.
        def written() -> tuple[int, int]:
            return seen["chunks processed"], seen["frames written"]

        def exited() -> Callable[[], str | None]:
            return process_exit(ingest.proc, "the ingest process", tmp_path / f"ingest-{ingest.starts}.log")

        for threshold in (total // 6, total // 2, 5 * total // 6):
            wait_for(lambda threshold=threshold: processed() >= threshold, timeout=1200,
                     what=f"{threshold} chunks processed", progress=written, stall=120, dead=exited())  # fmt: skip
            ingest.kill()
            ingest.start()
        wait_for(lambda: processed() >= total, timeout=1200, what="every chunk processed", progress=written,
                 stall=120, dead=exited())  # fmt: skip
        with Client(ingest.target, api_key=key) as c:
            st = c.ingest.GetUploadStatus(pb.GetUploadStatusRequest(project=project, upload_id="bulk-1")).status
            assert st.state == pb.UPLOAD_STATE_COMPLETED
            assert (st.written.frames, st.written.labels, st.written.inferences, st.written.embeddings) == (n, n, n, n)
            stats = c.ingest.GetDataset(pb.GetDatasetRequest(project=project, dataset="d", include_stats=True)).stats
            assert (stats.frames, stats.labeled_frames, stats.inferences, stats.embeddings["emb"]) == (n, n, n, n)
    finally:
        ingest.stop()
    assert ingest.starts == 4

    sample = [ids[i] for i in (0, 1, 777, n // 2 + 3, n - 1)]
    got = _read_chdb(chdb_dir, "shoal", project, sample)
    for table in ("frames", "label_versions", "inferences"):
        assert got[table] == [n, n], f"{table}: rows and distinct frames after OPTIMIZE FINAL"
    # the rows analyses read: one per frame and inference set, each with its label and prediction
    assert got["evaluations"] == [["i", n, n, 0, 0]]
    by_id = {r[0]: r for r in got["sample"]}
    for fid in sample:
        i = ids.index(fid)
        assert by_id[fid][1] == classes[i]
        np.testing.assert_array_equal(np.asarray(by_id[fid][2], dtype=np.float32), probs[i])

    # vectors: exactly n, and the sampled ones hold the values sent
    from shoal.common.stores.vectors import open_vector_store

    store = open_vector_store(vectors_url, timeout_seconds=60)
    try:
        name = collection_name(project, "emb")
        assert store.count(name, partition="d") == n
        batch = store.get(name, [vector_pk("d", fid, "") for fid in sample])
        assert len(batch.ids) == len(sample)
        for pk, vec in zip(batch.ids, batch.vectors, strict=True):
            np.testing.assert_array_equal(vec, vecs[ids.index(pk.split("\x1f")[1])])
    finally:
        # The collection goes once checked: left in the session's Milvus server, its 200k vectors kept both
        # cores busy indexing and compacting for more than a minute while the other tests ran (measured).
        store.drop_collection(name)
        store.close()


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[object]:
    from tests.harness.kafka_broker import KafkaBroker, default_libs_dir

    broker = KafkaBroker(libs_dir=default_libs_dir(REPO), work_dir=tmp_path / "kafka")
    broker.start()
    yield broker
    broker.stop()


def test_broker_restart_during_an_upload_completes_or_fails_clearly(
    embedded_settings: ShoalSettings, private_broker
) -> None:  # type: ignore[no-untyped-def]
    settings = embedded_settings.model_copy(
        update={
            "kafka_bootstrap_servers": private_broker.bootstrap_servers,
            "topic_partitions": 2,
            "store_timeout_seconds": 10.0,
        }
    )
    r = start_server(settings)
    n = 30_000
    try:
        with r.client(r.admin_key) as c:
            _project(c)
            ids, classes, probs, vecs = _data(n, seed=1)
            columns = UploadColumns(
                frame_ids=ids, class_ids=classes, inference_set="i", probabilities=probs, embeddings={"emb": vecs}
            )
            outcome: dict[str, object] = {}

            def send() -> None:
                try:
                    outcome["result"] = c.upload("bulk", "d", columns, chunk_size=500, chunks_per_stream=4,
                                                 deadline_seconds=180, progress=False)  # fmt: skip
                except (UploadFailed, grpc.RpcError) as exc:
                    outcome["error"] = exc

            sender = threading.Thread(target=send)
            sender.start()
            time.sleep(1.0)
            private_broker.restart()
            sender.join(timeout=300)
            assert not sender.is_alive()
            if "result" in outcome:
                result = outcome["result"]
                st = c.wait_for_upload("bulk", result.upload_id, timeout=300)  # type: ignore[attr-defined]
                assert st.state == pb.UPLOAD_STATE_COMPLETED
                stats = c.ingest.GetDataset(pb.GetDatasetRequest(project="bulk", dataset="d", include_stats=True)).stats
                assert (stats.frames, stats.inferences, stats.embeddings["emb"]) == (n, n, n)
            else:
                err = outcome["error"]
                # a clear error that says what to do, never silence
                assert "retry" in str(err).lower() or isinstance(err, grpc.RpcError)
    finally:
        r.server.stop(grace=1)


def test_bad_events_on_kafka_are_dead_lettered_and_good_frames_written(
    embedded_settings: ShoalSettings, kafka_broker
) -> None:  # type: ignore[no-untyped-def]
    settings = embedded_settings.model_copy(
        update={"kafka_bootstrap_servers": kafka_broker.bootstrap_servers, "topic_prefix": f"dlq-{uuid.uuid4().hex[:8]}",
                "topic_partitions": 2, "ingest_consumer_group": f"g-{uuid.uuid4().hex[:8]}"}
    )  # fmt: skip
    r: Running = start_server(settings)
    try:
        check_dead_letters(r, project_name("dead_letters"))
        check_column_dead_letters(r, project_name("column_dead_letters"))
        check_shape_dead_letters(r, project_name("shape_dead_letters"))
        check_map_dead_letters(r, project_name("map_dead_letters"))
        check_scene_dead_letters(r, project_name("scene_dead_letters"))
    finally:
        r.server.stop(grace=1)
