"""``make demo``: the main job on the embedded defaults.

Starts ``shoal serve`` (all four services, embedded stores) as a separate process, as a user
would, with a fresh administrator key; checks every service over gRPC (health and reflection);
builds the digits dataset (images, out-of-fold predictions, embeddings, flipped labels with the
truth kept in ``truth.json``), uploads it through the SDK and reads the counts back from both
stores; writes ``summary.json`` and ``report.html``; stops the server with SIGTERM.
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

from shoal.analysis.v1 import analysis_pb2 as apb
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
                ingest = _ingest_digits(client, out, data_dir)
                metrics = _digits_metrics(client)
                issues = _digits_label_issues(client, out)
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
        "label_issues": {k: v for k, v in issues.items() if k != "gallery"},
        "server": {"port": port, "startup_seconds": round(startup, 2), "exit_code": code, "admin_key_id": key_id},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "report.html").write_text(_report(summary, issues["gallery"]))
    expected = ingest["expected"]
    ok = (
        all(s == "SERVING" for s in services.values())
        and code == 0
        and all(ingest[k] == expected[k] for k in ("frames", "labels", "inferences", "embeddings"))
    )
    for name, status in services.items():
        log.info("%-16s %s", name, status)
    log.info("wrote %s and %s", out / "summary.json", out / "report.html")
    return 0 if ok else 1


PROJECT = "digits"
DATASET = "digits"
SPACE = "mlp-hidden"
INFERENCE_SET = "mlp-oof"


def _ingest_digits(client: Client, out: Path, data_dir: Path) -> dict[str, Any]:
    """Builds the digits dataset, uploads it and returns the counts read back from both stores."""
    import grpc

    from shoal.digits import build_digits
    from shoal.ingest.v1 import ingest_pb2 as pb
    from shoal.sdk import UploadColumns

    t0 = time.monotonic()
    digits = build_digits(data_dir / "media" / "digits")
    log.info(
        "built digits: %d frames, %d labels flipped (%.1fs)",
        len(digits.frame_ids),
        digits.flipped.sum(),
        time.monotonic() - t0,
    )
    truth = {
        fid: {"true": int(t), "given": int(g), "flipped": bool(f)}
        for fid, t, g, f in zip(digits.frame_ids, digits.true_labels, digits.given_labels, digits.flipped, strict=True)
    }
    (out / "truth.json").write_text(json.dumps(truth) + "\n")
    dim = digits.embeddings.shape[1]
    try:
        client.ingest.CreateProject(
            pb.CreateProjectRequest(
                project=pb.Project(
                    name=PROJECT,
                    display_name="scikit-learn digits",
                    task_type=pb.TASK_TYPE_CLASSIFICATION,
                    classes=[pb.ClassDef(id=i, name=str(i)) for i in range(10)],
                    embedding_spaces=[
                        pb.EmbeddingSpace(name=SPACE, dimension=dim, metric=pb.DISTANCE_METRIC_COSINE,
                                          level=pb.EMBEDDING_LEVEL_FRAME, model_name="sklearn-mlp", model_version="1")
                    ],
                )
            )
        )  # fmt: skip
        client.ingest.CreateDataset(
            pb.CreateDatasetRequest(
                project=PROJECT,
                dataset=pb.Dataset(name=DATASET, kind=pb.DATASET_KIND_LABELED, splits=["train", "test"]),
            )
        )
        client.ingest.CreateInferenceSet(
            pb.CreateInferenceSetRequest(
                project=PROJECT,
                inference_set=pb.InferenceSet(
                    name=INFERENCE_SET, dataset=DATASET, model_name="sklearn-mlp", model_version="1"
                ),
            )
        )
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.ALREADY_EXISTS:  # a second run on the same data dir
            raise
    columns = UploadColumns(
        frame_ids=digits.frame_ids,
        splits=digits.splits,
        media_uris=digits.media_uris,
        sizes=[(8, 8)] * len(digits.frame_ids),
        metadata=[{"source": "sklearn-digits", "row": i} for i in range(len(digits.frame_ids))],
        class_ids=digits.given_labels,
        provenance=pb.Provenance(source="import", author="shoal demo", reason="digits with 10% labels flipped"),
        inference_set=INFERENCE_SET,
        probabilities=digits.probabilities,
        embeddings={SPACE: digits.embeddings},
    )
    t0 = time.monotonic()
    result = client.upload(PROJECT, DATASET, columns, chunk_size=500, progress=False)
    status = client.wait_for_upload(PROJECT, result.upload_id, timeout=300)
    seconds = time.monotonic() - t0
    stats = client.ingest.GetDataset(pb.GetDatasetRequest(project=PROJECT, dataset=DATASET, include_stats=True)).stats
    n = len(digits.frame_ids)
    log.info("uploaded %d frames in %.1fs (%s)", n, seconds, pb.UploadState.Name(status.state))
    return {
        "frames": stats.frames,
        "labels": stats.labeled_frames,
        "inferences": stats.inferences,
        "embeddings": stats.embeddings[SPACE],
        "expected": {"frames": n, "labels": n, "inferences": n, "embeddings": n},
        "flipped_labels": int(digits.flipped.sum()),
        "model_accuracy_vs_truth": round(float((digits.probabilities.argmax(1) == digits.true_labels).mean()), 4),
        "upload_id": result.upload_id,
        "upload_state": pb.UploadState.Name(status.state).removeprefix("UPLOAD_STATE_"),
        "upload_seconds": round(seconds, 2),
    }


def _digits_metrics(client: Client) -> dict[str, Any]:
    """The model's metrics against the dataset's labels (the flipped ones included), as the
    analysis service computes them."""
    m = client.analysis.GetClassificationMetrics(
        apb.GetClassificationMetricsRequest(project=PROJECT, inference_set=INFERENCE_SET)
    ).metrics
    k = len(m.confusion.class_ids)
    counts = list(m.confusion.counts)
    per_class = {
        c.class_name: {"precision": round(c.precision, 4), "recall": round(c.recall, 4), "f1": round(c.f1, 4),
                       "support": c.support}
        for c in m.per_class
    }  # fmt: skip
    worst = sorted(m.per_class, key=lambda c: c.f1)[:3]
    log.info("accuracy %.4f over %d frames; worst classes by F1: %s", m.accuracy, m.frames,
             ", ".join(f"{c.class_name} ({c.f1:.3f})" for c in worst))  # fmt: skip
    return {
        "inference_set": m.inference_set,
        "frames": m.frames,
        "accuracy": round(m.accuracy, 4),
        "macro_f1": round(m.macro_f1, 4),
        "top_k": m.top_k,
        "top_k_accuracy": round(m.top_k_accuracy, 4),
        "expected_calibration_error": round(m.expected_calibration_error, 4),
        "classes": [c.class_name for c in m.per_class],
        # rows: labeled class, columns: predicted class (the abstention column is empty at threshold 0)
        "confusion_matrix": [counts[i * (k + 1) : i * (k + 1) + k] for i in range(k)],
        "per_class": per_class,
        "worst_classes": [c.class_name for c in worst],
    }


def _digits_label_issues(client: Client, out: Path) -> dict[str, Any]:
    """Runs the label-issues job on the digits and scores what it found against the flips the
    dataset was built with (``truth.json``)."""
    from shoal.common.v1 import common_pb2 as cpb

    t0 = time.monotonic()
    job = client.analysis.StartLabelIssues(
        apb.StartLabelIssuesRequest(project=PROJECT, inference_set=INFERENCE_SET, rerun=True)
    ).job
    while job.state not in (cpb.JOB_STATE_SUCCEEDED, cpb.JOB_STATE_FAILED, cpb.JOB_STATE_CANCELLED):
        time.sleep(0.2)
        job = client.analysis.GetJob(apb.GetJobRequest(project=PROJECT, job_id=job.job_id)).job
        if time.monotonic() - t0 > 300:
            raise RuntimeError(f"label-issues job {job.job_id} still {cpb.JobState.Name(job.state)} after 300 s")
    if job.state != cpb.JOB_STATE_SUCCEEDED:
        raise RuntimeError(f"label-issues job {job.job_id} ended {cpb.JobState.Name(job.state)}: {job.message}")
    found, token = [], ""
    while True:
        resp = client.analysis.QueryLabelIssues(apb.QueryLabelIssuesRequest(
            project=PROJECT, job_id=job.job_id, page=cpb.PageRequest(page_size=1000, page_token=token)))  # fmt: skip
        found += list(resp.issues)
        token = resp.page.next_page_token
        if not token:
            break
    truth = json.loads((out / "truth.json").read_text())
    injected = {fid for fid, t in truth.items() if t["flipped"]}
    hits = sum(1 for r in found if r.ref.frame_id in injected)
    precision = hits / len(found) if found else 0.0
    recall = hits / len(injected) if injected else 0.0
    log.info("label issues: %d found, %d of the %d injected flips (precision %.3f, recall %.3f) in %.1fs",
             len(found), hits, len(injected), precision, recall, time.monotonic() - t0)  # fmt: skip
    gallery = [
        {
            "frame_id": r.ref.frame_id,
            "media_uri": r.media_uri,
            "given": r.given_label,
            "suggested": r.suggested_label,
            "self_confidence": round(r.self_confidence, 3),
            "suggested_probability": round(r.suggested_probability, 3),
            "injected": r.ref.frame_id in injected,
            "true": truth[r.ref.frame_id]["true"],
        }
        for r in found[:36]
    ]
    return {
        "job_id": job.job_id,
        "injected": len(injected),
        "found": len(found),
        "correct": hits,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / (precision + recall), 4) if hits else 0.0,
        "gallery": gallery,
    }


def _inline_image(uri: str) -> str:
    """The image as a data: URI, so the report stands alone."""
    import base64
    from urllib.parse import unquote, urlparse

    path = Path(unquote(urlparse(uri).path))
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _gallery(items: list[dict[str, Any]]) -> str:
    cells = []
    for it in items:
        mark = "ok" if it["injected"] else "bad"
        cells.append(
            f"<figure><img src='{_inline_image(it['media_uri'])}' width='64' height='64'"
            f" alt='{html.escape(it['frame_id'])}'>"
            f"<figcaption>given <b>{it['given']}</b> → suggested <b>{it['suggested']}</b><br>"
            f"p(given) {it['self_confidence']}, p(suggested) {it['suggested_probability']}<br>"
            f"<span class='{mark}'>{'injected flip' if it['injected'] else 'not injected'}</span></figcaption></figure>"
        )
    return f"<div class='gallery'>{''.join(cells)}</div>"


def _heat_map(metrics: dict[str, Any]) -> str:
    names = metrics["classes"]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = []
    for name, row in zip(names, metrics["confusion_matrix"], strict=True):
        total = sum(row) or 1
        cells = []
        for j, v in enumerate(row):
            share = v / total
            hue = 140 if names[j] == name else 0  # green diagonal, red confusions
            cells.append(f"<td style='background: hsla({hue}, 70%, 45%, {share:.3f})' title='{share:.1%}'>{v}</td>")
        body.append(f"<tr><th>{html.escape(name)}</th>{''.join(cells)}</tr>")
    return f"<table class='heat'><tr><th>label ↓ predicted →</th>{head}</tr>{''.join(body)}</table>"


def _report(summary: dict[str, Any], gallery: list[dict[str, Any]]) -> str:
    rows = "\n".join(
        f"<tr><td>{html.escape(name)}</td><td><code>{html.escape(SERVICES[name])}</code></td>"
        f"<td class='{'ok' if status == 'SERVING' else 'bad'}'>{html.escape(status)}</td></tr>"
        for name, status in summary["services"].items()
    )
    reflected = "".join(f"<li><code>{html.escape(s)}</code></li>" for s in summary["reflection"])
    ing = summary["ingest"]
    ingest_rows = "\n".join(
        f"<tr><td>{k}</td><td>{ing['expected'][k]}</td>"
        f"<td class='{'ok' if ing[k] == ing['expected'][k] else 'bad'}'>{ing[k]}</td></tr>"
        for k in ("frames", "labels", "inferences", "embeddings")
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shoal demo report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 56rem; color: #1d2733; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: .4rem .8rem; border-bottom: 1px solid #dde3ea; text-align: left; }}
.ok {{ color: #1a7f37; font-weight: 600; }} .bad {{ color: #cf222e; font-weight: 600; }}
table.heat td {{ text-align: right; font-variant-numeric: tabular-nums; border: 1px solid #eef1f4; }}
.gallery {{ display: flex; flex-wrap: wrap; gap: .6rem; }}
.gallery figure {{ margin: 0; width: 8.5rem; font-size: .75rem; }}
.gallery img {{ image-rendering: pixelated; border: 1px solid #dde3ea; }}
</style></head><body>
<h1>Shoal demo report</h1>
<p>Generated {html.escape(summary["generated_at"])}. The all-in-one server started in
{summary["server"]["startup_seconds"]} s on embedded stores and stopped on SIGTERM with exit code
{summary["server"]["exit_code"]}.</p>
<h2>Services</h2>
<table><tr><th>service</th><th>gRPC name</th><th>health</th></tr>
{rows}
</table>
<h2>Ingest</h2>
<p>The digits dataset ({summary["ingest"]["expected"]["frames"]} frames, {summary["ingest"]["flipped_labels"]}
labels flipped on purpose) was uploaded through the SDK in {summary["ingest"]["upload_seconds"]} s and read back:</p>
<table><tr><th></th><th>expected</th><th>read back</th></tr>
{ingest_rows}
</table>
<h2>Model performance</h2>
<p>The classifier's out-of-fold predictions against the dataset's labels (flipped ones included):
accuracy {summary["metrics"]["accuracy"]}, macro F1 {summary["metrics"]["macro_f1"]}, top-{summary["metrics"]["top_k"]}
accuracy {summary["metrics"]["top_k_accuracy"]}, expected calibration error
{summary["metrics"]["expected_calibration_error"]}. Worst classes by F1:
{html.escape(", ".join(summary["metrics"]["worst_classes"]))}.</p>
{_heat_map(summary["metrics"])}
<h2>Label issues</h2>
<p>Confident learning over the out-of-fold probabilities flagged {summary["label_issues"]["found"]} frames;
{summary["label_issues"]["correct"]} of them are among the {summary["label_issues"]["injected"]} labels flipped on
purpose (precision {summary["label_issues"]["precision"]}, recall {summary["label_issues"]["recall"]}). The least
self-confident first:</p>
{_gallery(gallery)}
<h2>Reflection</h2><ul>{reflected}</ul>
</body></html>
"""
