"""A multi-label project in the console, in a real Chromium: the performance page shows the
multi-label metrics (per class with its average precision) at the threshold asked for, and the
frame view lists a frame's classes in each label version and its top scores."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_fscore_support

from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import UploadColumns
from tests.console.conftest import Console, sign_in

pytestmark = pytest.mark.browser

CLASSES = ["sky", "road", "person", "snow"]


@pytest.fixture(scope="module")
def scenes(console: Console) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(8)
    n = 120
    y = rng.random((n, 4)) < [0.7, 0.5, 0.3, 0.0]
    s = np.round(np.clip(np.where(y, 0.75, 0.25) + rng.normal(0, 0.2, y.shape), 0, 1), 2).astype(np.float32)
    ids = [f"ml-{i:03d}" for i in range(n)]
    with console.client() as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name="tags", task_type=pb.TASK_TYPE_MULTI_LABEL,
            classes=[pb.ClassDef(id=5 + i, name=n) for i, n in enumerate(CLASSES)])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project="tags", dataset=pb.Dataset(
            name="street", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project="tags", inference_set=pb.InferenceSet(
            name="clip", dataset="street", model_name="clip", model_version="1")))  # fmt: skip
        for cols in (
            UploadColumns(frame_ids=ids, class_sets=[[5 + k for k in np.flatnonzero(r)] for r in y]),
            UploadColumns(frame_ids=ids, inference_set="clip", probabilities=s, skip_frames=True),
        ):
            r = c.upload("tags", "street", cols, progress=False)
            assert c.wait_for_upload("tags", r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
    return y, s.astype(np.float64)


def test_the_performance_page_shows_multi_label_metrics_at_the_threshold(
    console: Console, scenes: tuple[np.ndarray, np.ndarray], page: Any
) -> None:
    y, s = scenes
    sign_in(page, console)
    for threshold in (0.5, 0.7):
        page.goto(console.url + f"/#/p/tags/performance?inference_set=clip&threshold={threshold}")
        page.wait_for_selector("#per-class-table")
        rows = page.eval_on_selector_all(
            "#per-class-table tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
        )
        p, r, f, support = precision_recall_fscore_support(y, s >= threshold, average=None, zero_division=0)
        for k, row in enumerate(rows):
            ap = "\u2013" if not y[:, k].any() else f"{average_precision_score(y[:, k], s[:, k]):.3f}"
            assert row == [CLASSES[k], ap, f"{p[k]:.3f}", f"{r[k]:.3f}", f"{f[k]:.3f}", str(support[k]),
                           str(int((s[:, k] >= threshold).sum()))]  # fmt: skip
        assert page.input_value("#f-threshold") == str(threshold)
    aps = [average_precision_score(y[:, k], s[:, k]) for k in range(3)]
    assert page.inner_text("#stat-map").splitlines()[-1] == f"{np.mean(aps):.3f}"


def test_the_frame_view_lists_each_versions_classes(console: Console, scenes: tuple[np.ndarray, np.ndarray],
                                                    page: Any) -> None:  # fmt: skip
    y, s = scenes
    i = int(np.flatnonzero(y.sum(axis=1) >= 2)[0])
    sign_in(page, console)
    page.goto(console.url + f"/#/p/tags/frame/street/ml-{i:03d}?inference_set=clip")
    page.wait_for_selector("#label-versions")
    names = ", ".join(CLASSES[k] for k in np.flatnonzero(y[i]))
    assert names in page.inner_text("#frame-facts") and names in page.inner_text("#label-versions")
    top = CLASSES[int(np.argmax(s[i]))]
    assert top in page.inner_text(".frame-view")


def test_the_issues_page_runs_and_shows_multi_label_issues(console: Console, scenes: tuple[np.ndarray, np.ndarray],
                                                           page: Any) -> None:  # fmt: skip
    """Started from the Issues page, the job's first issue names the classes likely missing or extra,
    as the job found them; a dismissed issue leaves the page for good (until the frame is relabeled)."""
    from shoal.analysis.multilabel_issues import find

    y, s = scenes
    flags = find(y, s.astype(np.float32).astype(np.float64))
    worst = int(np.flatnonzero(flags.flagged)[np.argmin(flags.score[flags.flagged])])
    sign_in(page, console)
    page.goto(console.url + "/#/p/tags/issues?inference_set=clip")
    page.click("#start-job")
    page.wait_for_selector("#issue-multilabel")
    assert page.inner_text("#issue-one h2").startswith(f"ml-{worst:03d}")
    missing = ", ".join(CLASSES[k] for k in np.flatnonzero(flags.missing[worst])) or "\u2013"
    extra = ", ".join(CLASSES[k] for k in np.flatnonzero(flags.extra[worst])) or "\u2013"
    assert page.inner_text("#issue-missing") == missing and page.inner_text("#issue-extra") == extra
    assert not page.is_disabled("#issue-accept")
    assert f"{int(flags.flagged.sum())} frames with a class likely missing or extra" in page.inner_text("main")
    page.keyboard.press("d")
    page.wait_for_selector("#issue-status.ok")
    assert page.inner_text("#issue-status").startswith(f"Dismissed ml-{worst:03d}")
    page.reload()
    page.wait_for_selector("#issue-multilabel")
    assert not page.inner_text("#issue-one h2").startswith(f"ml-{worst:03d}")
    assert "1 dismissed before" in page.inner_text("#issue-summary")


def test_a_class_opens_the_frames_it_misses_and_adds(
    console: Console, scenes: tuple[np.ndarray, np.ndarray], page: Any
) -> None:
    y, s = scenes
    sign_in(page, console)
    page.goto(console.url + "/#/p/tags/performance?inference_set=clip&threshold=0.5")
    page.click("#class-7 a")  # person
    page.wait_for_selector("#multilabel-missed figure")
    k = 2
    missed = sorted((s[i, k], f"ml-{i:03d}") for i in range(len(y)) if y[i, k] and s[i, k] < 0.5)
    extra = sorted((-s[i, k], f"ml-{i:03d}") for i in range(len(y)) if not y[i, k] and s[i, k] >= 0.5)
    shown = page.eval_on_selector_all("#multilabel-missed figure", "fs => fs.map(f => f.dataset.frameId)")
    assert shown == [f for _, f in missed][:12] and len(missed) > 0
    shown = page.eval_on_selector_all("#multilabel-extra figure", "fs => fs.map(f => f.dataset.frameId)")
    assert shown == [f for _, f in extra][:12] and len(extra) > 0
    assert "class=7" in page.url
