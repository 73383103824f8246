"""The console under test: an all-in-one server on the embedded stores with the console beside it,
driven by a real headless Chromium (Debian's `chromium`, launched by the Playwright client with
`executable_path`; scripts/ensure-chromium.sh installs it). Each browser test leaves a screenshot
of the page it ended on in test-artifacts/console/ (SHOAL_TEST_ARTIFACTS moves the folder)."""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from shoal.app import build_server
from shoal.client import Client
from shoal.common.server import ShoalServer
from tests.conftest import REPO, server_settings
from tests.server.conftest import wait_for

CHROMIUM = os.environ.get("SHOAL_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = pathlib.Path(os.environ.get("SHOAL_TEST_ARTIFACTS", REPO / "test-artifacts")) / "console"


@dataclass
class Console:
    server: ShoalServer
    url: str
    target: str
    admin_key: str
    media: pathlib.Path
    ca_file: pathlib.Path | None = None

    def client(self, key: str | None = None) -> Client:
        return Client(self.target, api_key=key or self.admin_key, ca_file=self.ca_file)

    def key(self, projects: list[str], description: str = "test") -> str:
        return self.server.keys.create(projects, description=description)[1]


def start_console(data_dir: pathlib.Path, chdb_path: pathlib.Path, **more: Any) -> Console:
    media = data_dir / "media"
    media.mkdir(parents=True, exist_ok=True)
    more.setdefault("console_media_roots", [str(media)])
    settings = server_settings(data_dir, chdb_path, console_port=0, **more)
    server = build_server(settings, console=True)
    port = server.start()
    ca = settings.console_grpc_ca_file
    target = f"localhost:{port}" if ca else f"127.0.0.1:{port}"
    console = server.companions[0]
    wait_for(
        lambda: set(server.status().values()) == {"SERVING"},
        what=f"the server on {target} to be SERVING",
        progress=lambda: tuple(sorted(server.status().items())),
    )
    _, admin = server.keys.create(["*"], description="console test admin")
    return Console(server, console.url, target, admin, media, ca)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, chdb_path: pathlib.Path) -> Iterator[Console]:
    c = start_console(tmp_path_factory.mktemp("console"), chdb_path)
    yield c
    c.server.stop(grace=1)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: run `make chromium` (scripts/ensure-chromium.sh) or set SHOAL_CHROMIUM"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (no cookies) at 1280x900; its last page is kept as a screenshot.
    Errors the page's scripts throw fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000 * float(os.environ.get("SHOAL_TEST_WAIT_SCALE", "4")))
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    try:
        pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    finally:
        context.close()
    assert not errors, f"the page threw: {errors}"


def sign_in(page: Any, console: Console, key: str | None = None) -> None:
    page.goto(console.url + "/#/signin")
    page.fill("#api-key", key or console.admin_key)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#projects, #no-projects")
