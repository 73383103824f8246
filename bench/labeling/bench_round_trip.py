"""The labeling round trip against a real Label Studio: how long the bridge takes to put N frames on
the platform (from SendForLabeling until every frame has a task), and to bring N annotations back
(SyncAnnotations, then until every label version is written), beside the raw Label Studio API in
the same run: one import call of the same tasks, and one export of the same annotations.

    python bench/labeling/bench_round_trip.py --frames 1000 5000

Starts Label Studio (from .cache/label-studio-venv, `make label-studio`) and an all-in-one Shoal
server on embedded stores in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import sys
import tempfile
import time
from typing import Any

import numpy as np
import requests

from shoal.app import build_server
from shoal.client import Client
from shoal.common.settings import ShoalSettings
from shoal.common.v1 import common_pb2 as cpb
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.labeling_bridge.label_studio import LabelStudioPlatform
from shoal.labeling_bridge.platforms import ProjectRef, ProjectSpec
from shoal.labeling_bridge.v1 import labeling_bridge_pb2 as lpb
from shoal.sdk import UploadColumns

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.harness.label_studio_server import LabelStudioServer, default_venv_dir  # noqa: E402

CLASSES = ("cat", "dog", "fox")


class Api:
    """Label Studio's API with the personal access token, its 5-minute access token refreshed."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.s = requests.Session()
        self._refresh()

    def _refresh(self) -> None:
        access = requests.post(f"{self.url}/api/token/refresh/", json={"refresh": self.token}, timeout=30)
        access.raise_for_status()
        self.s.headers["Authorization"] = f"Bearer {access.json()['access']}"

    def __call__(self, method: str, path: str, **kw: Any) -> Any:
        r = self.s.request(method, f"{self.url}{path}", timeout=600, **kw)
        if r.status_code == 401:
            self._refresh()
            r = self.s.request(method, f"{self.url}{path}", timeout=600, **kw)
        r.raise_for_status()
        return r.json() if r.content else None


def upload(c: Client, project: str, n: int) -> list[str]:
    ids = [f"img-{i:06d}" for i in range(n)]
    c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
        name=project, task_type=pb.TASK_TYPE_CLASSIFICATION,
        classes=[pb.ClassDef(id=i, name=k) for i, k in enumerate(CLASSES)])))  # fmt: skip
    c.ingest.CreateDataset(pb.CreateDatasetRequest(project=project, dataset=pb.Dataset(
        name="photos", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
    r = c.upload(project, "photos", UploadColumns(
        frame_ids=ids, media_uris=[f"http://127.0.0.1:1/p/{f}.png" for f in ids], sizes=[(64, 48)] * n,
        class_ids=np.arange(n) % 3), progress=False)  # fmt: skip
    c.wait_for_upload(project, r.upload_id, timeout=600)
    return ids


def run(c: Client, api: Api, reader: LabelStudioPlatform, n: int) -> dict[str, Any]:
    project = f"bench-{n}-{int(time.time())}"
    ids = upload(c, project, n)
    t0 = time.monotonic()
    req = c.send_for_labeling(project, frames=ids, dataset="photos", reason="bench", timeout=3600)
    send_s = time.monotonic() - t0
    assert req.counts.sent == n, req

    # the raw API beside it: one import call of the same tasks into a project of its own
    raw = api("POST", "/api/projects/", json={"title": f"raw-{project}", "label_config": api(
        "GET", f"/api/projects/{req.platform_project_id}/")["label_config"]})  # fmt: skip
    tasks = [{"data": {"image": f"http://127.0.0.1:1/p/{f}.png", "shoal_frame_id": f"photos/{f}",
                       "shoal_reason": "bench"}} for f in ids]  # fmt: skip
    t0 = time.monotonic()
    api("POST", f"/api/projects/{raw['id']}/import", json=tasks)
    raw_send_s = time.monotonic() - t0

    # annotate every task through the API (not timed), then bring the annotations back
    page, tids = 1, []
    while len(tids) < n:
        r = api("GET", "/api/tasks/", params={"project": req.platform_project_id, "page": page, "page_size": 1000,
                                              "fields": "task_only"})  # fmt: skip
        tids += [t["id"] for t in r["tasks"]]
        page += 1
    for i, tid in enumerate(tids):
        api("POST", f"/api/tasks/{tid}/annotations/", json={"result": [{"from_name": "label", "to_name": "image",
            "type": "choices", "value": {"choices": [CLASSES[(i + 1) % 3]]}}]})  # fmt: skip
    # how much of the sync is reading the platform: the adapter's poll alone, on the same annotations
    ref = ProjectRef("label-studio", str(req.platform_project_id), ProjectSpec(
        name=f"Shoal {project}/photos", task_type="classification", classes=CLASSES))  # fmt: skip
    t0 = time.monotonic()
    read = len(reader.annotations_since(ref))
    read_s = time.monotonic() - t0
    assert read == n, read
    t0 = time.monotonic()
    sync = c.labeling_bridge.SyncAnnotations(lpb.SyncAnnotationsRequest(project=project))
    sync_s = time.monotonic() - t0
    assert sync.synced == n, sync

    def written() -> int:
        items = c.labeling_bridge.ListLabelingItems(lpb.ListLabelingItemsRequest(
            project=project, states=[lpb.ITEM_STATE_SYNCED], page=cpb.PageRequest(page_size=1)))  # fmt: skip
        return int(items.page.total_count)

    while written() < n:
        time.sleep(0.2)
    landed_s = time.monotonic() - t0
    t0 = time.monotonic()
    exported = api("GET", f"/api/projects/{req.platform_project_id}/export", params={"exportType": "JSON"})
    raw_export_s = time.monotonic() - t0
    assert len(exported) == n
    return {"frames": n, "send_seconds": round(send_s, 2), "raw_import_seconds": round(raw_send_s, 2),
            "platform_read_seconds": round(read_s, 2), "sync_seconds": round(sync_s, 2),
            "synced_and_recorded_seconds": round(landed_s, 2), "raw_export_seconds": round(raw_export_s, 2)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, nargs="+", default=[1000, 5000])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ls = LabelStudioServer(venv_dir=default_venv_dir(REPO), work_dir=pathlib.Path(tmp) / "ls")
        ls.start()
        settings = ShoalSettings(
            port=0,
            data_dir=pathlib.Path(tmp) / "shoal",
            label_studio_url=ls.url,
            label_studio_token=ls.token,
            labeling_poll_seconds=3600.0,
        )  # type: ignore[arg-type]
        server = build_server(settings)
        port = server.start()
        _, key = server.keys.create(["*"], description="bench")
        out = []
        try:
            with Client(f"127.0.0.1:{port}", api_key=key) as c:
                api = Api(ls.url, ls.token)
                reader = LabelStudioPlatform(ls.url, ls.token)
                for n in args.frames:
                    out.append(run(c, api, reader, n))
                    print(json.dumps(out[-1]))
        finally:
            server.stop(grace=1)
            ls.stop()
    result = {"machine": f"{platform.machine()}, {platform.python_version()}", "runs": out}
    (pathlib.Path(__file__).parent / "results.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
