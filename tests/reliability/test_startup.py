"""Start-up and the administrator key: a malformed SHOAL_ADMIN_API_KEY stops ``shoal serve`` at
once with a message that names the variable and the rule, a revoked one stays revoked across
restarts, and ``shoal keys`` against a running server's embedded data says what to do instead of
failing with a traceback."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from pydantic import SecretStr

from shoal.common.auth import generate_key, parse_key
from shoal.common.settings import ShoalSettings
from shoal.ingest.v1 import ingest_pb2 as pb
from tests.integration.test_serve_process import _free_port, _serving, _spawn
from tests.server.conftest import start_server


def test_a_malformed_admin_key_stops_serve_at_once_naming_the_variable_and_the_rule(tmp_path: Path) -> None:
    secret = "Qz7shortsecret"  # 14 characters: too short
    log = tmp_path / "serve.log"
    proc = _spawn(
        ["serve", "--port", str(_free_port()), "--data-dir", str(tmp_path / "data")],
        {"SHOAL_ADMIN_API_KEY": f"shoal_0123456789abcdef_{secret}"},
        log,
    )
    try:
        code = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"shoal serve kept running with a malformed SHOAL_ADMIN_API_KEY:\n{log.read_text()[-2000:]}")
    text = log.read_text()
    assert code != 0
    assert "SHOAL_ADMIN_API_KEY" in text
    assert "shoal_<16 lowercase hex>_<secret of 20 to 128 characters A-Za-z0-9_->" in text
    assert "its secret has 14 characters" in text
    assert secret not in text
    assert "Traceback" not in text


def test_a_revoked_admin_key_stays_revoked_after_a_restart(
    embedded_settings: ShoalSettings, caplog: pytest.LogCaptureFixture
) -> None:
    key = generate_key()[1]
    key_id = parse_key(key)
    settings = embedded_settings.model_copy(update={"admin_api_key": SecretStr(key)})
    first = start_server(settings)
    try:
        with first.client(key) as c:
            c.ingest.ListProjects(pb.ListProjectsRequest())
        first.server.keys.revoke(key_id)
    finally:
        first.server.stop(grace=1)

    with caplog.at_level(logging.INFO, logger="shoal.common.server"):
        second = start_server(settings)
    try:
        with second.client(key) as c, pytest.raises(grpc.RpcError) as info:
            c.ingest.ListProjects(pb.ListProjectsRequest())
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "revoked" in info.value.details()
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any(key_id in m and "revoked" in m and "SHOAL_ADMIN_API_KEY" in m and "Rotate" in m for m in errors)
        assert key.split("_", 2)[2] not in caplog.text
    finally:
        second.server.stop(grace=1)


def test_shoal_keys_against_a_running_server_says_to_stop_it_or_use_the_admin_key(tmp_path: Path) -> None:
    port = _free_port()
    data = tmp_path / "data"
    log = tmp_path / "serve.log"
    proc = _spawn(["serve", "--port", str(port), "--data-dir", str(data)], {"SHOAL_DRAIN_SECONDS": "0"}, log)
    try:
        _serving(f"127.0.0.1:{port}", proc, log)
        done = subprocess.run(
            [sys.executable, "-m", "shoal.cli", "keys", "--data-dir", str(data), "list"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "stop the server" in lines[0] and "SHOAL_ADMIN_API_KEY" in lines[0]
