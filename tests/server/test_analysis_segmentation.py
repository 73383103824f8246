"""Semantic segmentation projects through the server: class maps uploaded in each of their forms
(arrays through the SDK, one COCO mask per class, PNG label images at a URI, grey and RGB), measured
equal to a plain numpy computation over every pixel, under a filter and after a relabel; the frames
behind a class and a confusion cell in the right order; bad maps refused naming the field and the
frame."""

from __future__ import annotations

import io
import pathlib
import uuid
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from PIL import Image

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.client import error_detail
from shoal.common import classmaps, masks
from shoal.common.topics import Topics
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import UploadColumns
from tests.server.conftest import Running, finish_job, start_server, wait_for
from tests.server.test_ingest_upload import _wait_done

CLASSES = [
    (3, "road", "#804080"),
    (5, "car", "#00008e"),
    (7, "person", "#dc143c"),
    (9, "sky", "#4682b4"),
    (11, "train", "#005064"),
]  # fmt: skip  (train: never labeled nor predicted)
IDS = [c for c, _, _ in CLASSES]
K = len(CLASSES)
NONE = classmaps.UNLABELED


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, chdb_path: pathlib.Path, media: pathlib.Path) -> Iterator[Running]:
    from tests.conftest import server_settings

    settings = server_settings(tmp_path_factory.mktemp("server") / "data", chdb_path, console_media_roots=[str(media)])
    r = start_server(settings)
    yield r
    r.server.stop(grace=1)


def _scene(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Road below, sky above, a few cars and people as blobs."""
    yy, xx = np.mgrid[:h, :w]
    a = np.where(yy > h * rng.uniform(0.3, 0.6), 3, 9).astype(np.uint16)
    for _ in range(rng.integers(0, 4)):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(2, max(3, h // 4))
        a[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.choice([5, 7])
    return a


def _data(n: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Label maps (some pixels without a class) and predictions that get some blobs wrong, of
    several sizes, and a camera per frame."""
    rng = np.random.default_rng(seed)
    labels, preds = [], []
    for i in range(n):
        h, w = (24, 32) if i % 2 else (30, 20)
        y = _scene(rng, h, w)
        p = y.copy()
        p[rng.random((h, w)) < 0.05] = rng.choice(IDS[:4])  # speckle
        p[_scene(rng, h, w) == 7] = 5  # some people seen as cars
        y[rng.random((h, w)) < 0.03] = NONE
        labels.append(y)
        preds.append(p)
    return labels, preds, ["rear" if i % 3 == 0 else "front" for i in range(n)]


def _confusion(labels: list[np.ndarray], preds: list[np.ndarray]) -> np.ndarray:
    """The reference: every labeled pixel counted with numpy."""
    t = np.concatenate([y.ravel() for y in labels]).astype(np.int64)
    p = np.concatenate([q.ravel() for q in preds]).astype(np.int64)
    keep = t != NONE
    pos = {c: i for i, c in enumerate(IDS)}
    ti = np.array([pos[v] for v in t[keep]])
    pi = np.array([pos[v] for v in p[keep]])
    return np.bincount(ti * K + pi, minlength=K * K).reshape(K, K)


def _create(c, p: str) -> None:  # type: ignore[no-untyped-def]
    c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
        name=p, task_type=pb.TASK_TYPE_SEGMENTATION,
        classes=[pb.ClassDef(id=i, name=n, color=col) for i, n, col in CLASSES])))  # fmt: skip
    c.ingest.CreateDataset(pb.CreateDatasetRequest(project=p, dataset=pb.Dataset(
        name="val", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
    c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=p, inference_set=pb.InferenceSet(
        name="segformer", dataset="val", model_name="segformer", model_version="1")))  # fmt: skip


def _png(a: np.ndarray, mode: str) -> bytes:
    out = io.BytesIO()
    if mode == "L":
        Image.fromarray(np.where(a == NONE, 255, a).astype(np.uint8), "L").save(out, "PNG")
    else:
        colors = {c: tuple(int(col[k : k + 2], 16) for k in (1, 3, 5)) for c, _, col in CLASSES}
        rgb = np.zeros((*a.shape, 3), np.uint8)
        for c, col in colors.items():
            rgb[a == c] = col
        Image.fromarray(rgb, "RGB").save(out, "PNG")
    return out.getvalue()


def _upload(running: Running, media: pathlib.Path, p: str, labels, preds, cameras) -> list[str]:  # type: ignore[no-untyped-def]
    """Frames and labels: a third as arrays (the SDK's runs), a third as grey PNGs at a URI, a
    third as one COCO mask per class; predictions as arrays (frames without a label keep none);
    predictions of frames 0 and 1 as RGB PNGs."""
    n = len(labels)
    ids = [f"s-{i:04d}" for i in range(n)]
    sizes = [(y.shape[1], y.shape[0]) for y in labels]
    folder = media / p
    folder.mkdir()
    maps: list[np.ndarray | str] = []
    for i, y in enumerate(labels):
        if i % 3 == 1:
            path = folder / f"{ids[i]}.png"
            path.write_bytes(_png(y, "L"))
            maps.append(path.as_uri())
        else:
            maps.append(y)
    predicted: list[np.ndarray | str] = list(preds)
    for i in (0, 1):
        path = folder / f"{ids[i]}-pred.png"
        path.write_bytes(_png(preds[i], "RGB"))
        predicted[i] = str(path)
    with running.client(running.admin_key) as c:
        _create(c, p)
        arrays = [i for i in range(n) if i % 3 != 2]
        cols = UploadColumns(frame_ids=[ids[i] for i in arrays], sizes=[sizes[i] for i in arrays],
                             metadata=[{"camera": cameras[i]} for i in arrays],
                             label_maps=[maps[i] for i in arrays])  # fmt: skip
        r = c.upload(p, "val", cols, progress=False)
        assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        chunk = pb.UploadChunk()
        for i in range(2, n, 3):
            w, h = sizes[i]
            chunk.frames.add(
                frame_id=ids[i], width=w, height=h, metadata={"camera": cpb.Value(string_value=cameras[i])}
            )
            lab = chunk.labels.add(frame_id=ids[i])
            for cid, counts in classmaps.regions(*classmaps.encode(labels[i])):
                lab.segmentation.regions.add(class_id=cid, mask=pb.Mask(counts=masks.to_string(counts)))
        c.ingest.Upload(iter([pb.UploadRequest(project=p, dataset="val", upload_id=f"{p}-regions", chunk=chunk)]))
        assert c.wait_for_upload(p, f"{p}-regions", timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        cols = UploadColumns(frame_ids=ids, inference_set="segformer", predicted_maps=predicted, skip_frames=True)
        r = c.upload(p, "val", cols, progress=False)
        assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
    return ids


def _check(got: apb.SegmentationMetrics, labels: list[np.ndarray], preds: list[np.ndarray]) -> None:
    m = _confusion(labels, preds)
    assert list(got.class_ids) == IDS
    assert np.array_equal(np.array(got.confusion).reshape(K, K), m)
    assert got.frames == len(labels) and got.pixels == m.sum()
    tp, lab, pred = np.diag(m), m.sum(1), m.sum(0)
    union = lab + pred - tp
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    acc = np.where(lab > 0, tp / np.maximum(lab, 1), np.nan)
    assert got.pixel_accuracy == pytest.approx(tp.sum() / m.sum(), abs=1e-12)
    assert got.mean_iou == pytest.approx(np.nanmean(iou), abs=1e-12)
    assert got.mean_accuracy == pytest.approx(np.nanmean(acc), abs=1e-12)
    seen = union > 0
    assert got.frequency_weighted_iou == pytest.approx((lab[seen] / m.sum() * iou[seen]).sum(), abs=1e-12)
    for i, row in enumerate(got.per_class):
        assert (row.class_id, row.label_pixels, row.predicted_pixels, row.true_positive_pixels) == (
            IDS[i], lab[i], pred[i], tp[i])  # fmt: skip
        assert row.iou == pytest.approx(-1 if np.isnan(iou[i]) else iou[i], abs=1e-12)
        assert row.frames == sum(bool((y == IDS[i]).any()) for y in labels)
    assert got.per_class[4].iou == -1 and got.per_class[4].accuracy == -1  # train: nowhere


def test_metrics_equal_numpy_over_every_pixel(shared: Running, media: pathlib.Path, project: str) -> None:
    labels, preds, cameras = _data(45, 1)
    _upload(shared, media, project, labels, preds, cameras)
    with shared.client(shared.admin_key) as c:
        got = c.analysis.GetSegmentationMetrics(apb.GetSegmentationMetricsRequest(
            project=project, inference_set="segformer")).metrics  # fmt: skip
        _check(got, labels, preds)
        rear = cpb.Filter(all=[cpb.Condition(field="metadata.camera", equals=cpb.Value(string_value="rear"))])
        got = c.analysis.GetSegmentationMetrics(apb.GetSegmentationMetricsRequest(
            project=project, inference_set="segformer", filter=rear)).metrics  # fmt: skip
        keep = [i for i, cam in enumerate(cameras) if cam == "rear"]
        _check(got, [labels[i] for i in keep], [preds[i] for i in keep])
        with pytest.raises(grpc.RpcError) as info:
            c.analysis.GetClassificationMetrics(apb.GetClassificationMetricsRequest(
                project=project, inference_set="segformer"))  # fmt: skip
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_frames_behind_a_class_and_a_cell(shared: Running, media: pathlib.Path, project: str) -> None:
    labels, preds, cameras = _data(30, 2)
    ids = _upload(shared, media, project, labels, preds, cameras)
    ok = [y != NONE for y in labels]
    with shared.client(shared.admin_key) as c:
        worst = c.analysis.QuerySegmentationFrames(apb.QuerySegmentationFramesRequest(
            project=project, inference_set="segformer", class_id=7, page=cpb.PageRequest(page_size=100)))  # fmt: skip
        want = []
        for i, (y, q, k) in enumerate(zip(labels, preds, ok, strict=True)):
            lab, pred = int(((y == 7) & k).sum()), int(((q == 7) & k).sum())
            tp = int(((y == 7) & (q == 7) & k).sum())
            if lab + pred:
                want.append((tp / (lab + pred - tp), ids[i], lab, pred))
        want.sort()
        assert [f.ref.frame_id for f in worst.frames] == [w[1] for w in want]
        assert [f.iou for f in worst.frames] == pytest.approx([w[0] for w in want], abs=1e-12)
        assert [(f.label_pixels, f.predicted_pixels) for f in worst.frames] == [(w[2], w[3]) for w in want]
        assert worst.page.total_count == len(want)
        cell = c.analysis.QuerySegmentationFrames(apb.QuerySegmentationFramesRequest(
            project=project, inference_set="segformer", class_id=7, predicted_class=5))  # fmt: skip
        counts = [
            (-int(((y == 7) & (q == 5)).sum()), ids[i]) for i, (y, q) in enumerate(zip(labels, preds, strict=True))
        ]
        expected = sorted(x for x in counts if x[0] < 0)
        assert [(-f.cell_pixels, f.ref.frame_id) for f in cell.frames] == expected[: len(cell.frames)]
        assert cell.page.total_count == len(expected) and cell.frames[0].media_uri == ""


def test_a_relabel_changes_the_metrics(shared: Running, media: pathlib.Path, project: str) -> None:
    labels, preds, cameras = _data(12, 3)
    ids = _upload(shared, media, project, labels, preds, cameras)
    labels[4] = preds[4].copy()  # the reviewer accepts the prediction
    with shared.client(shared.admin_key) as c:
        r = c.upload(project, "val", UploadColumns(frame_ids=[ids[4]], label_maps=[labels[4]], skip_frames=True),
                     progress=False)  # fmt: skip
        assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        got = c.analysis.GetSegmentationMetrics(apb.GetSegmentationMetricsRequest(
            project=project, inference_set="segformer")).metrics  # fmt: skip
    _check(got, labels, preds)


def _runs(a: np.ndarray) -> pb.SegmentationMap:
    v, r = classmaps.encode(a)
    return pb.SegmentationMap(runs=pb.ClassRuns(classes=v.tolist(), lengths=r.tolist()))


_ROAD = np.full((4, 5), 3, np.uint16)


@pytest.mark.parametrize(
    ("make", "field", "says"),
    [
        (lambda ch, m: ch.labels.add(frame_id="f1"), "chunk.labels[0].segmentation", "needs its class map"),
        (lambda ch, m: ch.labels.add(frame_id="f1", segmentation=pb.SegmentationMap(
            runs=pb.ClassRuns(classes=[3], lengths=[19]))), "chunk.labels[0].segmentation.runs.lengths", "19"),
        (lambda ch, m: ch.labels.add(frame_id="f1", segmentation=pb.SegmentationMap(
            runs=pb.ClassRuns(classes=[3, 4], lengths=[10, 10]))), "chunk.labels[0].segmentation.runs", "unknown class id 4"),
        (lambda ch, m: ch.labels.add(frame_id="f1", segmentation=pb.SegmentationMap(
            runs=pb.ClassRuns(classes=[3, 5], lengths=[20, 0]))), "chunk.labels[0].segmentation.runs.lengths[1]", "at least 1"),
        (lambda ch, m: ch.labels.add(frame_id="f1", segmentation=pb.SegmentationMap(
            runs=_runs(_ROAD).runs, uri="file:///x.png")), "chunk.labels[0].segmentation", "exactly one form"),
        (lambda ch, m: ch.labels.add(frame_id="f1", class_id=3, segmentation=_runs(_ROAD)),
         "chunk.labels[0].class_id", "pixels"),
        (lambda ch, m: ch.labels.add(frame_id="f1", segmentation=pb.SegmentationMap(regions=[
            pb.ClassRegion(class_id=3, mask=pb.Mask(runs=[0, 20])),
            pb.ClassRegion(class_id=5, mask=pb.Mask(runs=[19, 1]))])), "chunk.labels[0].segmentation.regions", "share 1 pixels"),
        (lambda ch, m: ch.labels.add(frame_id="f1", segmentation=pb.SegmentationMap(regions=[
            pb.ClassRegion(class_id=3, mask=pb.Mask(runs=[0, 12]))])), "chunk.labels[0].segmentation.regions[0].mask", "12"),
        (lambda ch, m: ch.labels.add(frame_id="f1", segmentation=pb.SegmentationMap(uri="/etc/passwd")),
         "chunk.labels[0].segmentation.uri", "outside"),
        (lambda ch, m: ch.labels.add(frame_id="f1", segmentation=pb.SegmentationMap(uri=str(m["small"]))),
         "chunk.labels[0].segmentation.uri", "not the frame's 5x4"),
        (lambda ch, m: ch.labels.add(frame_id="f1", segmentation=pb.SegmentationMap(uri=str(m["odd"]))),
         "chunk.labels[0].segmentation.uri", "#010203"),
        (lambda ch, m: ch.inferences.add(frame_id="f1", segmentation=_runs(np.where(_ROAD == 3, NONE, 0).astype(np.uint16))),
         "chunk.inferences[0].segmentation.runs", "every pixel a class"),
        (lambda ch, m: ch.inferences.add(frame_id="f1", segmentation=_runs(_ROAD), class_probabilities=[1, 0, 0, 0, 0]),
         "chunk.inferences[0].class_probabilities", "pixels"),
    ],
)  # fmt: skip
def test_bad_maps_are_refused(shared: Running, media: pathlib.Path, project: str, make, field: str, says: str) -> None:  # type: ignore[no-untyped-def]
    small = media / f"{project}-small.png"
    small.write_bytes(_png(np.full((3, 5), 3, np.uint16), "L"))
    odd = media / f"{project}-odd.png"
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[:] = (1, 2, 3)
    Image.fromarray(rgb, "RGB").save(odd, "PNG")
    chunk = pb.UploadChunk(inference_set="segformer", frames=[pb.Frame(frame_id="f1", width=5, height=4)])
    make(chunk, {"small": small, "odd": odd})
    with shared.client(shared.admin_key) as c:
        _create(c, project)
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.Upload(iter([pb.UploadRequest(project=project, dataset="val", chunk=chunk)]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = error_detail(info.value)
    assert detail.field == field and detail.datapoint.frame_id == "f1", info.value.details()
    assert says in info.value.details()


def test_maps_belong_to_segmentation_projects(shared: Running, project: str) -> None:
    with shared.client(shared.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=project, task_type=pb.TASK_TYPE_CLASSIFICATION, classes=[pb.ClassDef(id=3, name="road")])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(
            name="val", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        chunk = pb.UploadChunk(frames=[pb.Frame(frame_id="f1", width=5, height=4)])
        chunk.labels.add(frame_id="f1", class_id=3, segmentation=_runs(_ROAD))
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.Upload(iter([pb.UploadRequest(project=project, dataset="val", chunk=chunk)]))
        assert error_detail(info.value).field == "chunk.labels[0].segmentation"
        with pytest.raises(grpc.RpcError) as info:
            c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
                name=project + "x", task_type=pb.TASK_TYPE_SEGMENTATION,
                classes=[pb.ClassDef(id=3, name="road", color="#00ff00"), pb.ClassDef(id=4, name="lane", color="#00FF00")])))  # fmt: skip
        assert error_detail(info.value).field == "project.classes[1].color" and "class 3" in info.value.details()


def test_import_a_folder_of_label_images_and_a_table_of_them(
    shared: Running, media: pathlib.Path, project: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`shoal import masks`: palette label images (255: no class), RGB predicted ones in the
    classes' colours, images paired by name; `shoal import table`: label images at URIs the server
    reads. Both measure as numpy does."""
    import pandas as pd

    from shoal.cli import main

    labels, preds, cameras = _data(9, 4)
    folder = media / project
    for sub in ("masks", "pred", "images"):
        (folder / sub).mkdir(parents=True)
    for i, (y, q) in enumerate(zip(labels, preds, strict=True)):
        pal = Image.open(io.BytesIO(_png(y, "L"))).convert("P")
        pal.save(folder / "masks" / f"f{i}.png")
        (folder / "pred" / f"f{i}.png").write_bytes(_png(q, "RGB"))
        Image.fromarray(np.zeros((*y.shape, 3), np.uint8)).save(folder / "images" / f"f{i}.jpg")
    with shared.client(shared.admin_key) as c:
        _create(c, project)
    args = ["--target", shared.target, "--api-key", shared.admin_key, "--project", project, "--wait"]
    code = main(["import", "masks", *args, "--dataset", "val", "--masks", str(folder / "masks"),
                 "--images", str(folder / "images"), "--predictions", str(folder / "pred"),
                 "--inference-set", "segformer", "--split", ""])  # fmt: skip
    assert code == 0, capsys.readouterr()
    pd.DataFrame({
        "frame_id": [f"t{i}" for i in range(len(labels))], "width": [y.shape[1] for y in labels],
        "height": [y.shape[0] for y in labels], "label_map": [str(folder / "masks" / f"f{i}.png") for i in range(len(labels))],
        "predicted_map": [(folder / "pred" / f"f{i}.png").as_uri() for i in range(len(labels))], "camera": cameras,
    }).to_csv(folder / "table.csv", index=False)  # fmt: skip
    with shared.client(shared.admin_key) as c:
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(
            name="test", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=project, inference_set=pb.InferenceSet(
            name="segformer-test", dataset="test", model_name="segformer", model_version="1")))  # fmt: skip
    code = main(["import", "table", *args, "--dataset", "test", "--table", str(folder / "table.csv"),
                 "--inference-set", "segformer-test"])  # fmt: skip
    assert code == 0, capsys.readouterr()
    with shared.client(shared.admin_key) as c:
        for name in ("segformer", "segformer-test"):
            got = c.analysis.GetSegmentationMetrics(apb.GetSegmentationMetricsRequest(
                project=project, inference_set=name)).metrics  # fmt: skip
            _check(got, labels, preds)
        frame = c.analysis.QuerySegmentationFrames(apb.QuerySegmentationFramesRequest(
            project=project, inference_set="segformer", class_id=3)).frames[0]  # fmt: skip
        assert frame.media_uri == (folder / "images" / f"{frame.ref.frame_id}.jpg").as_uri()


def check_map_dead_letters(running: Running, p: str) -> None:
    """A producer's event for a segmentation project: a label whose runs miss pixels and a
    prediction leaving pixels without a class go to the dead-letter topic as received, with their
    reasons; the good label and prediction of the same event are written and measured."""
    y = np.array([[3, 3, 9], [5, 5, 9]], np.uint16)
    q = np.array([[3, 5, 9], [5, 5, 9]], np.uint16)
    with running.client(running.admin_key) as c:
        _create(c, p)
    chunk = pb.UploadChunk(frames=[pb.Frame(frame_id=f"f{i}", width=3, height=2) for i in range(3)],
                           inference_set="segformer")  # fmt: skip
    lab = chunk.labels.add(frame_id="f0")
    for cid, counts in classmaps.regions(*classmaps.encode(y)):
        lab.segmentation.regions.add(class_id=cid, mask=pb.Mask(runs=counts.tolist()))
    chunk.labels.add(frame_id="f1", segmentation=pb.SegmentationMap(runs=pb.ClassRuns(classes=[3], lengths=[5])))
    chunk.inferences.add(frame_id="f0", segmentation=_runs(q))
    chunk.inferences.add(frame_id="f1", segmentation=_runs(np.where(q == 5, NONE, q).astype(np.uint16)))
    event = pb.UploadEvent(schema_version=1, upload_id="maps-1", chunk_index=0, project=p, dataset="val", chunk=chunk)
    bus = running.server.stores.events
    topics = Topics(running.server.settings.topic_prefix)
    key = f"{p}/val".encode()
    bus.publish(topics.uploads, key=key, value=event.SerializeToString()).result(timeout=10)
    with running.client(running.admin_key) as c:
        st = _wait_done(c, p, "maps-1")
        assert st.state == pb.UPLOAD_STATE_COMPLETED_WITH_ERRORS
        assert (st.written.frames, st.written.labels, st.written.inferences) == (3, 1, 1)
        assert sorted(e.detail.field for e in st.errors) == [
            "chunk.inferences[1].segmentation.runs", "chunk.labels[1].segmentation.runs.lengths",
        ]  # fmt: skip
        (version,) = c.ingest.ListLabelVersions(pb.ListLabelVersionsRequest(project=p, dataset="val",
                                                                            frame_id="f0")).versions  # fmt: skip
        runs = version.segmentation.runs
        assert np.array_equal(classmaps.decode(np.array(runs.classes), np.array(runs.lengths), 2, 3), y)
        got = c.analysis.GetSegmentationMetrics(apb.GetSegmentationMetricsRequest(
            project=p, inference_set="segformer")).metrics  # fmt: skip
        assert got.frames == 1 and got.pixels == 6 and got.pixel_accuracy == pytest.approx(5 / 6)
    dlq = bus.consumer(f"test-dlq-{uuid.uuid4().hex}", [topics.dead_letter])
    seen: list = []  # type: ignore[type-arg]
    wait_for(lambda: seen.extend(e for e in dlq.poll(0.5) if e.key == key) or len(seen) >= 1, timeout=60,
             what="the dead letter")  # fmt: skip
    dlq.close()
    part = pb.UploadEvent.FromString(seen[0].value)
    assert [x.frame_id for x in part.chunk.labels] == ["f1"] and [x.frame_id for x in part.chunk.inferences] == ["f1"]
    assert list(part.chunk.labels[0].segmentation.runs.lengths) == [5]  # as received


def test_bad_maps_on_the_event_path_are_dead_lettered_and_good_ones_written(shared: Running, project: str) -> None:
    check_map_dead_letters(shared, project)


def _miou(labels: list[np.ndarray], preds: list[np.ndarray]) -> tuple[float, np.ndarray]:
    m = _confusion(labels, preds)
    tp, union = np.diag(m), m.sum(0) + m.sum(1) - np.diag(m)
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    return float(np.nanmean(iou)), iou


def test_two_models_compared_and_gated_in_pixels(shared: Running, media: pathlib.Path, project: str) -> None:
    labels, preds, cameras = _data(36, 5)
    ids = _upload(shared, media, project, labels, preds, cameras)
    rng = np.random.default_rng(6)
    worse = [
        np.where((y != NONE) & (rng.random(y.shape) < 0.2), 9, q).astype(np.uint16)
        for y, q in zip(labels, preds, strict=True)
    ]
    worse[0] = preds[0]  # one frame unchanged
    with shared.client(shared.admin_key) as c:
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=project, inference_set=pb.InferenceSet(
            name="worse", dataset="val", model_name="tiny", model_version="1")))  # fmt: skip
        r = c.upload(project, "val", UploadColumns(frame_ids=ids, inference_set="worse", predicted_maps=worse,
                                                   skip_frames=True), progress=False)  # fmt: skip
        assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        cmp = c.analysis.CompareInferenceSets(apb.CompareInferenceSetsRequest(
            project=project, baseline_inference_set="segformer", candidate_inference_set="worse"))  # fmt: skip
        (b_miou, b_iou), (w_miou, w_iou) = _miou(labels, preds), _miou(labels, worse)
        assert cmp.frames == 36 and (cmp.baseline_mean_iou, cmp.candidate_mean_iou) == pytest.approx((b_miou, w_miou))
        acc = [[float((q == y)[y != NONE].mean()) for y, q in zip(labels, p, strict=True)] for p in (preds, worse)]
        assert cmp.regressed == sum(w < b for b, w in zip(*acc, strict=True)) and cmp.improved == sum(
            w > b for b, w in zip(*acc, strict=True))  # fmt: skip
        for i, d in enumerate(cmp.per_class):
            for got, want in ((d.baseline_iou, b_iou[i]), (d.candidate_iou, w_iou[i])):
                assert got == pytest.approx(-1 if np.isnan(want) else want, abs=1e-12)
        sky = cmp.per_class[3]
        assert sky.class_id == 9 and sky.iou_delta < 0 and sky.candidate.predicted > sky.baseline.predicted
        # a regression test on the rear camera: the mean IoU holds for segformer, not for the worse model
        rear = [f for f, cam in zip(ids, cameras, strict=True) if cam == "rear"]
        keep = [i for i, cam in enumerate(cameras) if cam == "rear"]
        want = {
            name: _miou([labels[i] for i in keep], [p[i] for i in keep])
            for name, p in (("segformer", preds), ("worse", worse))
        }
        minimum = (want["segformer"][0] + want["worse"][0]) / 2
        c.analysis.CreateSegment(apb.CreateSegmentRequest(project=project, frame_ids=rear, segment=apb.Segment(
            name="rear-rt", dataset="val", kind=apb.SEGMENT_KIND_REGRESSION_TEST,
            gates=[apb.Gate(metric="mean_iou", minimum=minimum), apb.Gate(metric="iou", class_id=3, minimum=0.5)])))  # fmt: skip
        for name, passed in (("segformer", True), ("worse", False)):
            res = c.analysis.EvaluateGates(apb.EvaluateGatesRequest(project=project, inference_set=name)).results
            assert [g.gate.metric for g in res] == ["mean_iou", "iou"]
            assert res[0].value == pytest.approx(want[name][0]) and res[0].passed is passed, name
            assert res[1].value == pytest.approx(want[name][1][0]) and res[0].frames == len(rear)
        with pytest.raises(grpc.RpcError) as info:
            c.analysis.CreateSegment(apb.CreateSegmentRequest(project=project, frame_ids=rear, segment=apb.Segment(
                name="bad-rt", dataset="val", kind=apb.SEGMENT_KIND_REGRESSION_TEST,
                gates=[apb.Gate(metric="accuracy", minimum=0.5)])))  # fmt: skip
        assert "mean_iou, pixel_accuracy, iou" in info.value.details()


def test_slices_by_camera_in_pixels_with_frames_as_clusters(shared: Running, media: pathlib.Path, project: str) -> None:
    labels, preds, cameras = _data(60, 7)
    rng = np.random.default_rng(8)
    for i, cam in enumerate(cameras):
        if cam == "rear":  # the rear camera's frames: a third of their pixels wrong
            preds[i] = np.where(rng.random(preds[i].shape) < 0.33, 5, preds[i]).astype(np.uint16)
    _upload(shared, media, project, labels, preds, cameras)
    with shared.client(shared.admin_key) as c:
        got = c.analysis.GetSlices(apb.GetSlicesRequest(project=project, inference_set="segformer",
                                                        group_by="metadata.camera", min_support=10))  # fmt: skip
    ok = [y != NONE for y in labels]
    right = np.array([int((q == y)[k].sum()) for y, q, k in zip(labels, preds, ok, strict=True)])
    pixels = np.array([int(k.sum()) for k in ok])
    assert got.pixels == pixels.sum() and got.overall_accuracy == pytest.approx(right.sum() / pixels.sum())
    by = {s.value: s for s in got.slices}
    assert sorted(by) == ["front", "rear"]
    for cam, s in by.items():
        keep = [i for i, x in enumerate(cameras) if x == cam]
        x, y = pixels[keep], right[keep]
        a = y.sum() / x.sum()
        se = np.sqrt(len(keep) / (len(keep) - 1) * ((y - a * x) ** 2).sum()) / x.sum()
        assert (s.frames, s.pixels, s.correct) == (len(keep), x.sum(), y.sum())
        assert s.accuracy == pytest.approx(a) and s.interval_lower == pytest.approx(max(0, a - 1.959963984540054 * se))
        assert s.mean_iou == pytest.approx(_miou([labels[i] for i in keep], [preds[i] for i in keep])[0])
    assert [s.value for s in got.worst] == ["rear"] and got.worst[0].drop > 0.15


def test_label_issues_job_finds_planted_errors_and_names_frames_it_cannot_read(
    shared: Running, media: pathlib.Path, project: str
) -> None:
    """Per-pixel probabilities as .npy files at URIs: frames with an object relabeled, erased or a
    region painted come first, their flagged pixels where the error is; the image scores and flags
    are the kernel's (itself equal to cleanlab.segmentation); a frame without probabilities and
    one whose file is not a .npy are left out and named."""
    from shoal.analysis import segmentation_issues as si
    from tests.unit.test_segmentation_issues import K, dataset

    labels, probs = dataset(n=30, seed=3)
    planted = {4: "swap", 11: "erase", 19: "paint"}
    for i, kind in planted.items():
        y = labels[i]
        if kind == "paint":
            y[2:12, 3:15] = (int(np.bincount(y.ravel()).argmax()) + 1) % K
        else:
            c = int(np.unique(y[y > 0])[0])
            y[y == c] = 0 if kind == "erase" else (c % (K - 1)) + 1
    ids = [f"m-{i:02d}" for i in range(len(labels))]
    folder = media / project
    folder.mkdir()
    uris = []
    for i, p in enumerate(probs):
        path = folder / f"{ids[i]}.npy"
        np.save(path, p.astype(np.float16))
        uris.append(path.as_uri())
    uris[0] = ""
    (folder / "broken.npy").write_text("not an array")
    uris[1] = (folder / "broken.npy").as_uri()
    h, w = labels.shape[1:]
    with shared.client(shared.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=project, task_type=pb.TASK_TYPE_SEGMENTATION, classes=[pb.ClassDef(id=20 + k, name=f"c{k}") for k in range(K)])))  # fmt: skip
        c.ingest.CreateDataset(
            pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(name="val", kind=pb.DATASET_KIND_LABELED))
        )
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=project, inference_set=pb.InferenceSet(
            name="unet", dataset="val", model_name="unet", model_version="1")))  # fmt: skip
        for cols in (
            UploadColumns(frame_ids=ids, sizes=[(w, h)] * len(ids), label_maps=[(y + 20).astype(np.uint16) for y in labels]),
            UploadColumns(frame_ids=ids, inference_set="unet", skip_frames=True, probability_uris=uris,
                          predicted_maps=[(p.argmax(0) + 20).astype(np.uint16) for p in probs]),
        ):  # fmt: skip
            r = c.upload(project, "val", cols, progress=False)
            assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        job = c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(project=project, inference_set="unet")).job
        finish_job(c, project, job)
        got = c.analysis.QuerySegmentationIssues(apb.QuerySegmentationIssuesRequest(
            project=project, job_id=job.job_id, all_frames=True, page=cpb.PageRequest(page_size=100)))  # fmt: skip
        with pytest.raises(grpc.RpcError) as info:
            c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(project=project, inference_set="unet",
                                                                    outline_tolerance=-1))  # fmt: skip
        assert error_detail(info.value).field == "outline_tolerance"
    s = got.summary
    assert (s.frames, s.without_probabilities, s.unreadable, s.outline_tolerance) == (28, 1, 1, 2)
    assert (
        s.failures[0] == "m-00: no probabilities_uri" and s.failures[1].startswith("m-01: ") and ".npy" in s.failures[1]
    )
    order = [x.ref.frame_id for x in got.issues]
    assert set(order[:3]) == {ids[i] for i in planted} and all(x.is_issue for x in got.issues[:3])
    # the same as the kernel on the frames it could read (float16, as stored)
    keep = list(range(2, len(labels)))
    want = si.find(lambda: ((labels[i], probs[i].astype(np.float16)) for i in keep), classes=K, tolerance=2)
    by = {x.ref.frame_id: x for x in got.issues}
    for j, i in enumerate(keep):
        x = by[ids[i]]
        assert x.score == pytest.approx(want.scores[j], abs=1e-6)
        assert (x.flagged_pixels, x.core_pixels, x.is_issue) == (
            want.issues[j].flagged,
            want.issues[j].core,
            want.issues[j].is_issue,
        )
        if x.flagged_pixels:
            drawn = masks.decode(masks.from_string(x.flagged_mask), h, w).astype(bool)
            assert np.array_equal(drawn, want.issues[j].mask())
    with shared.client(shared.admin_key) as c:  # dismissed frames leave the pages until relabeled
        c.analysis.DismissLabelIssues(apb.DismissLabelIssuesRequest(project=project, job_id=job.job_id,
                                                                    frame_ids=[order[0]], reason="fine"))  # fmt: skip
        again = c.analysis.QuerySegmentationIssues(apb.QuerySegmentationIssuesRequest(
            project=project, job_id=job.job_id, page=cpb.PageRequest(page_size=100)))  # fmt: skip
        assert order[0] not in [x.ref.frame_id for x in again.issues] and again.dismissed_count == 1
        with pytest.raises(grpc.RpcError) as info:
            c.analysis.DismissLabelIssues(apb.DismissLabelIssuesRequest(project=project, job_id=job.job_id,
                                                                        frame_ids=["m-00"]))  # fmt: skip
        assert "examined" in info.value.details()  # no probabilities: the job did not judge it
    swap = by[ids[4]]
    assert swap.worst_class - 20 == int(np.unique(labels[4][labels[4] > 0])[0]) or swap.suggested_class >= 20
