"""The embedding map through the server: every frame placed, digits kept apart in 2-D, viewports
that return exactly what they contain, and level-of-detail sampling that is stable when zooming."""

from __future__ import annotations

import grpc
import numpy as np
import pyarrow as pa
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from shoal.analysis.prepared import MAP_POINTS
from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import UploadColumns
from tests.server.conftest import Running, computed_answers, create_pixel_digits, finish_job, preparer_of, wait_for


def _upload(running: Running, p: str, datasets: tuple[str, ...] = ("all",)) -> tuple[list[str], np.ndarray]:
    x, y = load_digits(return_X_y=True)
    ids = [f"f{i:05d}" for i in range(len(y))]
    with running.client(running.admin_key) as c:
        create_pixel_digits(c, p)
        for name in datasets:
            c.ingest.CreateDataset(pb.CreateDatasetRequest(project=p, dataset=pb.Dataset(
                name=name, kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
            r = c.upload(p, name, UploadColumns(frame_ids=ids, class_ids=y,
                                                embeddings={"pixels": x.astype(np.float32)}), progress=False)  # fmt: skip
            assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
    return ids, y


def test_the_map_places_every_frame_and_serves_viewports(shared: Running, project: str) -> None:
    running, p = shared, project
    ids, y = _upload(running, p)
    with running.client(running.admin_key) as c:
        job = c.analysis.StartEmbeddingMap(apb.StartEmbeddingMapRequest(
            project=p, dataset="all", embedding_space="pixels", sample_size=1000)).job  # fmt: skip
        job = finish_job(c, p, job, timeout=300)
        whole = c.analysis.GetMapViewport(apb.GetMapViewportRequest(project=p, job_id=job.job_id,
                                                                    max_points=5000))  # fmt: skip
        s = whole.summary
        assert s.frames == len(ids) == whole.total_in_viewport == len(whole.points) and s.fitted_on == 1000
        pts = {p.frame_id: p for p in whole.points}
        xy = np.array([[pts[f].x, pts[f].y] for f in ids])
        assert np.isfinite(xy).all() and [pts[f].label_class for f in ids] == list(y)
        # the 2-D map keeps the digits apart, for fitted and placed frames alike
        acc = cross_val_score(KNeighborsClassifier(5), xy, y, cv=5).mean()
        print(f"5-NN accuracy in the map: {acc:.3f}")
        assert acc > 0.9

        # a viewport returns exactly the points inside it
        x0, x1 = np.quantile(xy[:, 0], [0.2, 0.6])
        y0, y1 = np.quantile(xy[:, 1], [0.1, 0.9])
        inside = {f for f, (px, py) in zip(ids, xy, strict=True) if x0 <= px <= x1 and y0 <= py <= y1}
        view = c.analysis.GetMapViewport(apb.GetMapViewportRequest(project=p, job_id=job.job_id, min_x=x0,
                                                                   max_x=x1, min_y=y0, max_y=y1, max_points=5000))  # fmt: skip
        assert {p.frame_id for p in view.points} == inside and view.total_in_viewport == len(inside)
        # level of detail: a budget gives a sample, and what the whole map shows stays when zooming in
        coarse = c.analysis.GetMapViewport(apb.GetMapViewportRequest(project=p, job_id=job.job_id,
                                                                     max_points=200))  # fmt: skip
        assert len(coarse.points) == 200 and coarse.total_in_viewport == len(ids)
        zoom = c.analysis.GetMapViewport(apb.GetMapViewportRequest(project=p, job_id=job.job_id, min_x=x0,
                                                                   max_x=x1, min_y=y0, max_y=y1, max_points=200))  # fmt: skip
        shown = {p.frame_id for p in coarse.points} & inside
        assert shown <= {p.frame_id for p in zoom.points} and len(zoom.points) == min(200, len(inside))
        with pytest.raises(grpc.RpcError) as info:
            c.analysis.GetMapViewport(apb.GetMapViewportRequest(project=p, job_id=job.job_id, min_x=2,
                                                                max_x=1, max_y=1))  # fmt: skip
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        # the whole map as the console's map asks for it (an Arrow table of its first 20,000 points) is prepared
        # once the job has finished: its first call reads nothing, and holds the points the message form holds
        preparer = preparer_of(running)
        wait_for(lambda: preparer.job_prepared(p, job.job_id), what="the whole map to be prepared")
        computed = computed_answers()
        console = c.analysis.GetMapViewport(apb.GetMapViewportRequest(project=p, job_id=job.job_id,
                                                                      max_points=MAP_POINTS, arrow=True))  # fmt: skip
        assert computed_answers() == computed
        table = pa.ipc.open_stream(console.points_arrow).read_all()
        assert not console.points and console.total_in_viewport == len(ids)
        assert table.column("frame_id").to_pylist() == [q.frame_id for q in whole.points]
        assert table.column("x").to_pylist() == [q.x for q in whole.points]
        assert table.column("label_class").to_pylist() == [q.label_class for q in whole.points]


def _points(c, p: str, job_id: str) -> tuple[apb.MapSummary, dict[str, tuple[float, float, int]]]:  # type: ignore[no-untyped-def]
    whole = c.analysis.GetMapViewport(apb.GetMapViewportRequest(project=p, job_id=job_id, max_points=5000))
    return whole.summary, {q.frame_id: (q.x, q.y, q.label_class) for q in whole.points}


def test_a_map_split_over_shards_is_the_map_of_one_process(
    shared: Running, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three shards each fit the same sample and place a third of the other frames (shard 0 stores the fitted
    ones too), reading the sample's vectors and their own third's only; the run that finishes the job checks
    that every shard fitted the same map and sums it up. The points are those of the job in one process, to the
    bit. A shard that fitted a different map fails the job, by name."""
    from shoal.analysis import embedding_map
    from shoal.common import jobs

    running, p = shared, project
    ids, y = _upload(running, p, ("all", "split"))
    with running.client(running.admin_key) as c:
        job = c.analysis.StartEmbeddingMap(apb.StartEmbeddingMapRequest(
            project=p, dataset="all", embedding_space="pixels", sample_size=1000)).job  # fmt: skip
        whole, expected = _points(c, p, finish_job(c, p, job, timeout=300).job_id)

    service = next(w for s in running.server.specs for w in s.workers
                   if isinstance(w, jobs.JobRunner) and w.store.service == "analysis")  # fmt: skip
    pod = jobs.JobRunner(service.store, service.kinds)
    store = running.server.stores.vectors
    real_get = store.get
    read: list[tuple[int, bool]] = []

    def get(collection: str, ids: list[str], *, with_vectors: bool = True) -> object:
        read.append((len(ids), with_vectors))
        return real_get(collection, ids, with_vectors=with_vectors)

    params = {"dataset": "split", "embedding_space": "pixels", "sample_size": "1000"}
    assert embedding_map.shards_for(len(ids), 1000, 4) == 1  # 797 frames to place: one shard is plenty
    monkeypatch.setattr(embedding_map, "SHARD_FRAMES", 300)
    assert embedding_map.shards_for(len(ids), 1000, 4) == 3

    def run_shards(job: jobs.Job) -> list[int]:
        vectors_read = []
        for shard in range(3):
            read.clear()
            monkeypatch.setattr(store, "get", get)
            assert pod.run_shard(p, job.job_id, jobs.revision(job), shard, 3)
            monkeypatch.setattr(store, "get", real_get)
            vectors_read.append(sum(m for m, with_vectors in read if with_vectors))
        return vectors_read

    # a shard that fitted another map (as on a node of another CPU type): the job fails and says which
    job, _ = service.store.submit(p, embedding_map.KIND, params)
    run_shards(job)
    running.server.stores.metrics.insert_arrow(embedding_map.PARTS, pa.table({
        "project": [p], "job_id": [job.job_id], "shard": pa.array([1], pa.uint32()),
        "shards": pa.array([3], pa.uint32()), "fit_digest": ["another fit"], "placed": pa.array([266], pa.uint64()),
    }))  # fmt: skip
    failed = pod.run_one(p, job.job_id, expect=jobs.revision(job), shards=3)
    assert failed.state == jobs.FAILED and "shards [1] fitted a different map from shard 0" in failed.message

    job, created = service.store.submit(p, embedding_map.KIND, params)
    assert created
    # each shard: the 1,000 fitted frames' vectors and its third of the other 797
    assert run_shards(job) == [1000 + 265, 1000 + 266, 1000 + 266]
    done = pod.run_one(p, job.job_id, expect=jobs.revision(job), shards=3)
    assert done.state == jobs.SUCCEEDED, done.message
    with running.client(running.admin_key) as c:
        split, got = _points(c, p, job.job_id)
    assert got == expected and [got[f][2] for f in ids] == list(y)
    assert (split.frames, split.fitted_on, split.min_x, split.max_x, split.min_y, split.max_y) == (
        whole.frames, whole.fitted_on, whole.min_x, whole.max_x, whole.min_y, whole.max_y)  # fmt: skip
    left = running.server.stores.metrics.query(
        f"SELECT count() FROM {embedding_map.PARTS} WHERE project = {{p:String}} AND job_id = {{j:String}}",
        {"p": p, "j": job.job_id},
    ).rows[0][0]
    assert left == 0
