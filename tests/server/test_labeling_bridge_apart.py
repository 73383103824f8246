"""The labeling bridge as a server of its own (as in a Kubernetes pod) beside a second server that runs
ingest, analysis and the sampler on the same chDB database: SendForLabeling reads a label-issues job
from analysis and a campaign from the sampler over gRPC, with the caller's own API key, so a key of
another project is refused, an unknown job keeps the request's field, and an unreachable analysis is
answered UNAVAILABLE naming it and where it was looked for."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.app import build_server
from shoal.client import Client
from shoal.common.interceptors import ERROR_DETAIL_KEY
from shoal.common.server import ShoalServer
from shoal.common.settings import ShoalSettings
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.labeling_bridge import owners
from shoal.labeling_bridge.v1 import labeling_bridge_pb2 as lpb
from shoal.sampler.v1 import sampler_pb2 as spb
from shoal.sdk import UploadColumns
from tests.conftest import server_settings
from tests.server.conftest import finish_job, wait_for

FRAMES = 30
NOISY = (4, 11, 19)
POOL = 40
BUDGET = 6
#: a platform nobody listens at: requests are recorded and wait
PLATFORM = {"label_studio_url": "http://127.0.0.1:9", "label_studio_token": "unused"}


def _start(settings: ShoalSettings, services: list[str]) -> tuple[ShoalServer, str]:
    server = build_server(settings, services)
    target = f"127.0.0.1:{server.start()}"
    with Client(target) as c:
        wait_for(lambda: c.health_status() == "SERVING", what=f"the server on {target} to be SERVING",
                 progress=lambda: tuple(sorted(server.status().items())))  # fmt: skip
    return server, target


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _upload(c: Client) -> None:
    """ "shop": "train" with labels and out-of-sample probabilities (NOISY frames suggest another class),
    "pool" with vectors and a model's probabilities."""
    space = pb.EmbeddingSpace(name="e", dimension=8, metric=pb.DISTANCE_METRIC_COSINE,
                              level=pb.EMBEDDING_LEVEL_FRAME, model_name="m", model_version="1")  # fmt: skip
    c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
        name="shop", task_type=pb.TASK_TYPE_CLASSIFICATION,
        classes=[pb.ClassDef(id=i, name=n) for i, n in enumerate(("cone", "car", "sign"))],
        embedding_spaces=[space])))  # fmt: skip
    for name, kind in (("train", pb.DATASET_KIND_LABELED), ("pool", pb.DATASET_KIND_UNLABELED_POOL)):
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project="shop", dataset=pb.Dataset(name=name, kind=kind)))
    for name, dataset in (("oof", "train"), ("model", "pool")):
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project="shop", inference_set=pb.InferenceSet(
            name=name, dataset=dataset, model_name="net", model_version="1")))  # fmt: skip
    labels = [i % 3 for i in range(FRAMES)]
    probs = np.full((FRAMES, 3), 0.09, dtype=np.float32)
    for i, label in enumerate(labels):
        probs[i, label] = 0.82
        if i in NOISY:
            probs[i, label], probs[i, (label + 1) % 3] = 0.09, 0.82
    rng = np.random.default_rng(3)
    pool_probs = rng.dirichlet(np.ones(3), POOL).astype(np.float32)
    for dataset, columns in (
        ("train", UploadColumns(frame_ids=[f"t{i:02d}" for i in range(FRAMES)], class_ids=labels,
                                inference_set="oof", probabilities=probs)),
        ("pool", UploadColumns(frame_ids=[f"p{i:02d}" for i in range(POOL)], inference_set="model",
                               probabilities=pool_probs,
                               embeddings={"e": rng.normal(0, 1, (POOL, 8)).astype(np.float32)})),
    ):  # fmt: skip
        r = c.upload("shop", dataset, columns, progress=False)
        assert c.wait_for_upload("shop", r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED


class Apart:
    def __init__(self, owning: tuple[ShoalServer, str], bridge: tuple[ShoalServer, str], keys: dict[str, str],
                 settings: ShoalSettings) -> None:  # fmt: skip
        (self.owners, self.owners_target), (self.bridge, self.bridge_target) = owning, bridge
        self.keys = keys
        self.settings = settings


@pytest.fixture(scope="module")
def apart(tmp_path_factory: pytest.TempPathFactory, chdb_path: Path) -> Iterator[Apart]:
    database = f"t_{uuid.uuid4().hex[:12]}"
    root = tmp_path_factory.mktemp("apart")
    owning = _start(server_settings(root / "owners", chdb_path, database), ["ingest", "analysis", "sampler"])
    settings = server_settings(root / "bridge", chdb_path, database, analysis_target=owning[1],
                               sampler_target=owning[1], **PLATFORM)  # fmt: skip
    try:
        bridge = _start(settings, ["labeling_bridge"])
    except BaseException:
        owning[0].stop(grace=1)
        raise
    _, admin = owning[0].keys.create(["*"], description="test admin")
    _, shop = owning[0].keys.create(["shop"], description="shop only")
    _, other = owning[0].keys.create(["elsewhere"], description="another project")
    with Client(owning[1], api_key=admin) as c:
        _upload(c)
    yield Apart(owning, bridge, {"admin": admin, "shop": shop, "other": other}, settings)
    bridge[0].stop(grace=1)
    owning[0].stop(grace=1)


def _refused(call: Any) -> tuple[grpc.StatusCode, str, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    err = info.value
    field = next((cpb.ErrorDetail.FromString(v).field for k, v in err.trailing_metadata() or ()
                  if k == ERROR_DETAIL_KEY), "")  # fmt: skip
    return err.code(), err.details(), field


def test_a_bridge_on_its_own_reads_label_issues_with_the_callers_key(
    apart: Apart, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(owners, "PAGE_SIZE", 2)  # the job's issues come over two pages
    with Client(apart.owners_target, api_key=apart.keys["admin"]) as c:
        job = finish_job(c, "shop", c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(
            project="shop", inference_set="oof")).job)  # fmt: skip
    with Client(apart.bridge_target, api_key=apart.keys["shop"]) as c:
        sent = c.labeling_bridge.SendForLabeling(lpb.SendForLabelingRequest(
            project="shop", label_issues=lpb.LabelIssuesSource(job_id=job.job_id), requested_by="ana"))  # fmt: skip
        assert sent.request.frames == len(NOISY) and sent.request.dataset == "train"
        assert sent.request.source == f"label_issues:{job.job_id}"
        items = c.labeling_bridge.ListLabelingItems(lpb.ListLabelingItemsRequest(
            project="shop", request_id=sent.request.request_id)).items  # fmt: skip
        names = ("cone", "car", "sign")
        assert {i.ref.frame_id: i.reason for i in items} == {
            f"t{n:02d}": f"label issue: labeled {names[n % 3]}, the model suggests {names[(n + 1) % 3]} (p 0.82)"
            for n in NOISY
        }
        # at most max_frames of them, worst first
        two = c.labeling_bridge.SendForLabeling(lpb.SendForLabelingRequest(
            project="shop", label_issues=lpb.LabelIssuesSource(job_id=job.job_id, max_frames=2)))  # fmt: skip
        assert two.request.frames == 2
        # the owner's refusals keep the request's field
        code, message, field = _refused(lambda: c.labeling_bridge.SendForLabeling(lpb.SendForLabelingRequest(
            project="shop", label_issues=lpb.LabelIssuesSource(job_id="no-such-job"))))  # fmt: skip
        assert (code, field) == (grpc.StatusCode.NOT_FOUND, "label_issues.job_id") and "no-such-job" in message
    # a key of another project is refused
    with Client(apart.bridge_target, api_key=apart.keys["other"]) as c:
        code, message, _ = _refused(lambda: c.labeling_bridge.SendForLabeling(lpb.SendForLabelingRequest(
            project="shop", label_issues=lpb.LabelIssuesSource(job_id=job.job_id))))  # fmt: skip
        assert code == grpc.StatusCode.PERMISSION_DENIED and "shop" in message


def test_a_bridge_on_its_own_sends_a_campaign_by_rank(apart: Apart) -> None:
    with Client(apart.owners_target, api_key=apart.keys["admin"]) as c:
        job = c.sampler.StartCampaign(spb.StartCampaignRequest(
            project="shop", name="next", pool_dataset="pool", embedding_space="e", budget=BUDGET,
            uncertainty_inference_set="model")).job  # fmt: skip
        c.wait_for_job("shop", job.job_id, service="sampler", timeout=120, progress=False)
        ranked = c.sampler.GetCampaign(spb.GetCampaignRequest(project="shop", job_id=job.job_id)).items
    with Client(apart.bridge_target, api_key=apart.keys["shop"]) as c:
        sent = c.labeling_bridge.SendForLabeling(lpb.SendForLabelingRequest(project="shop",
                                                                            campaign_job_id=job.job_id))  # fmt: skip
        assert (sent.request.frames, sent.request.dataset) == (BUDGET, "pool")
        assert sent.request.reason.startswith(f"collection campaign {job.job_id}: ")
        items = c.labeling_bridge.ListLabelingItems(lpb.ListLabelingItemsRequest(
            project="shop", request_id=sent.request.request_id)).items  # fmt: skip
        assert {i.ref.frame_id for i in items} == {i.ref.frame_id for i in ranked}
        # the sampler's refusal keeps the request's field
        code, _, field = _refused(lambda: c.labeling_bridge.SendForLabeling(lpb.SendForLabelingRequest(
            project="shop", campaign_job_id="campaign-nope")))  # fmt: skip
        assert (code, field) == (grpc.StatusCode.NOT_FOUND, "campaign_job_id")


def test_an_unreachable_analysis_is_unavailable_naming_it(apart: Apart) -> None:
    nowhere = f"127.0.0.1:{_closed_port()}"
    settings = apart.settings.model_copy(update={"analysis_target": nowhere, "data_dir": apart.settings.data_dir
                                                 .with_name("bridge-nowhere")})  # fmt: skip
    server, target = _start(settings, ["labeling_bridge"])
    try:
        with Client(target, api_key=apart.keys["shop"]) as c:
            code, message, field = _refused(lambda: c.labeling_bridge.SendForLabeling(lpb.SendForLabelingRequest(
                project="shop", label_issues=lpb.LabelIssuesSource(job_id="any"))))  # fmt: skip
        assert code == grpc.StatusCode.UNAVAILABLE and "analysis" in message and nowhere in message
        assert field == "label_issues.job_id"
    finally:
        server.stop(grace=1)
