"""Drift through the server: no drift between two halves of one distribution, clear drift when
new digits appear (between datasets and between capture-time windows), and the region that
changed is where the new digits are."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sklearn.datasets import load_digits

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import UploadColumns
from tests.server.conftest import Running, create_pixel_digits, finish_job

DAY1, DAY2 = datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 5, 2, tzinfo=UTC)


def _ts(d: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(d)
    return t


def _setup(running: Running, p: str) -> dict[str, int]:
    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    rng = np.random.default_rng(0)
    old = rng.permutation(np.flatnonzero(y < 8))
    new = np.flatnonzero(y >= 8)
    half = len(old) // 2
    sets = {"a": old[:half], "same": old[half:], "shifted": np.concatenate([old[half:], new])}
    with running.client(running.admin_key) as c:
        create_pixel_digits(c, p)
        for name, rows in [*sets.items(), ("stream", np.concatenate([old[:half], old[half:], new]))]:
            c.ingest.CreateDataset(pb.CreateDatasetRequest(project=p, dataset=pb.Dataset(
                name=name, kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
            times = None
            if name == "stream":  # day 1: half of the old digits; day 2: the other half and the new ones
                times = [DAY1 if i < half else DAY2 for i in range(len(rows))]
            r = c.upload(p, name, UploadColumns(
                frame_ids=[f"f{i:05d}" for i in rows], class_ids=y[rows], capture_times=times,
                embeddings={"pixels": x[rows]}), progress=False)  # fmt: skip
            assert c.wait_for_upload(p, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
    return {f"f{i:05d}": int(y[i]) for i in range(len(y))}


def _drift(c, p: str, a: apb.DriftSide, b: apb.DriftSide) -> apb.GetDriftResponse:  # type: ignore[no-untyped-def]
    job = c.analysis.StartDrift(apb.StartDriftRequest(project=p, a=a, b=b, embedding_space="pixels")).job
    job = finish_job(c, p, job)
    return c.analysis.GetDrift(apb.GetDriftRequest(project=p, job_id=job.job_id))


def test_drift_between_datasets_and_time_windows(
    shared: Running, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, p = shared, project
    truth = _setup(running, p)
    with running.client(running.admin_key) as c:
        same = _drift(c, p, apb.DriftSide(dataset="a"), apb.DriftSide(dataset="same"))
        shifted = _drift(c, p, apb.DriftSide(dataset="a"), apb.DriftSide(dataset="shifted"))
        window = _drift(c, p, apb.DriftSide(dataset="stream", until=_ts(DAY2)),
                        apb.DriftSide(dataset="stream", since=_ts(DAY2)))  # fmt: skip
        with pytest.raises(grpc.RpcError) as info:
            c.analysis.StartDrift(apb.StartDriftRequest(project=p, a=apb.DriftSide(dataset="a"),
                                                        b=apb.DriftSide(dataset=""), embedding_space="pixels"))  # fmt: skip
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "b.dataset" in info.value.details()
    print(f"no drift: p={same.p_value:.3f} z={same.z_score:.2f}; new digits: p={shifted.p_value:.4f}"
          f" z={shifted.z_score:.1f}; window: p={window.p_value:.4f} z={window.z_score:.1f}")  # fmt: skip
    # two halves of one distribution: nothing to report
    assert same.p_value > 0.05 and abs(same.statistic - same.expected) < 0.05
    # new digits: significant, and the region that changed most is made of them
    for result in (shifted, window):
        assert result.p_value < 0.01 and result.statistic > result.expected
        top = result.regions[0]
        assert top.shift > 0 and top.frames_b > top.frames_a
        assert sum(truth[f] >= 8 for f in top.examples_b) >= 0.8 * len(top.examples_b)
    assert (shifted.frames_a, shifted.frames_b) == (len([1 for v in truth.values() if v < 8]) // 2,
                                                    shifted.frames_b)  # fmt: skip

    # a sample smaller than the datasets: the job reads which frames have a vector, and the vectors of its
    # sample only (at 10M frames a side, 2 x 20,000 vectors instead of 20M), and still finds the drift
    store, read = running.server.stores.vectors, []
    real_get = store.get

    def get(collection: str, ids: list[str], *, with_vectors: bool = True) -> Any:
        read.append((len(ids), with_vectors))
        return real_get(collection, ids, with_vectors=with_vectors)

    monkeypatch.setattr(store, "get", get)
    with running.client(running.admin_key) as c:
        job = c.analysis.StartDrift(apb.StartDriftRequest(project=p, a=apb.DriftSide(dataset="a"),
                                                          b=apb.DriftSide(dataset="shifted"),
                                                          embedding_space="pixels", sample_size=300)).job  # fmt: skip
        sampled = c.analysis.GetDrift(apb.GetDriftRequest(project=p, job_id=finish_job(c, p, job).job_id))
    monkeypatch.setattr(store, "get", real_get)
    assert (sampled.frames_a, sampled.frames_b) == (300, 300)
    assert sum(m for m, with_vectors in read if with_vectors) == 600
    assert sum(m for m, with_vectors in read if not with_vectors) == shifted.frames_a + shifted.frames_b
    assert sampled.p_value < 0.01 and sampled.statistic > sampled.expected
