"""The embedding map through the server: every frame placed, digits kept apart in 2-D, viewports
that return exactly what they contain, and level-of-detail sampling that is stable when zooming."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import UploadColumns
from tests.server.conftest import Running, create_pixel_digits, finish_job


def _upload(running: Running, p: str) -> tuple[list[str], np.ndarray]:
    x, y = load_digits(return_X_y=True)
    ids = [f"f{i:05d}" for i in range(len(y))]
    with running.client(running.admin_key) as c:
        create_pixel_digits(c, p)
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project=p, dataset=pb.Dataset(
            name="all", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        r = c.upload(p, "all", UploadColumns(frame_ids=ids, class_ids=y, embeddings={"pixels": x.astype(np.float32)}),
                     progress=False)  # fmt: skip
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
