"""What an automation's SEND_TO_LABELING step tells annotators about each frame, for every kind of
label-issues job: the reason names the planted error's kind (a missing, spurious, mislocalized or
swapped box; pixels likely mislabeled; a missing, spurious, badly bounded or wrong-class sound event),
and the frames come worst first, as the issue queries rank them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoal.analysis.rpc.automations import flagged_frames
from shoal.analysis.rpc.context import Context
from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.common.data.projects import ProjectCatalog
from shoal.common.jobs import JobStore
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import UploadColumns
from tests.server.conftest import Running, finish_job, start_server


def reasons(r: Running, project: str, job: Any) -> tuple[int, int, list[tuple[str, str]]]:
    """What the step would send for ``job``: frames examined, flagged, and every flagged frame with its reason."""
    stores = r.server.stores
    ctx = Context(JobStore(stores.metrics, service="analysis"), stores.metrics, stores.vectors)
    examined, flagged, pages = flagged_frames(ctx, ProjectCatalog(stores.metrics).get(project),
                                              ctx.jobs.get(project, job.job_id))  # fmt: skip
    return examined, flagged, [row for page in pages for row in page]


def test_box_issues_are_sent_with_the_kind_of_each_planted_error(shared: Running, project: str) -> None:
    from tests.server.test_analysis_detection_issues import FRAMES, MISSING, SHIFTED, SPURIOUS, SWAPPED, _upload

    _upload(shared, project)
    with shared.client(shared.admin_key) as c:
        job = finish_job(c, project, c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(
            project=project, inference_set="detr")).job)  # fmt: skip
        frames = c.analysis.QueryDetectionLabelIssues(apb.QueryDetectionLabelIssuesRequest(
            project=project, job_id=job.job_id, level=apb.DETECTION_ISSUE_LEVEL_FRAME,
            page=cpb.PageRequest(page_size=1000))).frames  # fmt: skip
    examined, flagged, sent = reasons(shared, project, job)
    ranked = [f.ref.frame_id for f in frames if f.is_issue]
    assert flagged == len(ranked) == len(sent) >= 4 and examined == FRAMES
    assert [f for f, _ in sent] == ranked  # worst first, as the query ranks them
    said = dict(sent)
    for index, kind in ((MISSING, "1 missing box"), (SPURIOUS, "1 spurious box"), (SHIFTED, "1 mislocalized box"),
                        (SWAPPED, "1 box of another class")):  # fmt: skip
        reason = said[f"img-{index:03d}"]
        assert reason.startswith("label issues: ") and kind in reason, reason
        assert re.search(r"\(frame score \d\.\d\d\)$", reason), reason
    assert set(ranked[:4]) == {f"img-{i:03d}" for i in (MISSING, SPURIOUS, SHIFTED, SWAPPED)}


def test_sound_event_issues_are_sent_with_each_clip_s_kinds_counted(shared: Running, project: str) -> None:
    from tests.harness import tones
    from tests.server.test_analysis_sound_events import RATES, Clip, K, _create, _upload

    data = tones.dataset(5, 30, classes=K, loudness=(0.1, 0.5), rates=RATES)
    clips = [Clip(f"t-{i:03d}", "near", x.duration, [(a, b, int(k)) for a, b, k in x.labels],
                  [(a, b, int(k), s) for a, b, k, s in x.predictions]) for i, x in enumerate(data)]  # fmt: skip
    with shared.client(shared.admin_key) as c:
        _create(c, project)
        _upload(c, project, clips, "crnn")
        job = finish_job(c, project, c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(
            project=project, inference_set="crnn")).job)  # fmt: skip
    examined, flagged, sent = reasons(shared, project, job)
    assert examined == len(clips) and flagged == len(sent) > 5
    words = {"spurious": "spurious", "badly bounded": "badly bounded", "wrong class": "of the wrong class",
             "missing": "missing"}  # the planted kinds, as the reasons say them  # fmt: skip
    for clip, reason in sent:
        x = data[int(clip.split("-")[1])]
        planted = {p for p in x.planted if p} | ({"missing"} if len(x.left_out) else set())
        named = {k for k, w in words.items() if re.search(rf"\b\d+ {w}\b", reason)}
        assert reason.startswith("label issues: ") and re.search(r"\(clip score \d\.\d\d\)$", reason), reason
        # a clip's planted errors are among the kinds its reason names (other doubts may be named too)
        assert planted <= named or not planted, (clip, planted, reason)
    with_errors = {f"t-{i:03d}" for i, x in enumerate(data) if any(x.planted) or len(x.left_out)}
    assert with_errors <= {f for f, _ in sent}


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def media_server(tmp_path_factory: pytest.TempPathFactory, chdb_path: Path, media: Path) -> Iterator[Running]:
    """A server that may read per-pixel probabilities from ``media``."""
    from tests.conftest import server_settings

    r = start_server(server_settings(tmp_path_factory.mktemp("server") / "data", chdb_path,
                                     console_media_roots=[str(media)]))  # fmt: skip
    yield r
    r.server.stop(grace=1)


def test_pixel_issues_are_sent_with_the_pixels_and_classes_mixed_up(
    media_server: Running, media: Path, project: str
) -> None:
    """Segmentation maps with an object relabeled, one erased and a region painted over: each of those frames is
    sent, first, saying how many pixels are likely mislabeled."""
    from tests.unit.test_segmentation_issues import K, dataset

    labels, probs = dataset(n=24, seed=5)
    planted = {3: "swap", 9: "erase", 17: "paint"}
    for i, kind in planted.items():
        y = labels[i]
        if kind == "paint":
            y[2:12, 3:15] = (int(np.bincount(y.ravel()).argmax()) + 1) % K
        else:
            cls = int(np.unique(y[y > 0])[0])
            y[y == cls] = 0 if kind == "erase" else (cls % (K - 1)) + 1
    ids = [f"m-{i:02d}" for i in range(len(labels))]
    h, w = labels.shape[1:]
    with media_server.client(media_server.admin_key) as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=project, task_type=pb.TASK_TYPE_SEGMENTATION,
            classes=[pb.ClassDef(id=20 + k, name=f"c{k}") for k in range(K)])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(
            name="val", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project=project, inference_set=pb.InferenceSet(
            name="unet", dataset="val", model_name="unet", model_version="1")))  # fmt: skip
        folder = media / project
        folder.mkdir()
        uris = []
        for i, p in enumerate(probs):
            np.save(folder / f"{ids[i]}.npy", p.astype(np.float16))
            uris.append((folder / f"{ids[i]}.npy").as_uri())
        for cols in (
            UploadColumns(frame_ids=ids, sizes=[(w, h)] * len(ids),
                          label_maps=[(y + 20).astype(np.uint16) for y in labels]),
            UploadColumns(frame_ids=ids, inference_set="unet", skip_frames=True, probability_uris=uris,
                          predicted_maps=[(p.argmax(0) + 20).astype(np.uint16) for p in probs]),
        ):  # fmt: skip
            r = c.upload(project, "val", cols, progress=False)
            assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        job = finish_job(c, project, c.analysis.StartLabelIssues(apb.StartLabelIssuesRequest(
            project=project, inference_set="unet")).job)  # fmt: skip
        issues = c.analysis.QuerySegmentationIssues(apb.QuerySegmentationIssuesRequest(
            project=project, job_id=job.job_id, page=cpb.PageRequest(page_size=100))).issues  # fmt: skip
    examined, flagged, sent = reasons(media_server, project, job)
    assert examined == len(ids) and flagged == len(sent) == len(issues)
    assert [f for f, _ in sent] == [i.ref.frame_id for i in issues]
    assert {f for f, _ in sent[:3]} == {ids[i] for i in planted}
    for (frame, reason), issue in zip(sent, issues, strict=True):
        assert re.fullmatch(r"label issue: [\d,]+ pixels likely mislabeled(, mostly labeled c\d where the model sees "
                            r"c\d)? \(label quality \d\.\d\d\)", reason), reason  # fmt: skip
        assert f"{issue.flagged_pixels:,} pixels" in reason, (frame, reason)
