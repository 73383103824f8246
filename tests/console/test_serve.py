"""`shoal serve` runs the console beside the services, on the port it is given."""

from __future__ import annotations

import signal
from pathlib import Path

import requests

from tests.harness._wait import process_exit
from tests.integration.test_serve_process import _free_port, _serving, _spawn
from tests.server.conftest import wait_for


def test_shoal_serve_runs_the_console_on_its_port(tmp_path: Path) -> None:
    port, console = _free_port(), _free_port()
    log = tmp_path / "serve.log"
    proc = _spawn(
        ["serve", "--port", str(port), "--console-port", str(console), "--data-dir", str(tmp_path / "d")], {}, log
    )
    try:
        _serving(f"127.0.0.1:{port}", proc, log)
        url = f"http://127.0.0.1:{console}"

        def ready() -> bool:
            try:
                return requests.get(url + "/readyz", timeout=5).status_code == 200
            except requests.ConnectionError:
                return False

        wait_for(ready, what="the console to be ready", dead=process_exit(proc, "shoal serve", log))
        assert requests.get(url + "/readyz", timeout=5).json()["services"] == {
            "ingest": "SERVING", "analysis": "SERVING", "sampler": "SERVING", "labeling_bridge": "SERVING"}  # fmt: skip
        page = requests.get(url + "/", timeout=5)
        assert page.status_code == 200 and '<script type="module" src="/static/js/app.js">' in page.text
        assert requests.get(url + "/static/js/app.js", timeout=5).status_code == 200
        assert f"console on http://127.0.0.1:{console}" in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    assert proc.returncode == 0


def test_a_busy_console_port_stops_serve_with_what_to_do(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        log = tmp_path / "serve.log"
        proc = _spawn(
            ["serve", "--port", str(_free_port()), "--console-port", str(taken), "--data-dir", str(tmp_path / "d")],
            {},
            log,
        )
        code = proc.wait(timeout=120)
    text = log.read_text()
    assert code != 0
    assert f"the console cannot listen on 127.0.0.1:{taken}" in text and "--console-port" in text
    assert "Traceback" not in text
