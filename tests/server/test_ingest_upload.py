"""Uploads end to end on the embedded stores: the Upload RPC, the consumer, both stores, status,
dead letters and idempotent redelivery."""

from __future__ import annotations

import json
import uuid

import grpc
import numpy as np
import pytest

from shoal.common.stores.vectors import collection_name
from shoal.common.topics import Topics
from shoal.ingest.v1 import ingest_pb2 as pb
from tests.server.conftest import Running, wait_for

DIM = 8
K = 3


def _setup(c, p: str) -> None:  # type: ignore[no-untyped-def]
    """The project ``p`` with its dataset and inference set (once: later calls find them)."""
    try:
        c.ingest.GetProject(pb.GetProjectRequest(project=p))
        return
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.NOT_FOUND:
            raise
    c.ingest.CreateProject(
        pb.CreateProjectRequest(
            project=pb.Project(
                name=p,
                task_type=pb.TASK_TYPE_CLASSIFICATION,
                classes=[pb.ClassDef(id=i, name=f"c{i}") for i in range(K)],
                embedding_spaces=[
                    pb.EmbeddingSpace(name="feat", dimension=DIM, metric=pb.DISTANCE_METRIC_COSINE,
                                      level=pb.EMBEDDING_LEVEL_FRAME, model_name="m", model_version="1")
                ],
            )
        )
    )  # fmt: skip
    c.ingest.CreateDataset(
        pb.CreateDatasetRequest(
            project=p, dataset=pb.Dataset(name="train", kind=pb.DATASET_KIND_LABELED, splits=["train", "test"])
        )
    )
    c.ingest.CreateInferenceSet(
        pb.CreateInferenceSetRequest(
            project=p,
            inference_set=pb.InferenceSet(name="m1", dataset="train", model_name="m", model_version="1"),
        )
    )


def _chunk(ids: list[str], rng: np.random.Generator) -> tuple[pb.UploadChunk, np.ndarray]:
    vecs = rng.normal(size=(len(ids), DIM)).astype("<f4")
    probs = rng.dirichlet(np.ones(K), size=len(ids))
    chunk = pb.UploadChunk(inference_set="m1")
    for i, fid in enumerate(ids):
        chunk.frames.add(frame_id=fid, split="train", media_uri=f"file:///{fid}.png", media_type=pb.MEDIA_TYPE_IMAGE,
                         width=8, height=8).metadata["camera"].string_value = "front"  # fmt: skip
        chunk.labels.add(frame_id=fid, class_id=i % K)
        chunk.inferences.add(frame_id=fid, class_probabilities=probs[i].tolist())
    chunk.embeddings.add(space="feat", frame_ids=ids, vectors_f32=vecs.tobytes())
    return chunk, vecs


def _requests(p: str, chunks: list[pb.UploadChunk], upload_id: str = "") -> list[pb.UploadRequest]:
    return [pb.UploadRequest(project=p, dataset="train", upload_id=upload_id, chunk=c) for c in chunks]


def _counts(running: Running, p: str) -> dict[str, int]:
    m = running.server.stores.metrics
    q = lambda sql: int(m.query(sql).scalar())  # noqa: E731
    vec = running.server.stores.vectors
    name = collection_name(p, "feat")
    return {
        "frames": q(f"SELECT count() FROM frames FINAL WHERE project = '{p}'"),
        "labels": q(f"SELECT count() FROM label_versions FINAL WHERE project = '{p}'"),
        "inferences": q(f"SELECT count() FROM inferences FINAL WHERE project = '{p}'"),
        "embeddings": vec.count(name, partition="train") if vec.has_collection(name) else 0,
    }


def _wait_done(c, p: str, upload_id: str) -> pb.UploadStatus:  # type: ignore[no-untyped-def]
    def done() -> bool:
        try:
            st = c.ingest.GetUploadStatus(pb.GetUploadStatusRequest(project=p, upload_id=upload_id)).status
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:  # a producer's events not consumed yet
                return False
            raise
        return st.state in (pb.UPLOAD_STATE_COMPLETED, pb.UPLOAD_STATE_COMPLETED_WITH_ERRORS)

    wait_for(done, timeout=60, what=f"upload {upload_id} to complete")
    return c.ingest.GetUploadStatus(pb.GetUploadStatusRequest(project=p, upload_id=upload_id)).status


def _processed(running: Running) -> int:
    """Upload events the ingest workers have processed so far (for every project of the server)."""
    return sum(w.processed_events for spec in running.server.specs if spec.name == "ingest" for w in spec.workers)


def test_upload_lands_in_both_stores_exactly_once(shared: Running, project: str) -> None:
    running, p = shared, project
    rng = np.random.default_rng(0)
    with running.client(running.admin_key) as c:
        _setup(c, p)
        chunks, vecs = zip(*[_chunk([f"f{j * 50 + i}" for i in range(50)], rng) for j in range(4)], strict=True)
        resp = c.ingest.Upload(iter(_requests(p, list(chunks))))
        assert resp.chunks == 4 and resp.accepted.frames == 200 and resp.accepted.embeddings == 200
        st = _wait_done(c, p, resp.upload_id)
        processed = _processed(running)
        assert st.state == pb.UPLOAD_STATE_COMPLETED and st.chunks_processed == 4 and st.chunks_total == 4
        assert (st.written.frames, st.written.labels, st.written.inferences, st.written.embeddings) == (
            200,
            200,
            200,
            200,
        )
        assert _counts(running, p) == {"frames": 200, "labels": 200, "inferences": 200, "embeddings": 200}
        stats = c.ingest.GetDataset(pb.GetDatasetRequest(project=p, dataset="train", include_stats=True)).stats
        assert (stats.frames, stats.labeled_frames, stats.label_versions, stats.inferences) == (200, 200, 200, 200)
        assert dict(stats.embeddings) == {"feat": 200}

        # values read back
        m = running.server.stores.metrics
        row = m.query(
            f"SELECT split, media_uri, meta_str['camera'], width FROM frames FINAL WHERE project = '{p}'"
            " AND frame_id = 'f7'"
        ).rows
        assert row == [("train", "file:///f7.png", "front", 8)]
        got = running.server.stores.vectors.get(collection_name(p, "feat"), ["train\x1ff7\x1f"])
        np.testing.assert_array_equal(got.vectors[0], vecs[0][7])

        # the same upload again (a client retry with the same id): nothing doubles
        again = c.ingest.Upload(iter(_requests(p, list(chunks), upload_id=resp.upload_id)))
        assert again.upload_id == resp.upload_id
        wait_for(lambda: _processed(running) >= processed + 4, what="the redelivered chunks to be processed")
        assert _counts(running, p) == {"frames": 200, "labels": 200, "inferences": 200, "embeddings": 200}


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda ch: setattr(ch.labels[3], "class_id", 7), "chunk.labels[3].class_id", "unknown class id 7"),
        (
            lambda ch: ch.embeddings[0].__setattr__("vectors_f32", ch.embeddings[0].vectors_f32[:-4]),
            "chunk.embeddings[0].vectors_f32",
            "wrong embedding dimension",
        ),
        (
            lambda ch: ch.inferences[2].class_probabilities.__setitem__(0, float("nan")),
            "chunk.inferences[2].class_probabilities",
            "finite",
        ),
        (
            lambda ch: ch.inferences[1].class_probabilities.__setitem__(0, 5.0),
            "chunk.inferences[1].class_probabilities",
            "[0, 1]",
        ),
        (lambda ch: ch.frames[4].__setattr__("split", "holdout"), "chunk.frames[4].split", "not one of"),
        (lambda ch: ch.frames[1].__setattr__("frame_id", "f0"), "chunk.frames[0].frame_id", "appears 2 times"),
    ],
)
def test_bad_chunks_are_refused_naming_field_and_frame(
    shared: Running, project: str, mutate, field: str, words: str
) -> None:  # type: ignore[no-untyped-def]
    running, p = shared, project
    rng = np.random.default_rng(1)
    with running.client(running.admin_key) as c:
        _setup(c, p)
        chunk, _ = _chunk([f"f{i}" for i in range(10)], rng)
        mutate(chunk)
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.Upload(iter(_requests(p, [chunk])))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith(field) and words in info.value.details()
    assert "dataset 'train', frame 'f" in info.value.details()
    assert _counts(running, p)["frames"] == 0


def test_upload_to_unknown_dataset_or_class_layout(shared: Running, project: str) -> None:
    running, p = shared, project
    with running.client(running.admin_key) as c:
        _setup(c, p)
        chunk, _ = _chunk(["a"], np.random.default_rng(2))
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.Upload(iter([pb.UploadRequest(project=p, dataset="nope", chunk=chunk)]))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "'nope' does not exist" in info.value.details()
        big = pb.UploadChunk(frames=[pb.Frame(frame_id=f"x{i}") for i in range(10_001)])
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.Upload(iter([pb.UploadRequest(project=p, dataset="train", chunk=big)]))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "chunk.frames" in info.value.details()


def test_kafka_path_dead_letters_bad_items_and_writes_the_good_ones(shared: Running, project: str) -> None:
    check_dead_letters(shared, project)


def check_dead_letters(running: Running, p: str) -> None:
    """A customer's producer writes UploadEvents straight to the topic: bad items go to the
    dead-letter topic with their reasons, the good ones of the same event are written."""
    rng = np.random.default_rng(3)
    with running.client(running.admin_key) as c:
        _setup(c, p)
    chunk, _ = _chunk([f"k{i}" for i in range(20)], rng)
    chunk.labels[5].class_id = 9  # unknown class
    chunk.inferences[6].class_probabilities[:] = [0.5, 0.5, 0.5]  # sums to 1.5
    chunk.frames[7].split = "nope"
    bad_vec = np.frombuffer(chunk.embeddings[0].vectors_f32, dtype="<f4").copy()
    bad_vec[8 * DIM] = np.inf
    chunk.embeddings[0].vectors_f32 = bad_vec.tobytes()
    event = pb.UploadEvent(
        schema_version=1, upload_id="producer-1", chunk_index=0, project=p, dataset="train", chunk=chunk
    )
    bus = running.server.stores.events
    topics = Topics(running.server.settings.topic_prefix)
    key = f"{p}/train".encode()
    bus.publish(topics.uploads, key=key, value=event.SerializeToString()).result(timeout=10)
    bus.publish(topics.uploads, key=key, value=b"\xff\xffnot protobuf").result(timeout=10)

    with running.client(running.admin_key) as c:
        st = _wait_done(c, p, "producer-1")
    assert st.state == pb.UPLOAD_STATE_COMPLETED_WITH_ERRORS
    # k7's frame is refused, so are its labels, inference and embedding: they would point at nothing
    assert (st.rejected.frames, st.rejected.labels, st.rejected.inferences, st.rejected.embeddings) == (1, 2, 2, 2)
    assert (st.written.frames, st.written.labels, st.written.inferences, st.written.embeddings) == (19, 18, 18, 18)
    fields = sorted(e.detail.field for e in st.errors)
    assert fields == [
        "chunk.embeddings[0].frame_ids[7]", "chunk.embeddings[0].vectors_f32[8]", "chunk.frames[7].split",
        "chunk.inferences[6].class_probabilities", "chunk.inferences[7].frame_id", "chunk.labels[5].class_id",
        "chunk.labels[7].frame_id",
    ]  # fmt: skip
    assert {e.detail.datapoint.frame_id for e in st.errors} == {"k5", "k6", "k7", "k8"}

    dlq = bus.consumer(f"test-dlq-{uuid.uuid4().hex}", [topics.dead_letter])
    got = []  # this project's: the dead letters keep the events' keys
    wait_for(
        lambda: got.extend(e for e in dlq.poll(0.5) if e.key == key) or len(got) >= 2,
        timeout=60,
        what="two dead letters",
    )
    dlq.close()
    by_source = {dict(e.headers)["shoal-source"].decode().split("/")[-1]: e for e in got}
    assert len(by_source) == 2
    rejected = [e for e in got if b"producer-1" in e.value]
    assert len(rejected) == 1
    part = pb.UploadEvent.FromString(rejected[0].value)
    assert [f.frame_id for f in part.chunk.frames] == ["k7"] and [lab.frame_id for lab in part.chunk.labels] == [
        "k5",
        "k7",
    ]
    assert (
        list(part.chunk.embeddings[0].frame_ids) == ["k7", "k8"]
        and len(part.chunk.embeddings[0].vectors_f32) == 2 * DIM * 4
    )
    reasons = json.loads(dict(rejected[0].headers)["shoal-errors"])
    assert len(reasons) == 7 and all(r["reason"] == "INVALID_ARGUMENT" for r in reasons)
    garbage = next(e for e in got if e is not rejected[0])
    assert b"not an UploadEvent" in dict(garbage.headers)["shoal-reason"]
    counts = _counts(running, p)
    assert counts == {"frames": 19, "labels": 18, "inferences": 18, "embeddings": 18}


def test_columnar_upload_through_the_sdk_reads_back_values(shared: Running, project: str) -> None:
    running, p = shared, project
    from datetime import UTC, datetime

    from shoal.sdk import UploadColumns

    rng = np.random.default_rng(5)
    n = 2_500
    taken = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [f"c{i}" for i in range(n)]
    probs = rng.dirichlet(np.ones(K), size=n).astype(np.float32)
    vecs = rng.normal(size=(n, DIM)).astype(np.float32)
    cols = UploadColumns(
        frame_ids=ids,
        splits=["train" if i % 5 else "test" for i in range(n)],
        media_uris=[f"file:///d/{f}.png" for f in ids],
        sizes=np.tile([8, 8], (n, 1)),
        metadata=[
            {"camera": "front" if i % 2 else "rear", "lux": float(i), "night": i % 3 == 0, "taken": taken}
            for i in range(n)
        ],
        class_ids=np.arange(n) % K,
        provenance=pb.Provenance(source="import", author="ana", reason="first labels"),
        inference_set="m1",
        probabilities=probs,
        embeddings={"feat": vecs},
    )
    assert cols.columnar
    with running.client(running.admin_key) as c:
        _setup(c, p)
        result = c.upload(p, "train", cols, chunk_size=1000, progress=False)
        assert result.accepted == {"frames": n, "labels": n, "inferences": n, "embeddings": n}
        st = c.wait_for_upload(p, result.upload_id, timeout=60)
        processed = _processed(running)
        assert st.state == pb.UPLOAD_STATE_COMPLETED and st.chunks_processed == 3
        assert _counts(running, p) == {"frames": n, "labels": n, "inferences": n, "embeddings": n}

        m = running.server.stores.metrics
        row = m.query(
            "SELECT split, media_uri, width, meta_str['camera'], meta_num['lux'], meta_bool['night'],"
            f" toUnixTimestamp(meta_time['taken']) FROM frames FINAL WHERE project = '{p}' AND frame_id = 'c1234'"
        ).rows
        assert row == [("train", "file:///d/c1234.png", 8, "rear", 1234.0, 0, 1767225600)]
        lab = m.query(
            "SELECT class_id, source, author, reason FROM label_versions FINAL"
            f" WHERE project = '{p}' AND frame_id = 'c1234'"
        ).rows
        assert lab == [(1234 % K, "import", "ana", "first labels")]
        inf = m.query(
            f"SELECT pred_class, confidence, probs FROM inferences FINAL WHERE project = '{p}' AND frame_id = 'c1234'"
        ).rows
        assert inf[0][0] == int(probs[1234].argmax()) and inf[0][1] == pytest.approx(float(probs[1234].max()))
        np.testing.assert_allclose(inf[0][2], probs[1234], rtol=1e-6)
        got = running.server.stores.vectors.get(collection_name(p, "feat"), ["train\x1fc1234\x1f"])
        np.testing.assert_array_equal(got.vectors[0], vecs[1234])

        # a retry of the whole upload with the same id doubles nothing
        c.upload(p, "train", cols, chunk_size=1000, progress=False, upload_id=result.upload_id)
        wait_for(lambda: _processed(running) >= processed + 3, what="the retried chunks to be processed")
        assert _counts(running, p) == {"frames": n, "labels": n, "inferences": n, "embeddings": n}
        # nor in the rows analyses read: one per frame of the inference set
        ev = m.query(
            "SELECT inference_set, count(), countIf(pred_raw IS NOT NULL), countIf(label_class IS NOT NULL)"
            f" FROM evaluations FINAL WHERE project = '{p}' GROUP BY inference_set ORDER BY inference_set"
        ).rows
        assert ev == [("m1", n, n, n)]
        loss = m.query(
            f"SELECT loss FROM evaluations FINAL WHERE project = '{p}' AND inference_set = 'm1' AND frame_id = 'c1234'"
        ).scalar()
        assert loss == pytest.approx(-np.log(probs[1234][1234 % K]), rel=1e-6)

        # a bad row refuses the chunk over RPC, naming the column, the row and the frame
        probs[1500, 0] = 2.0
        with pytest.raises(grpc.RpcError) as info:
            c.upload(p, "train", cols, chunk_size=1000, progress=False)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details().startswith("chunk.columns.probabilities_f32[500]")
        assert "frame 'c1500'" in info.value.details() and "[0, 1]" in info.value.details()


def test_kafka_path_dead_letters_bad_rows_of_a_columnar_block(shared: Running, project: str) -> None:
    check_column_dead_letters(shared, project)


def check_column_dead_letters(running: Running, p: str) -> None:
    """A producer's event with a columnar block: bad rows go to the dead-letter topic as a block of
    just those rows, the good rows are written."""
    rng = np.random.default_rng(4)
    with running.client(running.admin_key) as c:
        _setup(c, p)
    n = 30
    ids = [f"q{i}" for i in range(n)]
    chunk = pb.UploadChunk(inference_set="m1")
    cols = chunk.columns
    cols.frame_ids.extend(ids)
    cols.splits.extend(["train"] * n)
    cols.splits[3] = "nope"  # frame (and its label and inference) refused
    classes = (np.arange(n) % K).astype("<i4")
    classes[4] = 11  # label refused
    cols.label_class_ids_i32 = classes.tobytes()
    probs = rng.dirichlet(np.ones(K), size=n).astype("<f4")
    probs[5] = [np.nan, 0.5, 0.5]  # inference refused
    cols.probabilities_f32 = probs.tobytes()
    event = pb.UploadEvent(
        schema_version=1, upload_id="producer-cols", chunk_index=0, project=p, dataset="train", chunk=chunk
    )
    bus = running.server.stores.events
    topics = Topics(running.server.settings.topic_prefix)
    key = f"{p}/train".encode()
    bus.publish(topics.uploads, key=key, value=event.SerializeToString()).result(timeout=10)
    with running.client(running.admin_key) as c:
        st = _wait_done(c, p, "producer-cols")
    assert st.state == pb.UPLOAD_STATE_COMPLETED_WITH_ERRORS
    assert (st.rejected.frames, st.rejected.labels, st.rejected.inferences) == (1, 2, 2)
    assert (st.written.frames, st.written.labels, st.written.inferences) == (n - 1, n - 2, n - 2)
    assert sorted(e.detail.field for e in st.errors) == [
        "chunk.columns.label_class_ids_i32[4]", "chunk.columns.probabilities_f32[5]",
        "chunk.columns.splits[3]", "chunk.columns.splits[3]", "chunk.columns.splits[3]",
    ]  # fmt: skip
    dlq = bus.consumer(f"test-dlq-{uuid.uuid4().hex}", [topics.dead_letter])
    got: list = []  # type: ignore[type-arg]
    wait_for(
        lambda: got.extend(e for e in dlq.poll(0.5) if e.key == key and b"producer-cols" in e.value) or len(got) >= 1,
        timeout=60,
        what="the dead letter",
    )
    dlq.close()
    part = pb.UploadEvent.FromString(got[0].value).chunk.columns
    assert list(part.frame_ids) == ["q3", "q4", "q5"]
    assert np.frombuffer(part.label_class_ids_i32, "<i4").tolist() == [0, 11, 2]
    assert np.isnan(np.frombuffer(part.probabilities_f32, "<f4").reshape(3, K)[2, 0])
    m = running.server.stores.metrics
    written = m.query(
        f"SELECT frame_id FROM inferences FINAL WHERE project = '{p}' AND startsWith(frame_id, 'q') ORDER BY frame_id"
    ).rows
    assert {r[0] for r in written} == set(ids) - {"q3", "q5"}


def test_the_ingested_topic_names_what_each_chunk_wrote(shared: Running, project: str) -> None:
    """Consumers of the ingested topic (campaigns, automations) learn which frames a chunk wrote, which
    of them were labeled, predicted and embedded, for which inference set, and how many chunks the
    upload has."""
    rng = np.random.default_rng(3)
    with shared.client(shared.admin_key) as c:
        _setup(c, project)
        chunk, _ = _chunk(["a", "b", "c"], rng)
        del chunk.inferences[2]
        del chunk.labels[1]
        requests = _requests(project, [chunk], "noted")
        requests[0].total_chunks = 1
        c.ingest.Upload(iter(requests))
        _wait_done(c, project, "noted")
    bus = shared.server.stores.events
    consumer = bus.consumer(f"test-ingested-{uuid.uuid4().hex}", [Topics(shared.server.settings.topic_prefix).ingested])
    notes: list[pb.IngestedEvent] = []

    def seen() -> bool:
        for e in consumer.poll(0.5):
            note = pb.IngestedEvent.FromString(e.value)
            if note.project == project and note.upload_id == "noted":
                notes.append(note)
        return bool(notes)

    wait_for(seen, timeout=60, what="the ingested event")
    consumer.close()
    (note,) = notes
    assert (note.dataset, note.inference_set, note.chunk_index, note.total_chunks) == ("train", "m1", 0, 1)
    assert list(note.frame_ids) == ["a", "b", "c"] and list(note.labeled_frame_ids) == ["a", "c"]
    assert list(note.predicted_frame_ids) == ["a", "b"]
    assert [(e.space, list(e.frame_ids)) for e in note.embeddings] == [("feat", ["a", "b", "c"])]
    assert (note.written.frames, note.written.labels, note.written.inferences) == (3, 2, 2)
