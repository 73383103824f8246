"""``make demo``: the main job on the embedded defaults.

Starts ``shoal serve`` (all four services, embedded stores) as a separate process, as a user
would, with a fresh administrator key; checks every service over gRPC (health and reflection);
writes ``summary.json`` and ``report.html``; stops the server with SIGTERM.
"""

from __future__ import annotations

import html
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shoal.client import Client, list_services
from shoal.common.auth import generate_key

log = logging.getLogger(__name__)

SERVICES = {
    "ingest": "shoal.ingest.v1.IngestService",
    "analysis": "shoal.analysis.v1.AnalysisService",
    "sampler": "shoal.sampler.v1.SamplerService",
    "labeling_bridge": "shoal.labeling_bridge.v1.LabelingBridgeService",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_serving(client: Client, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"`shoal serve` exited with code {proc.returncode}; see its log")
        if client.health_status("", timeout=2.0) == "SERVING":
            return
        time.sleep(0.3)
    raise RuntimeError(f"`shoal serve` was not SERVING after {timeout:.0f}s; see its log")


def run_demo(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    data_dir = out / "shoal-data"
    port = _free_port()
    key_id, key = generate_key()
    env = {**os.environ, "SHOAL_ADMIN_API_KEY": key, "SHOAL_LOG_LEVEL": "INFO"}
    server_log = out / "server.log"
    log.info("starting `shoal serve` on port %d with data under %s (log: %s)", port, data_dir, server_log)
    t0 = time.monotonic()
    with open(server_log, "wb") as log_fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shoal.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)],
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            with Client(f"127.0.0.1:{port}", api_key=key) as client:
                _wait_serving(client, proc, timeout=180)
                startup = time.monotonic() - t0
                services = {name: client.health_status(full) for name, full in SERVICES.items()}
                reflected = list_services(client.channel)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
    summary: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "services": services,
        "reflection": reflected,
        "server": {"port": port, "startup_seconds": round(startup, 2), "exit_code": code, "admin_key_id": key_id},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "report.html").write_text(_report(summary))
    ok = all(s == "SERVING" for s in services.values()) and code == 0
    for name, status in services.items():
        log.info("%-16s %s", name, status)
    log.info("wrote %s and %s", out / "summary.json", out / "report.html")
    return 0 if ok else 1


def _report(summary: dict[str, Any]) -> str:
    rows = "\n".join(
        f"<tr><td>{html.escape(name)}</td><td><code>{html.escape(SERVICES[name])}</code></td>"
        f"<td class='{'ok' if status == 'SERVING' else 'bad'}'>{html.escape(status)}</td></tr>"
        for name, status in summary["services"].items()
    )
    reflected = "".join(f"<li><code>{html.escape(s)}</code></li>" for s in summary["reflection"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shoal demo report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 56rem; color: #1d2733; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: .4rem .8rem; border-bottom: 1px solid #dde3ea; text-align: left; }}
.ok {{ color: #1a7f37; font-weight: 600; }} .bad {{ color: #cf222e; font-weight: 600; }}
</style></head><body>
<h1>Shoal demo report</h1>
<p>Generated {html.escape(summary["generated_at"])}. The all-in-one server started in
{summary["server"]["startup_seconds"]} s on embedded stores and stopped on SIGTERM with exit code
{summary["server"]["exit_code"]}.</p>
<h2>Services</h2>
<table><tr><th>service</th><th>gRPC name</th><th>health</th></tr>
{rows}
</table>
<h2>Reflection</h2><ul>{reflected}</ul>
</body></html>
"""
