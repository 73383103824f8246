"""The console's defences, over plain HTTP: cookie flags, CSRF, media URIs outside the allowed
roots, foreign projects, and an unreachable service answered as a clear error."""

from __future__ import annotations

import http.server
import os
import pathlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from PIL import Image

from shoal.common.media import ThumbnailCache
from shoal.common.settings import ShoalSettings
from shoal.console.server import ConsoleServer
from shoal.console.web import Console as WebConsole
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import UploadColumns
from tests.console.conftest import Console, start_console
from tests.server.conftest import wait_for
from tests.server.test_tls import pki  # noqa: F401 - a fixture


class Session:
    """A signed-in HTTP session of the console, as a browser holds it."""

    def __init__(self, console: Console, key: str | None = None) -> None:
        self.base = console.url
        self.http = requests.Session()
        self.http.get(self.base + "/")  # sets the CSRF cookie
        self.csrf = self.http.cookies["shoal_csrf"]
        resp = self.post("/api/session", {"api_key": key or console.admin_key})
        assert resp.status_code == 200, resp.text
        self.sign_in = resp
        self.csrf = self.http.cookies["shoal_csrf"]  # a new token comes with each sign-in

    def post(self, path: str, body: dict[str, Any], **headers: str) -> requests.Response:
        return self.http.post(self.base + path, json=body, headers={"X-CSRF-Token": self.csrf, **headers})

    def rpc(self, service: str, method: str, body: dict[str, Any]) -> requests.Response:
        return self.post(f"/api/rpc/{service}/{method}", body)

    def media(self, project: str, dataset: str, frame: str, size: str = "thumb") -> requests.Response:
        return self.http.get(f"{self.base}/media/{project}/{dataset}/{frame}?size={size}")


class Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []
    png = b""

    def do_GET(self) -> None:
        Recorder.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        self.wfile.write(Recorder.png)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def web(console: Console, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A project whose frames point at allowed and forbidden media, and a loopback HTTP server
    that records every request it gets."""
    outside = tmp_path_factory.mktemp("outside")
    secret = outside / "secret.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(secret)
    inside = console.media / "web"
    inside.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (300, 200), (0, 128, 255)).save(inside / "ok.png")
    (inside / "link.png").symlink_to(secret)
    (inside / "text.png").write_text("not an image")
    Recorder.png = (inside / "ok.png").read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    uris = {
        "ok": f"file://{inside / 'ok.png'}",
        "plain": str(inside / "ok.png"),
        "dotdot": f"{inside}/../../{secret.relative_to(secret.anchor)}",
        "dotdot2": f"file://{inside}/../{'../' * 8}{secret.relative_to(secret.anchor)}",
        "symlink": str(inside / "link.png"),
        "passwd": "file:///etc/passwd",
        "loopback": f"http://127.0.0.1:{port}/private.png",
        "s3": "s3://bucket/key.png",
        "missing": str(inside / "nope.png"),
        "text": str(inside / "text.png"),
    }
    with console.client() as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name="web", task_type=pb.TASK_TYPE_CLASSIFICATION, classes=[pb.ClassDef(id=0, name="a")])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project="web", dataset=pb.Dataset(
            name="d", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name="other", task_type=pb.TASK_TYPE_CLASSIFICATION, classes=[pb.ClassDef(id=0, name="a")])))  # fmt: skip
        c.ingest.CreateDataset(pb.CreateDatasetRequest(project="other", dataset=pb.Dataset(
            name="d", kind=pb.DATASET_KIND_LABELED)))  # fmt: skip
        for project in ("web", "other"):
            r = c.upload(
                project, "d", UploadColumns(frame_ids=list(uris), media_uris=list(uris.values())), progress=False
            )
            assert c.wait_for_upload(project, r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
    yield {"port": port, "server": server}
    server.shutdown()


def test_cookies_are_http_only_same_site_strict_and_never_in_the_page(console: Console) -> None:
    s = Session(console)
    cookies = s.sign_in.headers["set-cookie"]
    key_cookie = next(part for part in cookies.split(", shoal_") if "shoal_key=" in part or part.startswith("key="))
    assert "HttpOnly" in key_cookie and "SameSite=strict" in key_cookie and "Path=/" in key_cookie
    assert "Secure" not in key_cookie  # plain HTTP here: a Secure cookie would never come back
    assert console.admin_key not in s.sign_in.text
    page = s.http.get(console.url + "/")
    assert console.admin_key not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"


def test_cookies_are_secure_when_tls_is_on_or_asked(tmp_path: pathlib.Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x"), key.write_text("x")
    tls = ShoalSettings(data_dir=tmp_path, tls_cert_file=cert, tls_key_file=key)
    plain = ShoalSettings(data_dir=tmp_path)
    asked = ShoalSettings(data_dir=tmp_path, console_cookie_secure=True)
    backend = ConsoleServer.from_settings(plain, local_port=lambda: 1).backend
    assert WebConsole(tls, backend).secure_cookies
    assert not WebConsole(plain, backend).secure_cookies
    assert WebConsole(asked, backend).secure_cookies


def test_state_changing_requests_need_the_csrf_token_and_the_same_origin(console: Console, web: dict[str, Any]) -> None:
    s = Session(console)
    body = {"project": "web"}
    ok = s.rpc("ingest", "GetProject", body)
    assert ok.status_code == 200 and ok.json()["project"]["name"] == "web"
    no_token = s.http.post(console.url + "/api/rpc/ingest/GetProject", json=body)
    assert no_token.status_code == 403 and no_token.json()["code"] == "CSRF"
    wrong = s.http.post(console.url + "/api/rpc/ingest/GetProject", json=body, headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    elsewhere = s.post("/api/rpc/ingest/GetProject", body, Origin="https://evil.example")
    assert elsewhere.status_code == 403 and "another site" in elsewhere.json()["error"]
    # sign-in and sign-out are state changes too
    fresh = requests.post(console.url + "/api/session", json={"api_key": console.admin_key}, timeout=60)
    assert fresh.status_code == 403 and "set-cookie" not in fresh.headers
    out = s.http.delete(console.url + "/api/session")
    assert out.status_code == 403
    assert s.rpc("ingest", "GetProject", body).status_code == 200  # still signed in


def test_rpc_errors_are_json_with_the_status_and_never_a_traceback(console: Console, web: dict[str, Any]) -> None:
    s = Session(console)
    bad = s.rpc(
        "analysis", "QueryDatapoints", {"project": "web", "dataset": "d", "filter": {"all": [{"field": "nope"}]}}
    )
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_ARGUMENT" and "Traceback" not in bad.text
    unknown = s.rpc("ingest", "GetProject", {"project": "web", "no_such_field": 1})
    assert unknown.status_code == 400 and "no_such_field" in unknown.json()["error"]
    missing = s.rpc("ingest", "GetProject", {"project": "absent"})
    assert missing.status_code in (403, 404)
    streaming = s.rpc("ingest", "Upload", {})
    assert streaming.status_code == 404  # streaming methods are not reachable through the console
    signed_out = requests.post(console.url + "/api/rpc/ingest/ListProjects", json={},
                               cookies={"shoal_csrf": "t"}, headers={"X-CSRF-Token": "t"}, timeout=60)  # fmt: skip
    assert signed_out.status_code == 401


def test_media_is_served_only_from_allowed_roots(console: Console, web: dict[str, Any]) -> None:
    s = Session(console)
    ok = s.media("web", "d", "ok")
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/jpeg"
    thumb = Image.open(__import__("io").BytesIO(ok.content))
    assert max(thumb.size) <= 320
    full = s.media("web", "d", "plain", size="full")
    assert full.status_code == 200 and full.headers["content-type"] == "image/png"
    for frame in ("dotdot", "dotdot2", "symlink", "passwd", "loopback", "s3"):
        for size in ("thumb", "full"):
            resp = s.media("web", "d", frame, size)
            assert resp.status_code == 403, (frame, resp.status_code)
            assert resp.headers["content-type"] == "image/svg+xml"  # a placeholder the page can show
            assert b"root:" not in resp.content
    assert Recorder.hits == []  # the private address was never contacted
    assert s.media("web", "d", "missing").status_code == 404
    assert s.media("web", "d", "text").status_code == 404
    assert s.media("web", "d", "no-such-frame").status_code == 404


def test_media_of_a_project_the_key_may_not_see_is_refused(console: Console, web: dict[str, Any]) -> None:
    s = Session(console, console.key(["web"], description="web only"))
    assert s.media("web", "d", "ok").status_code == 200
    assert s.media("other", "d", "ok").status_code == 403
    assert requests.get(console.url + "/media/web/d/ok", timeout=60).status_code == 401  # signed out


def test_private_http_media_is_fetched_only_when_allowed(
    tmp_path_factory: pytest.TempPathFactory, chdb_path: pathlib.Path, web: dict[str, Any], console: Console
) -> None:
    allowed = start_console(tmp_path_factory.mktemp("allowed"), chdb_path, console_allow_private_http=True)
    try:
        with allowed.client() as c:
            c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
                name="web", task_type=pb.TASK_TYPE_CLASSIFICATION, classes=[pb.ClassDef(id=0, name="a")])))  # fmt: skip
            c.ingest.CreateDataset(
                pb.CreateDatasetRequest(project="web", dataset=pb.Dataset(name="d", kind=pb.DATASET_KIND_LABELED))
            )
            uri = f"http://127.0.0.1:{web['port']}/allowed.png"
            r = c.upload("web", "d", UploadColumns(frame_ids=["l"], media_uris=[uri]), progress=False)
            assert c.wait_for_upload("web", r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
        s = Session(allowed)
        resp = s.media("web", "d", "l", size="full")
        assert resp.status_code == 200 and resp.content == Recorder.png
        assert Recorder.hits == ["/allowed.png"]
    finally:
        allowed.server.stop(grace=1)


def test_the_thumbnail_cache_stays_within_its_bound(tmp_path: pathlib.Path) -> None:
    cache = ThumbnailCache(tmp_path / "cache", max_bytes=10_000)
    for i in range(30):
        cache.put(f"{i:064x}", os.urandom(1_000))
    assert cache.size() <= 10_000
    assert cache.get(f"{29:064x}") is not None  # the newest stay
    assert cache.get(f"{0:064x}") is None  # the oldest went first


def test_an_unreachable_service_is_a_clear_answer(tmp_path: pathlib.Path, console: Console) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    settings = ShoalSettings(data_dir=tmp_path, console_port=0, console_grpc_target=f"127.0.0.1:{dead}")
    server = ConsoleServer.from_settings(settings)
    server.start()
    try:
        wait_for(
            lambda: requests.get(server.url + "/healthz", timeout=60).status_code == 200, what="the console to answer"
        )
        ready = requests.get(server.url + "/readyz", timeout=60)
        assert ready.status_code == 503 and ready.json()["services"]["ingest"] == "UNAVAILABLE"
        http = requests.Session()
        http.get(server.url + "/")
        token = http.cookies["shoal_csrf"]
        resp = http.post(
            server.url + "/api/session", json={"api_key": console.admin_key}, headers={"X-CSRF-Token": token}
        )
        assert resp.status_code == 503
        assert "cannot be reached" in resp.json()["error"] and "Traceback" not in resp.text
    finally:
        server.stop()


def test_with_tls_the_console_serves_https_calls_the_services_over_tls_and_marks_cookies_secure(
    tmp_path: pathlib.Path,
    chdb_path: pathlib.Path,
    pki: pathlib.Path,  # noqa: F811 - the fixture
) -> None:
    tls = start_console(tmp_path / "data", chdb_path, tls_cert_file=pki / "server.crt", tls_key_file=pki / "server.key",
                        console_grpc_ca_file=pki / "ca.crt")  # fmt: skip
    try:
        url = tls.url.replace("127.0.0.1", "localhost")
        assert url.startswith("https://")
        http = requests.Session()
        http.trust_env = False  # REQUESTS_CA_BUNDLE would replace the CA given here
        http.verify = str(pki / "ca.crt")
        http.get(url + "/", timeout=60)
        token = http.cookies["shoal_csrf"]
        resp = http.post(
            url + "/api/session", json={"api_key": tls.admin_key}, headers={"X-CSRF-Token": token}, timeout=60
        )
        assert resp.status_code == 200, resp.text
        assert "Secure" in resp.headers["set-cookie"] and "HttpOnly" in resp.headers["set-cookie"]
        assert http.get(url + "/readyz", timeout=60).json()["ready"] is True
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(url + "/healthz", timeout=60)  # not trusted without the CA
    finally:
        tls.server.stop(grace=1)


def test_with_mutual_tls_the_console_presents_its_client_certificate(
    tmp_path: pathlib.Path,
    chdb_path: pathlib.Path,
    pki: pathlib.Path,  # noqa: F811 - the fixture
) -> None:
    mtls = start_console(tmp_path / "data", chdb_path, tls_cert_file=pki / "server.crt", tls_key_file=pki / "server.key",
                         tls_client_ca_file=pki / "ca.crt", console_grpc_ca_file=pki / "ca.crt",
                         console_grpc_client_cert_file=pki / "client.crt",
                         console_grpc_client_key_file=pki / "client.key")  # fmt: skip
    try:
        http = requests.Session()
        http.trust_env = False
        http.verify = str(pki / "ca.crt")
        url = mtls.url.replace("127.0.0.1", "localhost")
        assert http.get(url + "/readyz", timeout=60).json()["all_serving"] is True
    finally:
        mtls.server.stop(grace=1)
