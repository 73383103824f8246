"""The demo's run: ``shoal serve`` as a separate process, the steps against it, and what it writes
(``summary.json``, ``report.html``, a few lines on stdout)."""

from __future__ import annotations

import json
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
from shoal.demo import audio, automation, dataset, scenes, score, shapes, stream, streets
from shoal.demo.names import PIXEL_SPACE, SERVICES, log
from shoal.demo.report import Figures, render_report


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
    # The demo's administrator key, kept for signing in to the console over the demo's data afterwards
    # (the server registered it; only this user may read the file).
    key_file = out / "admin-key"
    key_file.touch(mode=0o600)
    key_file.chmod(0o600)
    key_file.write_text(key + "\n")
    # the demo's webhook receiver listens on loopback, which a server refuses unless told otherwise
    env = {**os.environ, "SHOAL_ADMIN_API_KEY": key, "SHOAL_LOG_LEVEL": "INFO",
           "SHOAL_AUTOMATIONS_ALLOW_PRIVATE_WEBHOOKS": "true"}  # fmt: skip
    server_log = out / "server.log"
    log.info("starting `shoal serve` on port %d with data under %s (log: %s)", port, data_dir, server_log)
    t0 = time.monotonic()
    with open(server_log, "wb") as log_fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shoal.cli",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--no-console",
            ],
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
                ingest, digits = dataset.ingest_digits(client, out, data_dir)
                # a release gate and its rule, then a worse model: the rule measures, gates and calls the hook
                fired = automation.gate_new_models(client, digits)
                if fired["inference_set_existed"]:
                    # a data dir of an earlier demo: the digits' inferences read back held the new model's
                    ingest["expected"]["inferences"] += fired["frames"]
                ingest["pool"], pool = dataset.ingest_pool(client, out, data_dir, digits)
                metrics = score.model_metrics(client)
                issues = score.label_issues(client, out)
                outliers = score.outliers(client, out)
                points = score.embedding_map(client)
                clusters = score.failure_clusters(client, out)
                campaign = score.collection_campaign(client, out, set(issues["frame_ids"]))
                standing = stream.standing_campaign(client, out, data_dir, digits, pool.model, campaign)
                scene_counts, shape_scenes = shapes.ingest_scenes(client, out, data_dir)
                segmentation = {**scene_counts, **shapes.score_scenes(client, shape_scenes, out)}
                street_counts, street_scenes = streets.ingest_streets(client, out, data_dir)
                semantic = {**street_counts, **streets.score_streets(client, street_scenes, out)}
                cuboid_counts, clouds = scenes.ingest_cuboids(client, out, data_dir)
                cuboids = {**cuboid_counts, **scenes.score_cuboids(client, clouds, out)}
                clip_counts, clips = audio.ingest_clips(client, out, data_dir)
                sounds = {**clip_counts, **audio.score_clips(client, clips, out)}
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
        "ingest": ingest,
        "metrics": metrics,
        "automation": fired,
        "label_issues": {k: v for k, v in issues.items() if k not in ("gallery", "frame_ids")},
        "outliers": {k: v for k, v in outliers.items() if k != "gallery"},
        "failure_clusters": {k: v for k, v in clusters.items() if k != "examples"},
        "campaign": {k: v for k, v in campaign.items() if k != "gallery"},
        "standing_campaign": {k: v for k, v in standing.items() if k != "gallery"},
        "instance_segmentation": {k: v for k, v in segmentation.items() if k != "gallery"},
        "semantic_segmentation": {k: v for k, v in semantic.items() if k != "gallery"},
        "cuboids_3d": {k: v for k, v in cuboids.items() if k != "gallery"},
        "sound_events": {k: v for k, v in sounds.items() if k != "gallery"},
        "map": {
            "job_id": points["job_id"],
            "frames": points["frames"],
            "fitted_on": points["fitted_on"],
            "embedding_space": PIXEL_SPACE,
        },
        "server": {"port": port, "startup_seconds": round(startup, 2), "exit_code": code, "admin_key_id": key_id},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    figures = Figures(
        label_issues=issues["gallery"],
        outliers=outliers["gallery"],
        points=points["points"],
        issue_ids=issues["frame_ids"],
        planted_ids=json.loads((out / "outliers.json").read_text()),
        cluster_examples=clusters["examples"],
        campaign=campaign["gallery"],
        standing=standing["gallery"],
        shapes=segmentation["gallery"],
        streets=semantic["gallery"],
        cuboids=cuboids["gallery"],
        sound_events=sounds["gallery"],
    )
    (out / "report.html").write_text(render_report(summary, figures))
    expected = ingest["expected"]
    ok = (
        all(s == "SERVING" for s in services.values())
        and code == 0
        and all(ingest[k] == expected[k] for k in expected)
        and points["frames"] == expected["frames"]
        and ingest["pool"]["frames"] == ingest["pool"]["pixel_embeddings"] == ingest["pool"]["expected_frames"]
        and segmentation["state"] == "UPLOAD_STATE_COMPLETED"
        and semantic["state"] == "UPLOAD_STATE_COMPLETED"
        and cuboids["state"] == "UPLOAD_STATE_COMPLETED"
        and sounds["state"] == "UPLOAD_STATE_COMPLETED"
        and fired["state"] == "SUCCEEDED"
        and fired["gates_failed"] > 0
        and fired["webhook"]["signature_verified"]
        and standing["state"] == "FULL"
        and standing["kept"] == standing["budget"]
        and standing["client_side_equal"]
        and standing["offline_twin_equal"]
    )
    for name, status in services.items():
        log.info("%-16s %s", name, status)
    log.info("wrote %s and %s", out / "summary.json", out / "report.html")
    li, ol, fc, cp = summary["label_issues"], summary["outliers"], summary["failure_clusters"], summary["campaign"]
    sc = summary["standing_campaign"]
    seg, sem = summary["instance_segmentation"], summary["semantic_segmentation"]
    cub, snd = summary["cuboids_3d"], summary["sound_events"]
    cuboid_found = ", ".join(
        f"{k['found']} of {k['planted']} {name.replace('_', ' ')}" for name, k in cub["label_issues"]["by_kind"].items()
    )
    sound_found = ", ".join(
        f"{k['found']} of {k['planted']} {name.replace('_', ' ')}" for name, k in snd["label_issues"]["by_kind"].items()
    )
    planted = ", ".join(
        f"{k['planted_in_first']} of {k['planted']} {name.replace('_', ' ')}" for name, k in seg["label_issues"].items()
    )
    found = ", ".join(c["segment"] for c in fc["clusters"])
    au, hook = summary["automation"], summary["automation"]["webhook"]
    failing = "; ".join(
        f"{g['metric']} of class {g['class_id']} on {g['segment']} {g['value']} < {g['minimum']}"
        for g in au["failing_gates"]
    )
    clusters = (
        f"{len(fc['clusters'])} among the model's {fc['errors']} errors, saved as segments {found}"
        if fc["clusters"]
        else f"none of the model's {fc['errors']} errors gather more densely than chance"
    )
    sys.stdout.write(
        f"automation {au['rule']} on {au['inference_set']}: run {au['state']}, {au['gates_passed']} of"
        f" {au['gates_evaluated']} gates passed ({failing or 'none failed'}), accuracy {au['accuracy']}; webhook"
        f" {hook['event'] or 'not called'} answered {hook['status']}, signature"
        f" {'verified' if hook['signature_verified'] else 'NOT verified'}\n"
        f"label issues: {li['found']} found, {li['correct']} of the {li['injected']} injected flips:"
        f" precision {li['precision']:.3f}, recall {li['recall']:.3f}\n"
        f"outliers: AUROC {ol['auroc']} of the outlier score for the {ol['planted']} planted frames against the"
        f" {ol['genuine']} digits; {ol['top_k_precision']:.0%} of the top {ol['planted']} are planted\n"
        f"failure clusters: {clusters}\n"
        f"campaign for '{cp['pattern']}': {cp['in_pattern']} of the {cp['selected']} pool frames chosen are in the"
        f" pattern, precision {cp['precision']:.3f} against {cp['random_precision']:.3f} for a random sample\n"
        f"standing campaign for '{sc['pattern']}' on a stream of {sc['frames_streamed']} frames in"
        f" {sc['uploads_streamed']} uploads: {sc['state']} after upload {sc['full_after_upload']}, {sc['judged']}"
        f" judged, {sc['kept']} kept ({sc['in_pattern']} in the pattern, precision {sc['precision']:.3f} against"
        f" {sc['random_precision']:.3f} for a random sample), {sc['below_threshold']} below the threshold,"
        f" {sc['near_kept']} near a kept frame, {sc['vectors_deleted']} dropped vectors deleted; client-side scoring"
        f" {'equal' if sc['client_side_equal'] else 'NOT equal'}, offline twin"
        f" {'equal' if sc['offline_twin_equal'] else 'NOT equal'}\n"
        f"instance segmentation: mask AP {seg['mask_ap']:.3f} (AP50 {seg['mask_ap50']:.3f}); planted label errors"
        f" ranked first: {planted}\n"
        f"semantic segmentation: mIoU {sem['mean_iou']:.3f}, pixel accuracy {sem['pixel_accuracy']:.3f}; label issues"
        f" flagged {sem['label_issues']['flagged']} frames, {sem['label_issues']['planted_flagged']} of the"
        f" {sem['label_issues']['planted']} with planted errors (precision {sem['label_issues']['precision']:.3f})\n"
        f"3-D cuboids: nuScenes mAP {cub['nuscenes']['map']:.3f}, NDS {cub['nuscenes']['nds']:.3f}, BEV mAP"
        f" {cub['bev_ap']['map']:.3f}; planted label errors flagged: {cuboid_found} (precision"
        f" {cub['label_issues']['precision']:.3f})\n"
        f"sound events: segment F1 {snd['segment_based']['f1']:.3f}, event F1 {snd['event_based']['f1']:.3f} (error"
        f" rate {snd['event_based']['error_rate']:.3f}); planted label errors flagged: {sound_found} (precision"
        f" {snd['label_issues']['precision']:.3f})\n"
        f"report: {out / 'report.html'}\n"
        f"console: run `shoal serve --data-dir {data_dir}` (as `.venv/bin/shoal` from a checkout), open"
        f" http://127.0.0.1:8080 and sign in with the key in {key_file}\n"
    )
    return 0 if ok else 1
