"""The Label Studio adapter against a real Label Studio 1.23 server (the `label_studio` session fixture).

Annotations are submitted through Label Studio's own API (`POST /api/tasks/{id}/annotations/`), as
its labeling UI does, with the admin's personal access token.
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import queue
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import numpy as np
import pytest
import requests

from shoal.labeling_bridge import brush
from shoal.labeling_bridge.label_studio import LabelStudioPlatform, parse_labeling_config, result_from_labels
from shoal.labeling_bridge.platforms import (
    Box,
    LabelingPlatform,
    Labels,
    PlatformError,
    PlatformUnavailable,
    ProjectSpec,
    TaskSpec,
)

pytestmark = pytest.mark.integration


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Api:
    """Label Studio's API as a person's script would call it, beside the adapter."""

    def __init__(self, server: Any) -> None:
        self.url = server.url
        access = requests.post(f"{self.url}/api/token/refresh/", json={"refresh": server.token}, timeout=30)
        access.raise_for_status()
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {access.json()['access']}"

    def __call__(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.url}{path}", timeout=30, **kwargs)
        assert response.status_code < 400, f"{method} {path}: {response.status_code} {response.text[:500]}"
        return response.json() if response.content else None

    def annotate(self, task_id: str, result: list[dict[str, Any]]) -> dict[str, Any]:
        return self("POST", f"/api/tasks/{task_id}/annotations/", json={"result": result, "lead_time": 2.0})

    def task_count(self, project_id: str) -> int:
        return int(self("GET", "/api/tasks/", params={"project": project_id, "fields": "task_only"})["total"])


@pytest.fixture
def platform(label_studio: Any) -> Iterator[LabelStudioPlatform]:
    p = LabelStudioPlatform(label_studio.url, label_studio.token, chunk_size=2, page_size=2)
    yield p
    p.close()


@pytest.fixture
def api(label_studio: Any) -> Api:
    return Api(label_studio)


def _detection_tasks(n: int, *, start: int = 0) -> list[TaskSpec]:
    return [
        TaskSpec(
            external_id=f"cams/frame-{i}",
            media_url=f"http://127.0.0.1:1/media/{i}.png",
            reason=f"likely label error: 'car' labeled as 'truck' (margin 0.{i})",
            prelabels=Labels(
                boxes=(Box("car", 10.0 + i, 20.0, 64.0, 48.0, score=0.9),), image_width=640, image_height=480
            ),
            prelabel_source="inference-set resnet-v4",
            meta={"request": "r1", "index": i},
        )
        for i in range(start, start + n)
    ]


def test_the_adapter_is_a_labeling_platform(platform: LabelStudioPlatform) -> None:
    assert isinstance(platform, LabelingPlatform)
    assert platform.auth_scheme == "personal"


def test_ensure_project_is_idempotent_and_follows_the_classes(platform: LabelStudioPlatform, api: Api) -> None:
    name = _name("pets")
    first = platform.ensure_project(ProjectSpec(name, "classification", ["cat", "dog"]))
    again = platform.ensure_project(ProjectSpec(name, "classification", ["cat", "dog"]))
    assert first.project_id == again.project_id
    assert [p["id"] for p in api("GET", "/api/projects/", params={"page_size": 1000})["results"]].count(
        int(first.project_id)
    ) == 1
    parsed = api("GET", f"/api/projects/{first.project_id}/")["parsed_label_config"]
    assert parsed["label"]["type"] == "Choices" and parsed["label"]["labels"] == ["cat", "dog"]

    # A class added to the ontology is added to the interface; a class left out is kept.
    grown = platform.ensure_project(ProjectSpec(name, "classification", ["cat", "bird"]))
    assert grown.project_id == first.project_id
    assert grown.spec.classes == ("cat", "bird", "dog")
    parsed = api("GET", f"/api/projects/{first.project_id}/")["parsed_label_config"]
    assert parsed["label"]["labels"] == ["cat", "bird", "dog"]

    with pytest.raises(PlatformError, match="classification project, not detection"):
        platform.ensure_project(ProjectSpec(name, "detection", ["cat"]))
    # A project of the same name that Shoal did not make is not taken over.
    foreign = _name("foreign")
    api("POST", "/api/projects/", json={"title": foreign, "label_config": '<View><Text name="t" value="$t"/></View>'})
    with pytest.raises(PlatformError, match="not made by Shoal"):
        platform.ensure_project(ProjectSpec(foreign, "classification", ["a"]))


def test_importing_twice_creates_no_duplicate_tasks(platform: LabelStudioPlatform, api: Api) -> None:
    project = platform.ensure_project(ProjectSpec(_name("cams"), "detection", ["car", "truck"]))
    first = platform.import_tasks(project, _detection_tasks(5))  # three chunks of two
    assert sorted(first) == [f"cams/frame-{i}" for i in range(5)]
    assert len(set(first.values())) == 5
    # The same frames again, with two new ones and one twice in the same call.
    tasks = _detection_tasks(7)
    second = platform.import_tasks(project, [*tasks, tasks[6]])
    assert {x: second[x] for x in first} == first
    assert len(second) == 7
    assert api.task_count(project.project_id) == 7
    tasks_now = api("GET", "/api/tasks/", params={"project": project.project_id, "page_size": 100})["tasks"]
    assert {t["data"]["shoal_frame_id"]: str(t["id"]) for t in tasks_now} == second
    assert platform.existing_tasks(project, ["cams/frame-3", "cams/nope"]) == {"cams/frame-3": first["cams/frame-3"]}


def test_frame_ids_with_special_characters_are_matched_exactly(platform: LabelStudioPlatform) -> None:
    project = platform.ensure_project(ProjectSpec(_name("odd"), "classification", ["a"]))
    odd = ["d/a.b+c(1)", "d/x|y", "d/[z]^$", "d/ünï cödé", "d/back\\slash", "d/f-1", "d/f-10", "d/*"]
    ids = platform.import_tasks(project, [TaskSpec(x, "http://127.0.0.1:1/i.png") for x in odd])
    assert len(set(ids.values())) == len(odd)
    assert platform.existing_tasks(project, odd) == ids
    near = ["d/aXb+c(1)", "d/x", "d/f-", "d/f-1 ", "d/.*", "d/"]
    assert platform.existing_tasks(project, near) == {}
    assert platform.existing_tasks(project, ["d/f-1"]) == {"d/f-1": ids["d/f-1"]}


def test_prelabels_and_the_reason_are_on_the_task(platform: LabelStudioPlatform, api: Api) -> None:
    project = platform.ensure_project(ProjectSpec(_name("cams"), "detection", ["car", "truck"]))
    ids = platform.import_tasks(project, _detection_tasks(1, start=3))
    task = api("GET", f"/api/tasks/{ids['cams/frame-3']}/")
    assert task["data"]["shoal_reason"] == "likely label error: 'car' labeled as 'truck' (margin 0.3)"
    assert task["data"]["shoal_frame_id"] == "cams/frame-3"
    assert task["meta"] == {"request": "r1", "index": 3}
    (prediction,) = task["predictions"]
    assert prediction["model_version"] == "inference-set resnet-v4"
    (item,) = prediction["result"]
    assert item["value"]["rectanglelabels"] == ["car"]
    assert item["value"]["x"] == pytest.approx(13 / 640 * 100)
    assert item["value"]["width"] == pytest.approx(64 / 640 * 100)
    assert (item["original_width"], item["original_height"]) == (640, 480)
    # The interface shows the reason above the image.
    config = api("GET", f"/api/projects/{project.project_id}/")["label_config"]
    assert '<Header value="$shoal_reason"' in config


def test_annotations_come_back_by_polling_with_pixel_boxes(
    platform: LabelStudioPlatform, api: Api, label_studio: Any
) -> None:
    project = platform.ensure_project(ProjectSpec(_name("cams"), "detection", ["car", "truck"]))
    ids = platform.import_tasks(project, _detection_tasks(3))
    assert platform.annotations_since(project) == []

    corrected = Labels(
        boxes=(Box("truck", 13.0, 21.5, 100.25, 50.0), Box("car", 600.0, 400.0, 40.0, 80.0)),
        image_width=640,
        image_height=480,
    )
    created = api.annotate(ids["cams/frame-1"], result_from_labels(corrected, "detection"))
    api.annotate(ids["cams/frame-2"], [])  # the annotator says: no object in this frame

    got = {a.external_id: a for a in platform.annotations_since(project)}
    assert set(got) == {"cams/frame-1", "cams/frame-2"}
    one = got["cams/frame-1"]
    assert one.error is None and one.platform == "label-studio"
    assert (one.task_id, one.annotation_id) == (ids["cams/frame-1"], str(created["id"]))
    assert one.annotator == label_studio.username
    assert one.updated_at is not None and one.updated_at.tzinfo is not None
    assert one.labels is not None and (one.labels.image_width, one.labels.image_height) == (640, 480)
    for back, sent in zip(one.labels.boxes, corrected.boxes, strict=True):
        assert back.class_name == sent.class_name
        for a, b in ((back.x, sent.x), (back.y, sent.y), (back.width, sent.width), (back.height, sent.height)):
            assert a == pytest.approx(b, abs=1e-6)
    assert got["cams/frame-2"].labels == Labels(image_width=640, image_height=480)

    # Only what changed since a moment comes back; an edited annotation comes back as a newer version.
    since = max(a.updated_at for a in got.values() if a.updated_at) + dt.timedelta(milliseconds=1)
    assert platform.annotations_since(project, since) == []
    time.sleep(0.01)
    api(
        "PATCH",
        f"/api/annotations/{created['id']}/",
        json={
            "result": result_from_labels(
                Labels(boxes=(Box("car", 1, 2, 3, 4),), image_width=640, image_height=480), "detection"
            )
        },
    )
    (edited,) = platform.annotations_since(project, since)
    assert edited.annotation_id == str(created["id"]) and edited.updated_at > one.updated_at
    assert edited.labels is not None and [b.class_name for b in edited.labels.boxes] == ["car"]
    assert edited.labels.boxes[0].x == pytest.approx(1.0)


def test_a_malformed_annotation_is_an_error_entry_and_the_rest_converts(
    platform: LabelStudioPlatform, api: Api
) -> None:
    project = platform.ensure_project(ProjectSpec(_name("digits"), "classification", ["3", "7"]))
    ids = platform.import_tasks(
        project,
        [
            TaskSpec(
                f"digits/{i}",
                f"http://127.0.0.1:1/{i}.png",
                reason="confident disagreement",
                prelabels=Labels(class_name="3"),
            )
            for i in range(3)
        ],
    )
    choice = {"from_name": "label", "to_name": "image", "type": "choices"}
    api.annotate(ids["digits/0"], [{**choice, "value": {"choices": ["7"]}}])
    api.annotate(ids["digits/1"], [{**choice, "value": {"choices": ["3", "7"]}}])  # two choices in a single-choice task
    api.annotate(ids["digits/2"], [{**choice, "value": {"choices": ["3"]}}])
    got = {a.external_id: a for a in platform.annotations_since(project)}
    assert got["digits/0"].labels == Labels(class_name="7") and got["digits/0"].error is None
    assert got["digits/2"].labels == Labels(class_name="3")
    bad = got["digits/1"]
    assert bad.labels is None and bad.error is not None and "exactly one choice" in bad.error
    assert bad.raw["result"][0]["value"]["choices"] == ["3", "7"]


class _Listener:
    """A local HTTP endpoint that records what Label Studio posts to it."""

    def __init__(self) -> None:
        self.received: queue.Queue[tuple[dict[str, str], dict[str, Any]]] = queue.Queue()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.put((dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/label-studio"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[_Listener]:
    it = _Listener()
    yield it
    it.close()


def test_webhook_delivers_annotation_events(platform: LabelStudioPlatform, api: Api, listener: _Listener) -> None:
    project = platform.ensure_project(ProjectSpec(_name("cams"), "detection", ["car", "truck"]))
    ids = platform.import_tasks(project, _detection_tasks(2))
    hook = platform.register_webhook(project, listener.url, headers={"X-Shoal-Webhook-Secret": "s3cret"})
    assert platform.register_webhook(project, listener.url, headers={"X-Shoal-Webhook-Secret": "s3cret"}) == hook
    assert len(api("GET", "/api/webhooks/", params={"project": project.project_id})) == 1

    box = Box("truck", 32.0, 24.0, 320.0, 240.0)
    created = api.annotate(
        ids["cams/frame-0"], result_from_labels(Labels(boxes=(box,), image_width=640, image_height=480), "detection")
    )
    # Without a task queue (Redis), Label Studio 1.23 calls webhooks inside the request that saved the
    # annotation: the event has arrived by the time the API call returned.
    headers, payload = listener.received.get_nowait()
    assert headers["X-Shoal-Webhook-Secret"] == "s3cret"
    assert payload["action"] == "ANNOTATION_CREATED"
    assert {"annotation", "task", "project"} <= set(payload)
    assert payload["task"]["data"]["shoal_frame_id"] == "cams/frame-0"
    (event,) = platform.parse_webhook(payload)
    assert (event.external_id, event.task_id, event.annotation_id) == (
        "cams/frame-0",
        ids["cams/frame-0"],
        str(created["id"]),
    )
    assert event.error is None and event.labels is not None
    (back,) = event.labels.boxes
    assert (back.class_name, back.x, back.y, back.width, back.height) == ("truck", 32.0, 24.0, 320.0, 240.0)

    api("PATCH", f"/api/annotations/{created['id']}/", json={"result": []})
    _, payload = listener.received.get(timeout=10)
    assert payload["action"] == "ANNOTATION_UPDATED"
    (event,) = platform.parse_webhook(payload)
    assert event.labels is not None and event.labels.boxes == ()

    # Changing the webhook's actions updates it in place.
    assert platform.register_webhook(project, listener.url, actions=["ANNOTATION_CREATED"]) == hook
    (stored,) = api("GET", "/api/webhooks/", params={"project": project.project_id})
    assert stored["actions"] == ["ANNOTATION_CREATED"] and stored["headers"] == {}


def test_an_expired_access_token_is_refreshed(platform: LabelStudioPlatform) -> None:
    project = platform.ensure_project(ProjectSpec(_name("pets"), "classification", ["cat"]))
    platform._access = "not-a-valid-access-token"  # as if it had been revoked before its expiry
    platform._access_expires = time.time() + 3600
    assert platform.existing_tasks(project, ["x/1"]) == {}


def test_legacy_tokens_work_only_where_enabled(label_studio: Any, api: Api) -> None:
    legacy = label_studio.legacy_token()
    platform = LabelStudioPlatform(label_studio.url, legacy)
    assert platform.auth_scheme == "legacy"
    spec = ProjectSpec(_name("legacy"), "classification", ["a"])
    with pytest.raises(PlatformError, match="401") as refused:  # 1.23 turns legacy tokens off by default
        platform.ensure_project(spec)
    assert legacy not in str(refused.value)
    api("POST", "/api/jwt/settings", json={"api_tokens_enabled": True, "legacy_api_tokens_enabled": True})
    try:
        assert platform.ensure_project(spec).project_id
    finally:
        api("POST", "/api/jwt/settings", json={"api_tokens_enabled": True, "legacy_api_tokens_enabled": False})
        platform.close()

    with pytest.raises(PlatformError, match="did not accept the personal access token"):
        LabelStudioPlatform(label_studio.url, label_studio.token[:-4] + "AAAA").ensure_project(spec)


def test_a_stopped_label_studio_makes_the_adapter_raise_platform_unavailable(label_studio: Any) -> None:
    platform = LabelStudioPlatform(label_studio.url, label_studio.token, timeout_seconds=5)
    project = platform.ensure_project(ProjectSpec(_name("outage"), "classification", ["a"]))
    label_studio.stop()
    try:
        with pytest.raises(PlatformUnavailable, match="unreachable"):
            platform.import_tasks(project, [TaskSpec("d/1", "http://127.0.0.1:1/1.png", reason="r")])
        with pytest.raises(PlatformUnavailable):
            platform.annotations_since(project)
    finally:
        label_studio.restart()
    # Back up: the same call goes through, and the task exists once.
    ids = platform.import_tasks(project, [TaskSpec("d/1", "http://127.0.0.1:1/1.png", reason="r")])
    assert platform.import_tasks(project, [TaskSpec("d/1", "http://127.0.0.1:1/1.png", reason="r")]) == ids
    platform.close()


@pytest.mark.parametrize(
    ("task_type", "controls"),
    [
        ("multi_label", {"label": "Choices"}),
        ("instance_segmentation", {"label": "PolygonLabels", "brush": "BrushLabels"}),
        ("keypoints", {"label": "RectangleLabels", "keypoint": "KeyPointLabels"}),
        ("segmentation", {"brush": "BrushLabels"}),
    ],
)
def test_projects_of_the_other_task_types_are_told_apart(
    platform: LabelStudioPlatform, api: Api, task_type: str, controls: dict[str, str]
) -> None:
    """Label Studio takes each interface; the project is found again as what it is (multi-label is
    not mistaken for classification, keypoints not for detection, semantic segmentation not for
    instance segmentation), keypoints added to a class are added to the interface, those it had
    kept, and a class's colour follows the ontology."""
    name = _name(task_type.replace("_", "-"))
    keypoints = ["nose", "tail"] if task_type == "keypoints" else []
    spec = ProjectSpec(name, task_type, ["cat", "dog"], keypoints=keypoints)  # type: ignore[arg-type]
    first = platform.ensure_project(spec)
    stored = api("GET", f"/api/projects/{first.project_id}/")
    assert {k: v["type"] for k, v in stored["parsed_label_config"].items()} == controls
    assert parse_labeling_config(stored["label_config"]).task_type == task_type  # type: ignore[union-attr]
    assert platform.ensure_project(spec).project_id == first.project_id
    with pytest.raises(PlatformError, match=f"is a {task_type} project"):
        platform.ensure_project(ProjectSpec(name, "classification" if task_type != "keypoints" else "detection",
                                            ["cat"]))  # fmt: skip
    if task_type == "keypoints":
        grown = platform.ensure_project(ProjectSpec(name, "keypoints", ["cat", "dog"], keypoints=["nose", "ear"]))
        assert grown.spec.keypoints == ("nose", "ear", "tail")
        parsed = api("GET", f"/api/projects/{first.project_id}/")["parsed_label_config"]
        assert parsed["keypoint"]["labels"] == ["nose", "ear", "tail"]
    if task_type == "segmentation":
        painted = platform.ensure_project(ProjectSpec(name, "segmentation", ["cat", "dog"], colors={"dog": "#ff8800"}))
        config = api("GET", f"/api/projects/{first.project_id}/")["label_config"]
        assert 'value="dog" background="#ff8800"' in config and 'value="cat"/>' in config
        assert parse_labeling_config(config).colors == (("dog", "#ff8800"),)  # type: ignore[union-attr]
        # asked again without colours: the colour stays, and nothing is changed
        assert platform.ensure_project(spec).spec.colors == painted.spec.colors == {"dog": "#ff8800"}
        assert api("GET", f"/api/projects/{first.project_id}/")["label_config"] == config


def test_brush_masks_are_label_studio_converters_byte_for_byte(label_studio: Any) -> None:
    """Shoal's brush encoder against label-studio-converter's (``brush.mask2rle``, in Label Studio's
    own venv): the same bytes for the same random masks, and each reads the other's."""
    rng = np.random.default_rng(23)
    cases = [rng.random((int(h), int(w))) < rng.random() for h, w in rng.integers(1, 70, (40, 2))]
    blob = np.zeros((260, 300), dtype=bool)
    blob[20:240, 30:280] = True  # runs longer than one block
    cases += [blob, np.ones((300, 300), dtype=bool)]
    python = pathlib.Path(label_studio.venv_dir) / "bin" / "python"
    script = (
        "import json, sys, numpy as np\n"
        "from label_studio_sdk.converter import brush\n"
        "out = []\n"
        "for case in json.load(sys.stdin):\n"
        "    mask = np.array(case['mask'], dtype=np.uint8) * 255\n"
        "    decoded = brush.decode_rle(case['rle']).reshape(mask.shape + (4,))[:, :, 3]\n"
        "    out.append({'rle': brush.mask2rle(mask), 'decoded': (decoded > 0).astype(int).tolist()})\n"
        "json.dump(out, sys.stdout)\n"
    )
    given = [{"mask": m.astype(int).tolist(), "rle": brush.encode(m)} for m in cases]
    done = subprocess.run([str(python), "-c", script], input=json.dumps(given), capture_output=True, text=True,
                          check=True, timeout=300)  # fmt: skip
    theirs = json.loads(done.stdout)
    for mask, mine, their in zip(cases, given, theirs, strict=True):
        assert mine["rle"] == their["rle"]
        np.testing.assert_array_equal(np.array(their["decoded"], dtype=bool), mask)
