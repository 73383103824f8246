"""Screenshots of the console's main pages over the demo's data, for the console guide (docs/console/*.png).

    make demo
    .venv/bin/python scripts/console_screenshots.py --demo demo-out

Starts `shoal serve` on the demo's data with the console on a free port, signs in with the demo's key
(demo-out/admin-key), opens each page in Debian's Chromium (the Playwright client, executable_path)
and writes a PNG per page.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PAGES = [
    ("projects", "#/projects", "#projects"),
    ("overview", "#/p/digits", "#upload-history, #uploads p"),
    ("performance", "#/p/digits/performance?inference_set=mlp-oof", "#heatmap, #main svg, #main canvas"),
    (
        "examples",
        "#/p/digits/examples?dataset=digits&inference_set=mlp-oof&correct=false&sort=loss&desc=true",
        "#grid figure.thumb",
    ),
    ("frame", "#/p/digits/frame/digits/digit-0004?inference_set=mlp-oof", "#neighbours figure.thumb"),
    ("issues", "#/p/digits/issues?inference_set=mlp-oof", "#main img"),
    ("map", "#/p/digits/map?dataset=digits&space=pixels", "#map-canvas[data-drawn]:not([data-drawn='0'])"),
    ("findings", "#/p/digits/findings", "#outliers figure.thumb"),
    ("campaigns", "#/p/digits/campaigns", "#main h1"),
    ("jobs", "#/p/digits/jobs", "#jobs"),
    ("frame-point-cloud", "#/p/scenes3d/frame/drive/lidar-0002?inference_set=dbscan-boxes", "#bev[data-view]"),
    ("performance-cuboids", "#/p/scenes3d/performance?inference_set=dbscan-boxes", "#main table"),
    ("frame-audio", "#/p/beeps/frame/clips/clip-004.wav?inference_set=band-energy", "#spectrogram[data-drawn]"),
    ("issues-audio", "#/p/beeps/issues?inference_set=band-energy", "#main table, #main .issue"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", type=Path, default=REPO / "demo-out", help="the demo's output folder")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "console", help="where the PNGs go")
    ap.add_argument("--chromium", default=os.environ.get("SHOAL_CHROMIUM", "/usr/bin/chromium"))
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=800)
    args = ap.parse_args()
    key = (args.demo / "admin-key").read_text().strip()
    grpc_port, port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    log = (args.demo / "console-screenshots.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shoal.cli", "serve", "--port", str(grpc_port), "--console-port", str(port),
         "--data-dir", str(args.demo / "shoal-data")],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        import requests
        from playwright.sync_api import sync_playwright

        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while True:
            try:
                if requests.get(url + "/readyz", timeout=5).json().get("all_serving"):
                    break
            except (requests.ConnectionError, ValueError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.stderr.write(f"shoal serve did not become ready; see {log.name}\n")
                return 1
            time.sleep(0.5)
        args.out.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.set_default_timeout(300_000)
            page.goto(url + "/#/signin")
            page.fill("#api-key", key)
            page.click("#signin-form button[type=submit]")
            page.wait_for_selector("#projects")
            for name, fragment, ready in PAGES:
                page.goto(f"{url}/{fragment}")
                page.wait_for_selector(ready)
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(args.out / f"{name}.png"))
                sys.stdout.write(f"{args.out / name}.png\n")
            browser.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
