"""The findings page in a real Chromium: a neighbour job started from the page is followed live and
its outlier gallery and duplicate table show what QueryOutliers and QueryDuplicates rank first
(leaks across splits marked), a failure cluster is saved as a segment, and a drift job between two
capture-time windows shows GetDrift's result."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from PIL import Image

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import UploadColumns
from tests.console.conftest import Console, sign_in

pytestmark = pytest.mark.browser

PROJECT = "finds"
CLASSES = ("cat", "dog", "fox")
START = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass
class Finds:
    frame_ids: list[str]
    outliers: list[str]
    leaks: list[tuple[str, str]]
    mode: list[str]


def make_finds(console: Console, n: int = 600, mode: int = 80, seed: int = 2) -> Finds:
    """Three classes in a 16-d space (L2); ``mode`` dogs in a tight corner of the dog class, most of
    them foggy, all predicted fox (a failure cluster); three frames far from everything (outliers);
    four frames of the test split that repeat train frames exactly (leaks); a few random errors."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1, (3, 16)) * 3
    labels = rng.integers(0, 3, n)
    x = means[labels] + rng.normal(0, 1, (n, 16))
    predicted = labels.copy()
    wrong = rng.random(n) < 0.04
    predicted[wrong] = (labels[wrong] + 1) % 3
    labels[:mode], predicted[:mode] = 1, 2
    x[:mode] = means[1] + 12 * np.eye(16)[0] + rng.normal(0, 0.3, (mode, 16))
    weather = rng.choice(["sun", "rain", "fog"], n, p=[0.6, 0.32, 0.08])
    weather[: int(0.9 * mode)] = "fog"
    far = [n - 3, n - 2, n - 1]
    for i, j in enumerate(far):
        x[j] = means[labels[j]] + 40 * np.eye(16)[i + 1]
    splits = ["test" if i % 5 == 0 else "train" for i in range(n)]
    copies = [(101, 200), (111, 210), (121, 220), (131, 230)]  # (train frame, test frame)
    for src, dst in copies:
        x[dst], labels[dst], predicted[dst] = x[src], labels[src], predicted[src]
        splits[src], splits[dst] = "train", "test"
    probs = np.full((n, 3), 0.1, np.float32)
    probs[np.arange(n), predicted] = 0.8
    ids = [f"f-{i:04d}" for i in range(n)]
    media = console.media / PROJECT
    media.mkdir(parents=True, exist_ok=True)
    colours = [(230, 120, 20), (60, 60, 200), (20, 160, 60)]
    for fid, k in zip(ids, labels, strict=True):
        Image.new("RGB", (32, 32), colours[int(k)]).save(media / f"{fid}.png")
    space = pb.EmbeddingSpace(name="emb", dimension=16, metric=pb.DISTANCE_METRIC_L2,
                              level=pb.EMBEDDING_LEVEL_FRAME, model_name="enc", model_version="1")  # fmt: skip
    with console.client() as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=PROJECT, task_type=pb.TASK_TYPE_CLASSIFICATION,
            classes=[pb.ClassDef(id=i, name=s) for i, s in enumerate(CLASSES)], embedding_spaces=[space])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project=PROJECT, dataset=pb.Dataset(
            name="pets", kind=pb.DATASET_KIND_LABELED, splits=["train", "test"])))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=PROJECT, inference_set=pb.InferenceSet(
            name="net", dataset="pets", model_name="net", model_version="1")))  # fmt: skip
        cols = UploadColumns(
            frame_ids=ids,
            splits=splits,
            media_uris=[f"file://{media / fid}.png" for fid in ids],
            sizes=[(32, 32)] * n,
            metadata=[{"weather": str(w)} for w in weather],
            capture_times=[START + timedelta(hours=i) for i in range(n)],
            class_ids=labels,
            inference_set="net",
            probabilities=probs,
            embeddings={"emb": x.astype(np.float32)},
        )
        r = c.upload(PROJECT, "pets", cols, progress=False)
        assert c.wait_for_upload(PROJECT, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
    return Finds(ids, [ids[j] for j in far], [(ids[a], ids[b]) for a, b in copies], ids[:mode])


@pytest.fixture(scope="module")
def finds(console: Console) -> Finds:
    return make_finds(console)


def _ids(page: Any, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "els => els.map(e => e.dataset.frameId)")


def _param(page: Any, name: str) -> str:
    return page.evaluate(f"() => new URLSearchParams(location.hash.split('?')[1]).get('{name}')")


def test_a_neighbour_job_runs_from_the_page_and_shows_outliers_and_leaks(
    console: Console, finds: Finds, page: Any
) -> None:
    sign_in(page, console)
    page.goto(console.url + f"/#/p/{PROJECT}/findings")
    page.wait_for_selector("#neighbors-form")
    assert page.locator("#neighbors-result figure").count() == 0  # nothing has run yet
    page.fill("#nb-k", "8")
    page.click("#neighbors-run")
    # followed live: the panel lists the states it went through, ending in success at 100 %
    page.wait_for_selector("#neighbors-job[data-state='succeeded']")
    steps = page.locator("#neighbors-job-stages li").all_inner_texts()
    assert len(steps) >= 2 and steps[0].split(":")[0] in ("pending", "running") and steps[-1].startswith("succeeded")
    assert page.get_attribute("#neighbors-job [role=progressbar]", "aria-valuenow") == "100"
    job_id = _param(page, "neighbors")
    page.wait_for_selector("#outliers figure.thumb")
    shown = _ids(page, "#outliers figure.thumb")
    with console.client() as c:
        job = c.analysis.GetJob(apb.GetJobRequest(project=PROJECT, job_id=job_id)).job
        top = c.analysis.QueryOutliers(apb.QueryOutliersRequest(
            project=PROJECT, job_id=job_id, page=cpb.PageRequest(page_size=len(shown))))  # fmt: skip
        leaks = c.analysis.QueryDuplicates(apb.QueryDuplicatesRequest(
            project=PROJECT, job_id=job_id, cross_split_only=True, page=cpb.PageRequest(page_size=100)))  # fmt: skip
    assert job.state == cpb.JOB_STATE_SUCCEEDED and job.params["k"] == "8"
    assert shown == [f.ref.frame_id for f in top.frames] and len(shown) == 24
    assert set(shown[:3]) == set(finds.outliers)
    assert f"score {top.frames[0].outlier_score:.3f}" in page.inner_text("#outliers figure.thumb >> nth=0")

    # duplicates: the planted copies across splits are marked as leaks
    page.wait_for_selector("#duplicates tr.leak")
    leak_rows = page.eval_on_selector_all("#duplicates tr.leak", "els => els.map(e => [e.dataset.a, e.dataset.b])")
    assert {frozenset(p) for p in leak_rows} >= {frozenset(p) for p in finds.leaks}
    page.check("#leaks-only")
    page.wait_for_function("() => document.querySelectorAll('#duplicates tbody tr:not(.leak)').length === 0")
    only = page.eval_on_selector_all("#duplicates tbody tr", "els => els.map(e => [e.dataset.a, e.dataset.b])")
    assert only == [[p.a.frame_id, p.b.frame_id] for p in leaks.pairs]
    assert str(leaks.summary.cross_split_pairs) + " across splits" in page.inner_text("#neighbors-summary")

    # a gallery item opens the frame view
    page.click("#outliers a.thumb-link >> nth=0")
    page.wait_for_selector("#frame-facts")
    assert f"/frame/pets/{shown[0]}" in page.url


def test_a_failure_cluster_is_described_and_saved_as_a_segment(console: Console, finds: Finds, page: Any) -> None:
    sign_in(page, console)
    page.goto(console.url + f"/#/p/{PROJECT}/findings")
    page.wait_for_selector("#clusters-form")
    # the sections above fill in as their answers and thumbnails arrive, moving the form down: click once the page
    # has nothing more to load, or the click lands where the button was
    page.wait_for_load_state("networkidle")
    page.click("#clusters-run")
    page.wait_for_selector("#clusters-job[data-state='succeeded']")
    page.wait_for_selector("#cluster-1")
    job_id = _param(page, "clusters")
    with console.client() as c:
        got = c.analysis.GetFailureClusters(apb.GetFailureClustersRequest(project=PROJECT, job_id=job_id))
    assert len(got.clusters) >= 1
    assert page.locator("article.cluster").count() == len(got.clusters)
    top = got.clusters[0]
    assert "dog -> fox" in top.description
    assert page.inner_text("#cluster-1 .description") == top.description
    assert _ids(page, "#cluster-1 figure.thumb") == list(top.example_frame_ids)[:12]
    assert set(top.example_frame_ids) <= set(finds.mode)

    page.fill("#cluster-1-prefix", "fog-dogs-")
    page.click("#cluster-1-save")
    page.wait_for_selector("#cluster-1-saved.ok")
    with console.client() as c:
        segments = {s.name: s for s in c.analysis.ListSegments(apb.ListSegmentsRequest(project=PROJECT)).segments}
    assert "fog-dogs-1" in segments
    seg = segments["fog-dogs-1"]
    assert seg.kind == apb.SEGMENT_KIND_ISSUE and seg.dataset == "pets" and seg.size == top.errors
    assert f"({seg.size} frames)" in page.inner_text("#cluster-1-saved")
    # the saved segment opens in the example grid
    page.click("#cluster-1-saved a")
    page.wait_for_selector("#grid figure.thumb")
    assert "segment=fog-dogs-1" in page.url
    assert page.inner_text("#result-count") == f"{seg.size} frames"
    # the job is found again from the page's own address (as the jobs page links it)
    page.goto(console.url + f"/#/p/{PROJECT}/findings?job={job_id}&kind=failure_clusters")
    page.wait_for_selector("#cluster-1")
    assert page.get_attribute("#clusters-job", "data-state") == "succeeded"


def test_drift_between_two_capture_windows_shows_the_regions(console: Console, finds: Finds, page: Any) -> None:
    sign_in(page, console)
    page.goto(console.url + f"/#/p/{PROJECT}/findings")
    page.wait_for_selector("#drift-form")
    page.fill("#drift-a-until", "2026-11-08T00:00")
    page.fill("#drift-b-since", "2026-11-08T00:00")
    page.wait_for_load_state("networkidle")  # the sections above filled in: the button stays where it is
    page.click("#drift-run")
    page.wait_for_selector("#drift-job[data-state='succeeded']")
    page.wait_for_selector("#drift-summary")
    job_id = _param(page, "drift")
    with console.client() as c:
        job = c.analysis.GetJob(apb.GetJobRequest(project=PROJECT, job_id=job_id)).job
        got = c.analysis.GetDrift(apb.GetDriftRequest(project=PROJECT, job_id=job_id))
    cut = int(datetime(2026, 11, 8, tzinfo=UTC).timestamp() * 1000)
    assert job.params["a.until"] == job.params["b.since"] == str(cut)
    assert got.frames_a == 7 * 24 and got.frames_b == len(finds.frame_ids) - 7 * 24
    summary = page.inner_text("#drift-summary")
    assert f"({got.frames_a} frames)" in summary and f"({got.frames_b} frames)" in summary
    assert f"{got.statistic:.3f} against {got.expected:.3f}" in summary
    if len(got.regions) > 10:  # the first ten, the others on demand
        page.click("#drift-all")
    regions = page.eval_on_selector_all("#drift-regions tbody tr", "els => els.map(e => Number(e.dataset.region))")
    assert regions == [r.region for r in got.regions] and regions
