"""The chunk rules on their own (pure functions): every rejection names field and frame."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from shoal.common.data.datasets import Dataset, InferenceSet
from shoal.common.data.projects import ClassDef, EmbeddingSpace, Project
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.ingest.validate import Context, check_chunk, check_chunk_size, referenced_frames

DET = Project(
    name="det",
    task_type="OBJECT_DETECTION_2D",
    classes=(ClassDef(1, "person"), ClassDef(3, "car")),
    embedding_spaces=(
        EmbeddingSpace("crop", 4, "COSINE", "OBJECT", "m", "1"),
        EmbeddingSpace("frame", 2, "L2", "FRAME", "m", "1"),
    ),
)
CTX = Context(
    project=DET,
    dataset=Dataset("det", "val", "LABELED", ("val",)),
    inference_set=InferenceSet("det", "detr", "val", "detr", "1"),
    known_frames={"old": (100, 50)},
)


def _frame(fid: str = "a", w: int = 640, h: int = 480) -> pb.Frame:
    return pb.Frame(frame_id=fid, width=w, height=h, split="val")


def _errors(chunk: pb.UploadChunk) -> list[tuple[str, str, str]]:
    out = check_chunk(chunk, CTX)
    return [(r.kind, r.error.field, r.error.message) for r in out.rejections]


@pytest.mark.parametrize(
    ("box", "words"),
    [
        (pb.Box(x=600, y=10, width=100, height=10), "extends outside the 640x480 image"),
        (pb.Box(x=10, y=10, width=-5, height=10), "must be positive"),
        (pb.Box(x=10, y=10, width=0, height=10), "must be positive"),
        (pb.Box(x=-3, y=10, width=5, height=10), "outside the image"),
        (pb.Box(x=float("nan"), y=10, width=5, height=10), "must be finite"),
    ],
)
def test_bad_boxes_are_rejected_with_field_frame_and_object(box: pb.Box, words: str) -> None:
    chunk = pb.UploadChunk(frames=[_frame()])
    chunk.labels.add(frame_id="a").objects.add(object_id="o1", class_id=1, box=box)
    out = check_chunk(chunk, CTX)
    assert len(out.rejections) == 1 and not out.labels and len(out.frames) == 1
    err = out.rejections[0].error
    assert err.field == "chunk.labels[0].objects[0].box" and words in err.message
    assert (err.datapoint.dataset, err.datapoint.frame_id, err.datapoint.object_id) == ("val", "a", "o1")


def test_boxes_of_stored_frames_are_checked_against_the_stored_size() -> None:
    chunk = pb.UploadChunk()
    chunk.labels.add(frame_id="old").objects.add(object_id="o", class_id=3, box=pb.Box(x=90, y=0, width=20, height=10))
    assert "outside the 100x50 image" in _errors(chunk)[0][2]
    chunk = pb.UploadChunk()
    chunk.labels.add(frame_id="never").objects.add(object_id="o", class_id=3, box=pb.Box(x=1, y=1, width=2, height=2))
    assert "upload the frame first" in _errors(chunk)[0][2]


def test_detection_rules() -> None:
    chunk = pb.UploadChunk(frames=[_frame("a"), _frame("b")], inference_set="detr")
    chunk.labels.add(frame_id="a", class_id=1)  # a frame class in a detection project
    lab = chunk.labels.add(frame_id="b")
    lab.objects.add(object_id="x", class_id=2, box=pb.Box(x=1, y=1, width=2, height=2))  # unknown class
    inf = chunk.inferences.add(frame_id="a")
    inf.objects.add(object_id="p", class_id=3, score=1.5, box=pb.Box(x=1, y=1, width=2, height=2))
    inf = chunk.inferences.add(frame_id="b")
    inf.objects.add(object_id="p", class_id=3, score=0.5, box=pb.Box(x=1, y=1, width=2, height=2))
    inf.objects.add(object_id="p", class_id=3, score=0.5, box=pb.Box(x=1, y=1, width=2, height=2))  # duplicate id
    fields = sorted(f for _, f, _ in _errors(chunk))
    assert fields == [
        "chunk.inferences[0].objects[0].score",
        "chunk.inferences[1].objects[1].object_id",
        "chunk.labels[0].class_id",
        "chunk.labels[1].objects[0].class_id",
    ]


def test_object_embeddings_need_object_ids_and_frame_embeddings_refuse_them() -> None:
    vec = np.ones((2, 4), dtype="<f4").tobytes()
    chunk = pb.UploadChunk(frames=[_frame("a")])
    chunk.embeddings.add(space="crop", frame_ids=["a", "a"], vectors_f32=vec)
    chunk.embeddings.add(space="frame", frame_ids=["a"], object_ids=["o"], vectors_f32=np.ones((1, 2), "<f4").tobytes())
    chunk.embeddings.add(space="crop", frame_ids=["a", "a"], object_ids=["o1", "o2"], vectors_f32=vec)
    out = check_chunk(chunk, CTX)
    messages = [r.error.message for r in out.rejections]
    assert any("give one object id per row" in m for m in messages)
    assert any("leave object_ids empty" in m for m in messages)
    assert len(out.embeddings) == 1 and out.embeddings[0].object_ids == ["o1", "o2"]
    np.testing.assert_array_equal(out.embeddings[0].vectors, np.ones((2, 4)))


def test_unknown_space_and_nan_rows() -> None:
    v = np.ones((3, 2), dtype="<f4")
    v[1, 0] = np.nan
    chunk = pb.UploadChunk(frames=[_frame("a"), _frame("b"), _frame("c")])
    chunk.embeddings.add(space="frame", frame_ids=["a", "b", "c"], vectors_f32=v.tobytes())
    chunk.embeddings.add(space="nope", frame_ids=["a"], vectors_f32=b"\0" * 8)
    out = check_chunk(chunk, CTX)
    assert out.embeddings[0].frame_ids == ["a", "c"]
    fields = {r.error.field: r.error.message for r in out.rejections}
    assert "NaN" in fields["chunk.embeddings[0].vectors_f32[1]"]
    assert "unknown embedding space 'nope'" in fields["chunk.embeddings[1].space"]


def test_classification_probabilities() -> None:
    cls = Context(
        project=Project(name="c", task_type="CLASSIFICATION", classes=(ClassDef(0, "a"), ClassDef(1, "b"))),
        dataset=Dataset("c", "d", "LABELED"),
        inference_set=InferenceSet("c", "i", "d", "m", "1"),
    )
    chunk = pb.UploadChunk(frames=[pb.Frame(frame_id=str(i)) for i in range(5)], inference_set="i")
    for i, probs in enumerate([[0.3, 0.7], [0.3, 0.8], [0.5], [1.2, -0.2], [0.9995, 0.0]]):
        chunk.inferences.add(frame_id=str(i), class_probabilities=probs)
    out = check_chunk(chunk, cls)
    assert [i.frame_id for i in out.inferences] == ["0", "4"]  # 0.9995 is within the 1e-3 tolerance
    messages = {r.error.datapoint.frame_id: r.error.message for r in out.rejections}
    assert "sum to 1.100000" in messages["1"] and "2 classes" not in messages["1"]
    assert "1 probabilities for 2 classes" in messages["2"]
    assert "[0, 1]" in messages["3"]


def test_chunk_size_limit_and_references() -> None:
    chunk = pb.UploadChunk(frames=[_frame(str(i)) for i in range(11)])
    with pytest.raises(Exception, match="more than the 10 a chunk may carry"):
        check_chunk_size(chunk, 10)
    chunk.labels.add(frame_id="x")
    chunk.embeddings.add(space="frame", frame_ids=["y", "1"])
    assert referenced_frames(chunk) == {"x", "y"}


def test_times_outside_the_stored_range_reject_their_row_only() -> None:
    chunk = pb.UploadChunk(frames=[_frame("a"), _frame("b"), _frame("c"), _frame("d")])
    chunk.frames[0].capture_time.FromDatetime(datetime(1900, 1, 1, tzinfo=UTC))  # the first storable instant
    chunk.frames[1].capture_time.FromDatetime(datetime(1899, 12, 31, 23, 59, 59, tzinfo=UTC))
    chunk.frames[2].metadata["seen"].timestamp_value.FromDatetime(datetime(2300, 1, 1, tzinfo=UTC))
    chunk.frames[3].capture_time.FromDatetime(datetime(2299, 12, 31, 23, 59, 59, 999000, tzinfo=UTC))
    chunk.labels.add(frame_id="a").provenance.time.FromDatetime(datetime(3000, 1, 1, tzinfo=UTC))
    out = check_chunk(chunk, CTX)
    assert [f.frame_id for f in out.frames] == ["a", "d"]
    got = sorted((r.error.field, r.error.datapoint.frame_id) for r in out.rejections)
    assert got == [
        ("chunk.frames[1].capture_time", "b"),
        ("chunk.frames[2].metadata['seen']", "c"),
        ("chunk.labels[0].provenance.time", "a"),
    ]
    assert all("1900-01-01" in r.error.message and "2299-12-31" in r.error.message for r in out.rejections)


@pytest.mark.parametrize(
    ("field", "mutate"),
    [
        ("provenance.source", lambda lab: setattr(lab.provenance, "source", "s" * 257)),
        ("provenance.author", lambda lab: setattr(lab.provenance, "author", "a" * 257)),
        ("provenance.reason", lambda lab: setattr(lab.provenance, "reason", "r" * 4097)),
        ("objects[0].annotation_uri", lambda lab: setattr(lab.objects[0], "annotation_uri", "u" * 4097)),
    ],
)
def test_free_text_is_bounded(field: str, mutate) -> None:  # type: ignore[no-untyped-def]
    chunk = pb.UploadChunk(frames=[_frame()])
    lab = chunk.labels.add(frame_id="a")
    lab.objects.add(object_id="o1", class_id=1, box=pb.Box(x=1, y=1, width=5, height=5))
    lab.provenance.reason = "r" * 4096
    out = check_chunk(chunk, CTX)
    assert not out.rejections
    mutate(chunk.labels[0])
    out = check_chunk(chunk, CTX)
    assert [r.error.field for r in out.rejections] == [f"chunk.labels[0].{field}"]


def test_a_metadata_key_keeps_its_type_stored_or_first_in_the_chunk() -> None:
    ctx = Context(project=DET, dataset=CTX.dataset, key_types={"camera": "string"})
    chunk = pb.UploadChunk(frames=[_frame("a"), _frame("b"), _frame("c"), _frame("d")])
    chunk.frames[0].metadata["camera"].string_value = "front"
    chunk.frames[1].metadata["camera"].number_value = 2
    chunk.frames[2].metadata["lens"].bool_value = True
    chunk.frames[3].metadata["lens"].string_value = "wide"
    out = check_chunk(chunk, ctx)
    assert [f.frame_id for f in out.frames] == ["a", "c"]
    assert [r.error.field for r in out.rejections] == [
        "chunk.frames[1].metadata['camera']",
        "chunk.frames[3].metadata['lens']",
    ]
    assert "holds string values" in out.rejections[0].error.message and "is a number" in out.rejections[0].error.message
    # only keys the chunk writes first are new
    assert out.key_types == {"lens": "bool"}


def test_an_echoed_split_is_cut() -> None:
    chunk = pb.UploadChunk(frames=[_frame()])
    chunk.frames[0].split = "x" * 100_000
    (r,) = check_chunk(chunk, CTX).rejections
    assert r.error.field == "chunk.frames[0].split" and len(r.error.message) < 400
