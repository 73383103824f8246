"""The columnar block of a chunk (``UploadChunk.columns``): each row judged on its own, every
rejection naming the field, the row and the frame; the dead-letter slice holds the bad rows."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from shoal.common.data.datasets import Dataset, InferenceSet
from shoal.common.data.projects import ClassDef, Project
from shoal.ingest import columns as columnar
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.ingest.validate import Context, check_chunk, check_chunk_size, referenced_frames
from shoal.sdk import UploadColumns

CLS = Project(
    name="digits",
    task_type="CLASSIFICATION",
    classes=(ClassDef(7, "seven"), ClassDef(2, "two"), ClassDef(5, "five")),
)
CTX = Context(
    project=CLS,
    dataset=Dataset("digits", "train", "LABELED", ("train", "val")),
    inference_set=InferenceSet("digits", "mlp", "train", "mlp", "1"),
    known_frames={"old": (8, 8)},
)


def _block(n: int = 4) -> pb.UploadChunk:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), n).astype("<f4")
    chunk = pb.UploadChunk(inference_set="mlp")
    cols = chunk.columns
    cols.frame_ids.extend(f"f{i}" for i in range(n))
    cols.splits.extend(["train"] * n)
    cols.widths_i32 = np.full(n, 8, "<i4").tobytes()
    cols.heights_i32 = np.full(n, 8, "<i4").tobytes()
    cols.label_class_ids_i32 = np.array([7, 2, 5, 7][:n] + [2] * max(0, n - 4), "<i4").tobytes()
    cols.probabilities_f32 = probs.tobytes()
    return chunk


def _rejections(chunk: pb.UploadChunk) -> list[tuple[str, int, str, str, str]]:
    out = check_chunk(chunk, CTX)
    return sorted((r.kind, r.index, r.error.field, r.error.datapoint.frame_id, r.error.message) for r in out.rejections)


def test_a_good_block_is_written_whole() -> None:
    out = check_chunk(_block(), CTX)
    assert out.rejections == [] and out.counts() == (4, 4, 4, 0)


def test_each_bad_row_is_rejected_alone_naming_field_row_and_frame() -> None:
    chunk = _block(6)
    cols = chunk.columns
    cols.frame_ids[1] = "f0"  # duplicate id: the whole row goes
    cols.splits[2] = "test"  # not a split of the dataset: the frame goes, and with it its label and inference
    labels = np.frombuffer(cols.label_class_ids_i32, "<i4").copy()
    labels[3] = 3  # unknown class: only the label goes
    labels[5] = -1  # unlabeled row: nothing rejected, nothing written
    cols.label_class_ids_i32 = labels.tobytes()
    probs = np.frombuffer(cols.probabilities_f32, "<f4").reshape(6, 3).copy()
    probs[4] = [0.5, 0.2, 0.2]  # sums to 0.9: only the inference goes
    cols.probabilities_f32 = probs.tobytes()
    out = check_chunk(chunk, CTX)
    got = _rejections(chunk)
    assert ("labels", 3, "chunk.columns.label_class_ids_i32[3]", "f3", "unknown class id 3") in got
    assert any(
        r[:4] == ("inference", 4, "chunk.columns.probabilities_f32[4]", "f4") and "sum to 0.900000" in r[4] for r in got
    )
    assert {(k, i) for k, i, *_ in got} == {
        ("frame", 0), ("labels", 0), ("inference", 0),
        ("frame", 1), ("labels", 1), ("inference", 1),
        ("frame", 2), ("labels", 2), ("inference", 2),
        ("labels", 3), ("inference", 4),
    }  # fmt: skip
    assert all(r.columns for r in out.rejections)
    dup = next(r for r in got if r[1] == 0 and r[0] == "frame")
    assert dup[2] == "chunk.columns.frame_ids[0]" and "appears 2 times" in dup[4]
    split = next(r for r in got if r[1] == 2 and r[0] == "frame")
    assert split[2] == "chunk.columns.splits[2]" and "'test' is not one of dataset 'train'" in split[4]
    # written: frames 3, 4, 5; labels of rows 4 (5 is unlabeled); inferences of rows 3, 5
    c = out.columns
    assert c is not None
    assert np.flatnonzero(c.frame_ok).tolist() == [3, 4, 5]
    assert np.flatnonzero(c.label_ok).tolist() == [4]
    assert np.flatnonzero(c.inference_ok).tolist() == [3, 5]
    assert out.counts() == (3, 1, 2, 0)


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda c: setattr(c, "probabilities_f32", c.probabilities_f32[:-4]), "probabilities_f32", "4 x 3 float32"),
        (lambda c: setattr(c, "widths_i32", b"\0" * 3), "widths_i32", "has 3 bytes"),
        (lambda c: c.splits.append("train"), "splits", "5 entries for 4 frame ids"),
        (lambda c: c.metadata.add(key="9bad", numbers_f64=b"\0" * 32), "metadata[0].key", "must match"),
        (lambda c: setattr(c, "frames_stored", True), "splits", "carry no frame columns"),
    ],
)
def test_a_block_whose_columns_do_not_line_up_is_rejected_whole(mutate, field: str, words: str) -> None:  # type: ignore[no-untyped-def]
    chunk = _block()
    mutate(chunk.columns)
    out = check_chunk(chunk, CTX)
    assert out.counts() == (0, 0, 0, 0)
    fields = {r.error.field for r in out.rejections}
    assert fields == {f"chunk.columns.{field}"}
    assert all(words in r.error.message for r in out.rejections)
    assert {r.error.datapoint.frame_id for r in out.rejections} == {"f0", "f1", "f2", "f3"}


def test_non_finite_and_out_of_range_probabilities() -> None:
    chunk = _block()
    probs = np.frombuffer(chunk.columns.probabilities_f32, "<f4").reshape(4, 3).copy()
    probs[0] = [np.nan, 0.5, 0.5]
    probs[1] = [1.5, -0.5, 0.0]
    probs[2] = [np.inf, 0, 0]
    chunk.columns.probabilities_f32 = probs.tobytes()
    got = {(i, msg) for kind, i, _f, _fid, msg in _rejections(chunk)}
    assert got == {
        (0, "probabilities must be finite"),
        (1, "probabilities must lie in [0, 1]"),
        (2, "probabilities must be finite"),
    }


def test_probabilities_need_an_inference_set_and_labels_a_classification_project() -> None:
    chunk = _block()
    chunk.inference_set = ""
    ctx = Context(project=CLS, dataset=CTX.dataset)
    out = check_chunk(chunk, ctx)
    assert {r.error.field for r in out.rejections} == {"chunk.inference_set"}
    det = Context(
        project=Project(name="det", task_type="OBJECT_DETECTION_2D", classes=CLS.classes),
        dataset=CTX.dataset,
        inference_set=CTX.inference_set,
    )
    out = check_chunk(_block(), det)
    assert {r.error.field for r in out.rejections} == {"chunk.columns.label_class_ids_i32"}
    assert "send its labels in chunk.labels" in out.rejections[0].error.message


def test_stored_frames_and_references() -> None:
    chunk = pb.UploadChunk(inference_set="mlp")
    chunk.columns.frame_ids.extend(["old", "missing"])
    chunk.columns.frames_stored = True
    chunk.columns.label_class_ids_i32 = np.array([2, 5], "<i4").tobytes()
    assert referenced_frames(chunk) == {"old", "missing"}
    out = check_chunk(chunk, CTX)
    assert out.counts() == (0, 1, 0, 0)
    (r,) = out.rejections
    assert (
        r.kind == "labels" and r.error.datapoint.frame_id == "missing" and "upload the frame first" in r.error.message
    )
    # frames the block brings are referable by the rest of the chunk, e.g. an embedding block
    chunk = _block(2)
    chunk.embeddings.add(space="nope", frame_ids=["f0"], vectors_f32=b"")
    assert referenced_frames(chunk) == set()


def test_ids_must_not_clash_with_the_frame_list() -> None:
    chunk = _block(2)
    chunk.frames.add(frame_id="f1", split="train")
    got = _rejections(chunk)
    assert {(k, i) for k, i, *_ in got} == {("frame", 1), ("labels", 1), ("inference", 1)}
    assert "also in chunk.frames" in got[0][4]


def test_chunk_size_counts_the_block() -> None:
    with pytest.raises(Exception, match="more than the 3 a chunk may carry") as info:
        check_chunk_size(_block(4), 3)
    assert info.value.field == "chunk.columns.frame_ids"  # type: ignore[attr-defined]


def test_the_dead_letter_slice_holds_exactly_the_bad_rows() -> None:
    chunk = _block(5)
    chunk.columns.metadata.add(key="score", numbers_f64=np.arange(5, dtype="<f8").tobytes())
    chunk.columns.metadata.add(key="site").strings.values.extend(list("abcde"))
    part = columnar.take_rows(chunk.columns, [1, 3])
    assert list(part.frame_ids) == ["f1", "f3"] and list(part.splits) == ["train", "train"]
    assert np.frombuffer(part.label_class_ids_i32, "<i4").tolist() == [2, 7]
    full = np.frombuffer(chunk.columns.probabilities_f32, "<f4").reshape(5, 3)
    assert np.array_equal(np.frombuffer(part.probabilities_f32, "<f4").reshape(2, 3), full[[1, 3]])
    assert np.frombuffer(part.metadata[0].numbers_f64, "<f8").tolist() == [1.0, 3.0]
    assert list(part.metadata[1].strings.values) == ["b", "d"]


def test_arrow_tables_carry_metadata_times_and_predicted_class_ids() -> None:
    cols = UploadColumns(
        frame_ids=["a", "b", "c"],
        splits=["train", "val", "train"],
        sizes=[(8, 8), (9, 9), (10, 10)],
        metadata=[
            {"site": "x", "score": 1.5, "night": True, "seen": datetime(2026, 1, 2, tzinfo=UTC)},
            {"site": "y", "night": False},
            {"site": "z", "score": 2.5},
        ],
        class_ids=[7, 2, 5],
        inference_set="mlp",
        probabilities=np.array([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.2, 0.2, 0.6]], dtype=np.float32),
    )
    assert cols.columnar
    (chunk,) = list(cols.chunks(10))
    out = check_chunk(chunk, CTX)
    assert out.rejections == [] and out.columns is not None
    meta = columnar.BlockMeta("digits", "train", "mlp", "u1", "u1/0", 1_000)
    frames = columnar.frame_table(meta, out.columns)
    assert frames is not None
    rows = frames.to_pylist()
    assert [dict(r["meta_str"]) for r in rows] == [{"site": "x"}, {"site": "y"}, {"site": "z"}]
    assert [dict(r["meta_num"]) for r in rows] == [{"score": 1.5}, {}, {"score": 2.5}]
    assert [dict(r["meta_bool"]) for r in rows] == [{"night": 1}, {"night": 0}, {}]
    assert [list(dict(r["meta_time"])) for r in rows] == [["seen"], [], []]
    assert [(r["width"], r["height"], r["split"]) for r in rows] == [(8, 8, "train"), (9, 9, "val"), (10, 10, "train")]
    inferences = columnar.inference_table(meta, out.columns)
    assert inferences is not None
    # probabilities are in the ontology's order (7, 2, 5): the predicted class is a class id
    assert inferences.column("pred_class").to_pylist() == [2, 7, 5]
    labels = columnar.label_table(meta, out.columns)
    assert labels is not None and labels.column("class_id").to_pylist() == [7, 2, 5]
    other = columnar.inference_table(columnar.BlockMeta("digits", "train", "mlp", "u2", "u2/0", 2_000), out.columns)
    both = columnar.concat([inferences, None, other])
    assert isinstance(both, pa.Table) and both.num_rows == 6
    # one dictionary per column, as an Arrow stream into ClickHouse needs
    assert both.column("upload_id").num_chunks == 1
    assert both.column("upload_id").to_pylist() == ["u1"] * 3 + ["u2"] * 3


def test_metadata_that_mixes_types_falls_back_to_rows() -> None:
    cols = UploadColumns(frame_ids=["a", "b"], metadata=[{"k": 1}, {"k": "one"}])
    assert not cols.columnar
    (chunk,) = list(cols.chunks(10))
    assert len(chunk.frames) == 2 and not chunk.HasField("columns")


def test_times_outside_the_stored_range_reject_their_row_only() -> None:
    chunk = _block(4)
    cols = chunk.columns
    times = np.array([columnar.MIN_TIME_MS, columnar.MIN_TIME_MS - 1, columnar.NO_TIME, columnar.MAX_TIME_MS], "<i8")
    cols.capture_times_ms_i64 = times.tobytes()
    seen = np.array([0, 0, columnar.MAX_TIME_MS + 1, columnar.NO_TIME], "<i8")
    cols.metadata.add(key="seen", timestamps_ms_i64=seen.tobytes())
    got = {(kind, field, fid) for kind, _i, field, fid, _m in _rejections(chunk)}
    assert got == {
        (kind, field, fid)
        for kind in ("frame", "labels", "inference")
        for field, fid in (
            ("chunk.columns.capture_times_ms_i64[1]", "f1"),
            ("chunk.columns.metadata[0].timestamps_ms_i64[2]", "f2"),
        )
    }


def test_a_metadata_column_keeps_the_type_of_its_key() -> None:
    ctx = Context(project=CLS, dataset=CTX.dataset, key_types={"camera": "string"})
    chunk = pb.UploadChunk()
    cols = chunk.columns
    cols.frame_ids.extend(["a", "b", "c"])
    cols.metadata.add(key="camera", numbers_f64=np.array([np.nan, 2.0, np.nan], "<f8").tobytes())
    cols.metadata.add(key="lens", bools_u8=np.array([1, 255, 0], "u1").tobytes())
    out = check_chunk(chunk, ctx)
    assert [(r.error.field, r.error.datapoint.frame_id) for r in out.rejections] == [
        ("chunk.columns.metadata[0].numbers_f64[1]", "b")
    ]
    assert out.key_types == {"lens": "bool"}


def test_a_bad_label_provenance_rejects_the_labels_of_the_block_only() -> None:
    chunk = _block(4)
    chunk.columns.label_provenance.author = "a" * 257
    out = check_chunk(chunk, CTX)
    assert out.counts() == (4, 0, 4, 0)
    assert {r.error.field for r in out.rejections} == {"chunk.columns.label_provenance.author"}
