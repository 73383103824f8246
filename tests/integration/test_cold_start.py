"""A fresh `shoal serve` on a machine whose compiled-kernel cache is empty: the kernels compile on the
warm-up thread as the server starts, and its first neighbour job and first map then compile nothing
(numba's compilations are counted in the process's Prometheus metrics)."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.client import Client
from shoal.common.auth import generate_key
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import UploadColumns
from tests.harness._wait import process_exit
from tests.integration.test_serve_process import _free_port, _serving, _spawn
from tests.server.conftest import create_pixel_digits, finish_job, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.own_kernel_cache]


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    found = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_a_fresh_servers_first_neighbour_job_and_map_compile_nothing(tmp_path: Path) -> None:
    port, metrics_port = _free_port(), _free_port()
    target = f"127.0.0.1:{port}"
    _, key = generate_key()
    log = tmp_path / "serve.log"
    proc = _spawn(
        ["serve", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        {
            "SHOAL_ADMIN_API_KEY": key,
            "SHOAL_METRICS_PORT": str(metrics_port),
            # nothing compiled yet on this machine, as on a first start
            "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache"),
        },
        log,
    )
    try:
        _serving(target, proc, log)
        wait_for(lambda: _metric(metrics_port, "shoal_kernels_warm") == 1.0, timeout=600,
                 what="the kernels to be warm", dead=process_exit(proc, "shoal serve", log))  # fmt: skip
        assert _metric(metrics_port, "shoal_kernel_compilations_total") > 0, "the warm-up compiled the kernels"
        assert any((tmp_path / "numba-cache").rglob("*.nbi")), "and kept them in the disk cache"

        x, y = load_digits(return_X_y=True)
        ids = [f"d{i:05d}" for i in range(len(y))]
        with Client(target, api_key=key) as c:
            create_pixel_digits(c, "digits")
            c.ingest.CreateDataset(pb.CreateDatasetRequest(project="digits", dataset=pb.Dataset(
                name="all", kind=pb.DATASET_KIND_LABELED, splits=["train"])))  # fmt: skip
            r = c.upload("digits", "all", UploadColumns(frame_ids=ids, splits=["train"] * len(ids), class_ids=y,
                                                         embeddings={"pixels": x.astype(np.float32)}),
                         progress=False)  # fmt: skip
            assert c.wait_for_upload("digits", r.upload_id, timeout=300).state == pb.UPLOAD_STATE_COMPLETED
            before = _metric(metrics_port, "shoal_kernel_compilations_total")
            neighbours = finish_job(c, "digits", c.analysis.StartNeighborAnalysis(apb.StartNeighborAnalysisRequest(
                project="digits", dataset="all", embedding_space="pixels")).job)  # fmt: skip
            mapped = finish_job(c, "digits", c.analysis.StartEmbeddingMap(apb.StartEmbeddingMapRequest(
                project="digits", dataset="all", embedding_space="pixels")).job)  # fmt: skip
            outliers = c.analysis.QueryOutliers(apb.QueryOutliersRequest(project="digits", job_id=neighbours.job_id))
            assert outliers.summary.frames == len(ids)
            assert mapped.job_id
        assert _metric(metrics_port, "shoal_kernel_compilations_total") == before, (
            "a job compiled a kernel the warm-up had not loaded"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_a_server_stopped_while_its_kernels_compile_exits_cleanly(tmp_path: Path) -> None:
    """A SIGTERM while the warm-up still compiles (a rolling restart right after a start): the server stops as
    always and its process ends with 0, without waiting for the compilation and without being aborted inside
    the compiler as the interpreter finalizes under it."""
    port, metrics_port = _free_port(), _free_port()
    target = f"127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    proc = _spawn(
        ["serve", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        {"SHOAL_METRICS_PORT": str(metrics_port), "SHOAL_DRAIN_SECONDS": "0.5", "SHOAL_GRACE_SECONDS": "2",
         "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")},  # nothing compiled yet: the warm-up takes a minute
        log,
    )  # fmt: skip
    try:
        _serving(target, proc, log)
        assert _metric(metrics_port, "shoal_kernels_warm") == 0.0, "the warm-up is still compiling"
        proc.terminate()
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert "the process ends without waiting for it" in text and "stopped\n" in text
