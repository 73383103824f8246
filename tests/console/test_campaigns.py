"""A collection-campaign round in a real Chromium: started from a segment of squares, the picks are
judged (squares accepted, the rest rejected), the pool comes back re-ranked towards squares, and the
accepted frames go to labeling, where the page follows the request frame by frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.labeling_bridge.v1 import labeling_bridge_pb2 as lpb
from shoal.sdk import UploadColumns
from tests.console.conftest import Console, sign_in

pytestmark = pytest.mark.browser

SHAPES = ("circle", "square", "triangle")
SQUARE = 1


@dataclass
class Fleet:
    pool: list[str]
    truth: dict[str, int]  # pool frame -> its shape
    seeds: list[str]


def _draw(path: Any, kind: int, rng: np.random.Generator) -> None:
    img = Image.new("RGB", (48, 48), (235, 235, 225))
    d = ImageDraw.Draw(img)
    x, y, r = (int(v) for v in (rng.integers(18, 30), rng.integers(18, 30), rng.integers(9, 14)))
    colour = ((200, 90, 20), (30, 90, 180), (30, 150, 70))[kind]
    if kind == 0:
        d.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    elif kind == 1:
        d.rectangle((x - r, y - r, x + r, y + r), fill=colour)
    else:
        d.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=colour)
    img.save(path)


def make_fleet(console: Console, project: str = "fleet", seed: int = 11) -> Fleet:
    """A labeled dataset of 30 shapes and an unlabeled pool of 90, with images and vectors of a cosine
    space in which each shape is a direction, noisy enough that a few picks are of another shape; the seed
    segment holds 4 labeled squares."""
    rng = np.random.default_rng(seed)
    media = console.media / project
    media.mkdir(parents=True, exist_ok=True)
    centres = rng.normal(0, 1, (3, 16))
    sets: dict[str, tuple[list[str], list[int]]] = {}
    for name, n in (("labeled", 30), ("pool", 90)):
        kinds = [i % 3 for i in range(n)]
        ids = [f"{name[0]}-{i:03d}" for i in range(n)]
        for fid, k in zip(ids, kinds, strict=True):
            _draw(media / f"{fid}.png", k, rng)
        sets[name] = (ids, kinds)
    space = pb.EmbeddingSpace(name="clip", dimension=16, metric=pb.DISTANCE_METRIC_COSINE,
                              level=pb.EMBEDDING_LEVEL_FRAME, model_name="clip", model_version="1")  # fmt: skip
    with console.client() as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name=project, task_type=pb.TASK_TYPE_CLASSIFICATION,
            classes=[pb.ClassDef(id=i, name=s) for i, s in enumerate(SHAPES)], embedding_spaces=[space])))  # fmt: skip
        for name, kind in (("labeled", pb.DATASET_KIND_LABELED), ("pool", pb.DATASET_KIND_UNLABELED_POOL)):
            c.ingest.CreateDataset(pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(name=name, kind=kind)))
            ids, kinds = sets[name]
            vectors = (centres[kinds] + rng.normal(0, 1.4, (len(ids), 16))).astype(np.float32)
            cols = UploadColumns(
                frame_ids=ids, media_uris=[f"file://{media / f}.png" for f in ids], sizes=[(48, 48)] * len(ids),
                class_ids=kinds if name == "labeled" else None, embeddings={"clip": vectors},
            )  # fmt: skip
            r = c.upload(project, name, cols, progress=False)
            assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        labeled_ids, labeled_kinds = sets["labeled"]
        seeds = [f for f, k in zip(labeled_ids, labeled_kinds, strict=True) if k == SQUARE][:4]
        c.analysis.CreateSegment(apb.CreateSegmentRequest(project=project, segment=apb.Segment(
            name="squares", dataset="labeled", kind=apb.SEGMENT_KIND_COLLECTION_SEED,
            reason="squares the model misses"), frame_ids=seeds))  # fmt: skip
    pool_ids, pool_kinds = sets["pool"]
    return Fleet(pool_ids, dict(zip(pool_ids, pool_kinds, strict=True)), seeds)


@pytest.fixture(scope="module")
def fleet(console: Console) -> Fleet:
    return make_fleet(console)


def _ids(page: Any, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "els => els.map(e => e.dataset.frameId)")


def test_a_campaign_round_with_feedback_and_labeling(console: Console, fleet: Fleet, page: Any) -> None:
    sign_in(page, console)
    page.goto(console.url + "/#/p/fleet/campaigns?seed_segment=squares")
    page.wait_for_selector("#campaign-form")
    assert page.input_value("#sel-seed_segment") == "squares"
    assert page.input_value("#sel-pool_dataset") == "pool"  # the unlabeled pool is the default
    page.fill("#campaign-budget", "12")
    page.fill("#campaign-name", "more-squares")
    page.click("#start-campaign")
    # the page follows the job, then shows the ranked picks
    page.wait_for_selector("#picks .pick")
    picks = _ids(page, "#picks .pick")
    assert len(picks) == 12 and set(picks) <= set(fleet.pool)
    assert "12 of a budget of 12" in page.inner_text("#campaign-summary")
    squares = [f for f in picks if fleet.truth[f] == SQUARE]
    others = [f for f in picks if fleet.truth[f] != SQUARE]
    assert len(squares) >= 6 and others  # mostly like the seeds, some not
    accepted, rejected = squares, others
    for f in accepted:
        page.click(f"#picks .pick[data-frame-id='{f}'] button.accept")
    for f in rejected:
        page.click(f"#picks .pick[data-frame-id='{f}'] button.reject")
    assert page.inner_text("#judgments").startswith(f"{len(accepted)} accepted, {len(rejected)} rejected")
    page.click("#submit-feedback")
    page.wait_for_selector("#next-batch[data-round='2'] .pick")
    first = _ids(page, "#next-batch .pick")
    assert not set(first) & (set(accepted) | set(rejected))  # nothing judged comes back
    # re-ranked towards what was accepted: more squares than among the picks
    assert sum(fleet.truth[f] == SQUARE for f in first) / len(first) > len(squares) / len(picks)
    assert page.inner_text("#round-yields tbody tr td:nth-child(2)") == str(len(accepted) + len(rejected))
    # a second round on the batch: the batch changes again
    page.click(f"#next-batch .pick[data-frame-id='{first[0]}'] button.accept")
    page.click(f"#next-batch .pick[data-frame-id='{first[1]}'] button.accept")
    page.click("#submit-feedback")
    page.wait_for_selector("#next-batch[data-round='3'] .pick")
    second = _ids(page, "#next-batch .pick")
    assert second != first and first[0] not in second and first[1] not in second
    # send the accepted frames to labeling and follow the request's frames
    want = sorted([*accepted, first[0], first[1]])
    assert page.inner_text("#send-accepted") == f"Send the {len(want)} accepted frames to labeling"
    page.click("#send-accepted")
    page.wait_for_selector("#send-message.ok")
    page.wait_for_function(f"() => document.querySelectorAll('#labeling-items tbody tr').length === {len(want)}")
    assert sorted(_ids(page, "#labeling-items tbody tr")) == want
    assert set(page.locator("#labeling-items td.state").all_inner_texts()) == {"pending"}
    with console.client() as c:
        requests = c.labeling_bridge.ListLabelingRequests(lpb.ListLabelingRequestsRequest(project="fleet")).requests
        assert len(requests) == 1 and requests[0].frames == len(want) and requests[0].requested_by == "console"
        items = c.labeling_bridge.ListLabelingItems(
            lpb.ListLabelingItemsRequest(project="fleet", request_id=requests[0].request_id)
        ).items
    assert sorted(i.ref.frame_id for i in items) == want
    assert requests[0].request_id in page.inner_text("#labeling-summary")
