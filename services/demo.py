"""``make demo``: the main job on the embedded defaults.

Starts ``shoal serve`` (all four services, embedded stores) as a separate process, as a user
would, with a fresh administrator key; checks every service over gRPC (health and reflection);
builds the digits dataset (images, out-of-fold predictions, embeddings, flipped labels with the
truth kept in ``truth.json``, and planted non-digit images listed in ``outliers.json``), uploads
it through the SDK and reads the counts back from both stores; computes the metrics, runs the
label-issue, neighbour and embedding-map jobs and scores what they found against what was
planted; writes ``summary.json`` and a self-contained ``report.html``; stops the server with
SIGTERM.
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
    # The demo's administrator key, kept for signing in to the console over the demo's data afterwards
    # (the server registered it; only this user may read the file).
    key_file = out / "admin-key"
    key_file.touch(mode=0o600)
    key_file.chmod(0o600)
    key_file.write_text(key + "\n")
    env = {**os.environ, "SHOAL_ADMIN_API_KEY": key, "SHOAL_LOG_LEVEL": "INFO"}
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
                ingest, digits = _ingest_digits(client, out, data_dir)
                ingest["pool"] = _ingest_pool(client, out, data_dir, digits)
                metrics = _digits_metrics(client)
                issues = _digits_label_issues(client, out)
                outliers = _digits_outliers(client, out)
                points = _digits_map(client)
                clusters = _digits_failure_clusters(client, out)
                campaign = _digits_campaign(client, out, set(issues["frame_ids"]))
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
        "label_issues": {k: v for k, v in issues.items() if k not in ("gallery", "frame_ids")},
        "outliers": {k: v for k, v in outliers.items() if k != "gallery"},
        "failure_clusters": {k: v for k, v in clusters.items() if k != "examples"},
        "campaign": {k: v for k, v in campaign.items() if k != "gallery"},
        "map": {
            "job_id": points["job_id"],
            "frames": points["frames"],
            "fitted_on": points["fitted_on"],
            "embedding_space": PIXEL_SPACE,
        },
        "server": {"port": port, "startup_seconds": round(startup, 2), "exit_code": code, "admin_key_id": key_id},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "report.html").write_text(
        _report(
            summary,
            issues["gallery"],
            outliers["gallery"],
            _map_svgs(points["points"], issues["frame_ids"], out),
            clusters["examples"],
            campaign["gallery"],
        )
    )
    expected = ingest["expected"]
    ok = (
        all(s == "SERVING" for s in services.values())
        and code == 0
        and all(ingest[k] == expected[k] for k in expected)
        and points["frames"] == expected["frames"]
        and ingest["pool"]["frames"] == ingest["pool"]["pixel_embeddings"] == ingest["pool"]["expected_frames"]
    )
    for name, status in services.items():
        log.info("%-16s %s", name, status)
    log.info("wrote %s and %s", out / "summary.json", out / "report.html")
    li, ol, fc, cp = summary["label_issues"], summary["outliers"], summary["failure_clusters"], summary["campaign"]
    found = ", ".join(c["segment"] for c in fc["clusters"])
    clusters = (
        f"{len(fc['clusters'])} among the model's {fc['errors']} errors, saved as segments {found}"
        if fc["clusters"]
        else f"none of the model's {fc['errors']} errors gather more densely than chance"
    )
    sys.stdout.write(
        f"label issues: {li['found']} found, {li['correct']} of the {li['injected']} injected flips:"
        f" precision {li['precision']:.3f}, recall {li['recall']:.3f}\n"
        f"outliers: AUROC {ol['auroc']} of the outlier score for the {ol['planted']} planted frames against the"
        f" {ol['genuine']} digits; {ol['top_k_precision']:.0%} of the top {ol['planted']} are planted\n"
        f"failure clusters: {clusters}\n"
        f"campaign for '{cp['pattern']}': {cp['in_pattern']} of the {cp['selected']} pool frames chosen are in the"
        f" pattern, precision {cp['precision']:.3f} against {cp['random_precision']:.3f} for a random sample\n"
        f"report: {out / 'report.html'}\n"
        f"console: run `shoal serve --data-dir {data_dir}` (as `.venv/bin/shoal` from a checkout), open"
        f" http://127.0.0.1:8080 and sign in with the key in {key_file}\n"
    )
    return 0 if ok else 1


PROJECT = "digits"
DATASET = "digits"
SPACE = "mlp-hidden"
#: raw pixel intensities: the space the neighbour and map jobs run in (under cosine distance the
#: network's hidden layer hardly sets the planted images apart, an outlier AUROC near 0.6: it never
#: saw anything like them, and its activations for an inverted digit point the way a digit's do)
PIXEL_SPACE = "pixels"
INFERENCE_SET = "mlp-oof"


def _create_all(creations: Any) -> None:
    """Calls each (create RPC, request) in turn; what exists already (a second run on the same
    data dir) is kept."""
    import grpc

    for create, request in creations:
        try:
            create(request)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise


def _ingest_digits(client: Client, out: Path, data_dir: Path) -> tuple[dict[str, Any], Any]:
    """Builds the digits dataset, uploads it and returns the counts read back from both stores,
    and the dataset."""

    from shoal.digits import build_digits, pixels
    from shoal.ingest.v1 import ingest_pb2 as pb
    from shoal.sdk import UploadColumns

    t0 = time.monotonic()
    digits = build_digits(data_dir / "media" / "digits")
    planted = digits.planted
    log.info(
        "built digits: %d frames, %d labels flipped, %d outliers planted (%.1fs)",
        len(digits.frame_ids),
        digits.flipped.sum(),
        len(planted.frame_ids),
        time.monotonic() - t0,
    )
    truth = {
        fid: {"true": int(t), "given": int(g), "flipped": bool(f)}
        for fid, t, g, f in zip(digits.frame_ids, digits.true_labels, digits.given_labels, digits.flipped, strict=True)
    }
    (out / "truth.json").write_text(json.dumps(truth) + "\n")
    (out / "outliers.json").write_text(json.dumps(dict(zip(planted.frame_ids, planted.kinds, strict=True))) + "\n")
    dim = digits.embeddings.shape[1]
    pixel_space = pb.EmbeddingSpace(
        name=PIXEL_SPACE, dimension=64, metric=pb.DISTANCE_METRIC_COSINE, level=pb.EMBEDDING_LEVEL_FRAME,
        model_name="raw-pixels", model_version="1",
    )  # fmt: skip
    creations = (
        (client.ingest.CreateProject, pb.CreateProjectRequest(project=pb.Project(
            name=PROJECT, display_name="scikit-learn digits", task_type=pb.TASK_TYPE_CLASSIFICATION,
            classes=[pb.ClassDef(id=i, name=str(i)) for i in range(10)],
            embedding_spaces=[
                pb.EmbeddingSpace(name=SPACE, dimension=dim, metric=pb.DISTANCE_METRIC_COSINE,
                                  level=pb.EMBEDDING_LEVEL_FRAME, model_name="sklearn-mlp", model_version="1"),
                pixel_space,
            ]))),
        # a data dir from a demo without the pixel space gets it added
        (client.ingest.CreateEmbeddingSpace,
         pb.CreateEmbeddingSpaceRequest(project=PROJECT, embedding_space=pixel_space)),
        (client.ingest.CreateDataset, pb.CreateDatasetRequest(project=PROJECT, dataset=pb.Dataset(
            name=DATASET, kind=pb.DATASET_KIND_LABELED, splits=["train", "test"]))),
        (client.ingest.CreateInferenceSet, pb.CreateInferenceSetRequest(project=PROJECT, inference_set=pb.InferenceSet(
            name=INFERENCE_SET, dataset=DATASET, model_name="sklearn-mlp", model_version="1"))),
    )  # fmt: skip
    _create_all(creations)
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
        embeddings={SPACE: digits.embeddings, PIXEL_SPACE: pixels(digits.images)},
    )
    # the planted images: frames and embeddings only (no label, no prediction), so the metrics and
    # label issues are those of the digits alone
    extra = UploadColumns(
        frame_ids=planted.frame_ids,
        splits=planted.splits,
        media_uris=planted.media_uris,
        sizes=[(8, 8)] * len(planted.frame_ids),
        metadata=[{"source": "planted-outlier", "kind": k} for k in planted.kinds],
        embeddings={SPACE: planted.embeddings, PIXEL_SPACE: pixels(planted.images)},
    )
    t0 = time.monotonic()
    result = client.upload(PROJECT, DATASET, columns, chunk_size=500, progress=False)
    status = client.wait_for_upload(PROJECT, result.upload_id, timeout=300)
    planted_result = client.upload(PROJECT, DATASET, extra, progress=False)
    planted_status = client.wait_for_upload(PROJECT, planted_result.upload_id, timeout=300)
    seconds = time.monotonic() - t0
    stats = client.ingest.GetDataset(pb.GetDatasetRequest(project=PROJECT, dataset=DATASET, include_stats=True)).stats
    n, m = len(digits.frame_ids), len(planted.frame_ids)
    log.info("uploaded %d digits and %d planted frames in %.1fs (%s, %s)", n, m, seconds,
             pb.UploadState.Name(status.state), pb.UploadState.Name(planted_status.state))  # fmt: skip
    return {
        "frames": stats.frames,
        "labels": stats.labeled_frames,
        "inferences": stats.inferences,
        "embeddings": stats.embeddings[SPACE],
        "pixel_embeddings": stats.embeddings[PIXEL_SPACE],
        "expected": {"frames": n + m, "labels": n, "inferences": n, "embeddings": n + m, "pixel_embeddings": n + m},
        "flipped_labels": int(digits.flipped.sum()),
        "planted_outliers": m,
        "model_accuracy_vs_truth": round(float((digits.probabilities.argmax(1) == digits.true_labels).mean()), 4),
        "upload_id": result.upload_id,
        "upload_state": pb.UploadState.Name(status.state).removeprefix("UPLOAD_STATE_"),
        "planted_upload_state": pb.UploadState.Name(planted_status.state).removeprefix("UPLOAD_STATE_"),
        "upload_seconds": round(seconds, 2),
    }, digits


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


def _finish(client: Client, job: Any, what: str, timeout: float = 300) -> Any:
    """Waits for an analysis job to end; returns it, or raises unless it succeeded."""
    from shoal.common.v1 import common_pb2 as cpb

    t0 = time.monotonic()
    while job.state not in (cpb.JOB_STATE_SUCCEEDED, cpb.JOB_STATE_FAILED, cpb.JOB_STATE_CANCELLED):
        time.sleep(0.2)
        job = client.analysis.GetJob(apb.GetJobRequest(project=PROJECT, job_id=job.job_id)).job
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"{what} job {job.job_id} still {cpb.JobState.Name(job.state)} after {timeout:.0f} s")
    if job.state != cpb.JOB_STATE_SUCCEEDED:
        raise RuntimeError(f"{what} job {job.job_id} ended {cpb.JobState.Name(job.state)}: {job.message}")
    return job


def _pages(call: Any, request: Any, field: str) -> list[Any]:
    """Every row of a paged query."""
    from shoal.common.v1 import common_pb2 as cpb

    rows: list[Any] = []
    token = ""
    while True:
        request.page.CopyFrom(cpb.PageRequest(page_size=1000, page_token=token))
        resp = call(request)
        rows += list(getattr(resp, field))
        token = resp.page.next_page_token
        if not token:
            return rows


def _digits_label_issues(client: Client, out: Path) -> dict[str, Any]:
    """Runs the label-issues job on the digits and scores what it found against the flips the
    dataset was built with (``truth.json``)."""
    t0 = time.monotonic()
    job = client.analysis.StartLabelIssues(
        apb.StartLabelIssuesRequest(project=PROJECT, inference_set=INFERENCE_SET, rerun=True)
    ).job
    job = _finish(client, job, "label-issues")
    found = _pages(
        client.analysis.QueryLabelIssues, apb.QueryLabelIssuesRequest(project=PROJECT, job_id=job.job_id), "issues"
    )
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
        "frame_ids": [r.ref.frame_id for r in found],
    }


def _digits_outliers(client: Client, out: Path) -> dict[str, Any]:
    """Runs the neighbour job in the pixel space and scores its outlier ranking against the
    planted images (``outliers.json``): the AUROC of the outlier score for planted against
    genuine frames, and the share of planted frames among the top as many as were planted."""
    from sklearn.metrics import roc_auc_score

    t0 = time.monotonic()
    job = client.analysis.StartNeighborAnalysis(
        apb.StartNeighborAnalysisRequest(project=PROJECT, dataset=DATASET, embedding_space=PIXEL_SPACE, rerun=True)
    ).job
    job = _finish(client, job, "neighbour")
    request = apb.QueryOutliersRequest(project=PROJECT, job_id=job.job_id)
    frames = _pages(client.analysis.QueryOutliers, request, "frames")  # highest outlier score first
    summary = client.analysis.QueryOutliers(request).summary
    kinds: dict[str, str] = json.loads((out / "outliers.json").read_text())
    planted = [f.ref.frame_id in kinds for f in frames]
    scores = [f.outlier_score for f in frames]
    m = sum(planted)
    auroc = round(float(roc_auc_score(planted, scores)), 4) if 0 < m < len(frames) else None
    top = sum(planted[:m]) / m if m else 0.0
    log.info("outliers: AUROC %s for the %d planted frames among %d; %d of the top %d are planted (%.1fs)",
             auroc, m, len(frames), sum(planted[:m]), m, time.monotonic() - t0)  # fmt: skip
    gallery = [
        {
            "frame_id": f.ref.frame_id,
            "media_uri": f.media_uri,
            "rank": rank + 1,
            "score": round(f.outlier_score, 4),
            "label": f.label_class if f.HasField("label_class") else None,
            "neighbor_label": f.neighbor_label if f.HasField("neighbor_label") else None,
            "planted": kinds.get(f.ref.frame_id),
        }
        for rank, f in enumerate(frames[:48])
    ]
    return {
        "job_id": job.job_id,
        "embedding_space": PIXEL_SPACE,
        "k": summary.k,
        "frames": len(frames),
        "planted": m,
        "genuine": len(frames) - m,
        "auroc": auroc,
        "top_k_precision": round(top, 4),
        "exact_duplicate_pairs": summary.exact_duplicate_pairs,
        "near_duplicate_pairs": summary.near_duplicate_pairs,
        "cross_split_pairs": summary.cross_split_pairs,
        "gallery": gallery,
    }


def _digits_map(client: Client) -> dict[str, Any]:
    """Runs the embedding-map job in the pixel space and reads every point back."""
    t0 = time.monotonic()
    job = client.analysis.StartEmbeddingMap(
        apb.StartEmbeddingMapRequest(project=PROJECT, dataset=DATASET, embedding_space=PIXEL_SPACE, rerun=True)
    ).job
    job = _finish(client, job, "embedding-map")
    view = client.analysis.GetMapViewport(apb.GetMapViewportRequest(project=PROJECT, job_id=job.job_id,
                                                                    max_points=100_000))  # fmt: skip
    log.info("embedding map: %d points (UMAP fitted on %d) in %.1fs", view.summary.frames, view.summary.fitted_on,
             time.monotonic() - t0)  # fmt: skip
    return {
        "job_id": job.job_id,
        "frames": view.summary.frames,
        "fitted_on": view.summary.fitted_on,
        "points": [(p.frame_id, p.x, p.y, p.label_class if p.HasField("label_class") else None) for p in view.points],
    }


def _digits_failure_clusters(client: Client, out: Path) -> dict[str, Any]:
    """Clusters the model's errors in its own hidden-layer space, saves the clusters as segments
    and reads a few example images of each back through the segment."""
    from shoal.common.v1 import common_pb2 as cpb

    t0 = time.monotonic()
    job = client.analysis.StartFailureClusters(apb.StartFailureClustersRequest(
        project=PROJECT, inference_set=INFERENCE_SET, embedding_space=SPACE, rerun=True)).job  # fmt: skip
    job = _finish(client, job, "failure-cluster")
    got = client.analysis.GetFailureClusters(apb.GetFailureClustersRequest(project=PROJECT, job_id=job.job_id))
    prefix = f"failures-{job.job_id[-8:]}-"  # a fresh name per run: the data folder and its segments stay
    saved: list[Any] = []
    if got.clusters:
        saved = list(client.analysis.SaveFailureClusters(apb.SaveFailureClustersRequest(
            project=PROJECT, job_id=job.job_id, name_prefix=prefix, author="demo")).segments)  # fmt: skip
    truth = json.loads((out / "truth.json").read_text())
    clusters, examples = [], []
    for c, seg in zip(got.clusters, saved, strict=True):
        rows = client.analysis.QueryDatapoints(apb.QueryDatapointsRequest(
            project=PROJECT, inference_set=INFERENCE_SET, page=cpb.PageRequest(page_size=12),
            filter=cpb.Filter(all=[cpb.Condition(field="segment", equals=cpb.Value(string_value=seg.name))]),
        )).datapoints  # fmt: skip
        flipped = sum(truth[f]["flipped"] for f in c.example_frame_ids if f in truth)
        clusters.append({
            "cluster": c.cluster, "errors": c.errors, "frames": c.frames, "error_rate": round(c.error_rate, 3),
            "lift": round(c.lift, 2), "p_value": c.p_value, "description": c.description, "segment": seg.name,
            "segment_size": seg.size, "examples_with_flipped_labels": flipped,
        })  # fmt: skip
        examples.append([(d.ref.frame_id, d.media_uri, d.label_class, d.predicted_class) for d in rows])
    log.info("failure clusters: %d errors, %d clusters (%d clustered errors) in %.1fs", got.summary.errors,
             len(clusters), got.summary.clustered_errors, time.monotonic() - t0)  # fmt: skip
    return {
        "job_id": job.job_id,
        "embedding_space": SPACE,
        "errors": got.summary.errors,
        "error_rate": round(got.summary.error_rate, 4),
        "clustered_errors": got.summary.clustered_errors,
        "clusters": clusters,
        "examples": examples,
    }


POOL = "digits-pool"
POOL_INFERENCE_SET = "mlp-pool"
#: frames a campaign may choose from the pool
CAMPAIGN_BUDGET = 30
#: a little diversity: more frames like the failure, not thirty redraws of the one nearest digit
CAMPAIGN_DIVERSITY = 0.1


def _ingest_pool(client: Client, out: Path, data_dir: Path, digits: Any) -> dict[str, Any]:
    """Builds the unlabeled pool (noisy redraws of the test-split digits, see
    :func:`shoal.digits.build_pool`) and uploads it with its pixel vectors and the pool model's
    predictions; the true labels go to ``pool_truth.json``."""

    from shoal.digits import build_pool, pixels
    from shoal.ingest.v1 import ingest_pb2 as pb
    from shoal.sdk import UploadColumns

    t0 = time.monotonic()
    pool = build_pool(data_dir / "media" / "pool", digits)
    predicted = pool.probabilities.argmax(1)
    truth = {
        fid: {"true": int(t), "predicted": int(p), "source": src}
        for fid, t, p, src in zip(pool.frame_ids, pool.true_labels, predicted, pool.sources, strict=True)
    }
    (out / "pool_truth.json").write_text(json.dumps(truth) + "\n")
    creations = (
        (client.ingest.CreateDataset, pb.CreateDatasetRequest(project=PROJECT, dataset=pb.Dataset(
            name=POOL, kind=pb.DATASET_KIND_UNLABELED_POOL, splits=["pool"]))),
        (client.ingest.CreateInferenceSet, pb.CreateInferenceSetRequest(project=PROJECT, inference_set=pb.InferenceSet(
            name=POOL_INFERENCE_SET, dataset=POOL, model_name="sklearn-mlp-train-split", model_version="1"))),
    )  # fmt: skip
    _create_all(creations)
    columns = UploadColumns(
        frame_ids=pool.frame_ids,
        splits=["pool"] * len(pool.frame_ids),
        media_uris=pool.media_uris,
        sizes=[(8, 8)] * len(pool.frame_ids),
        metadata=[{"source": "redrawn-test-digit"}] * len(pool.frame_ids),
        inference_set=POOL_INFERENCE_SET,
        probabilities=pool.probabilities,
        embeddings={PIXEL_SPACE: pixels(pool.images)},
    )
    result = client.upload(PROJECT, POOL, columns, progress=False)
    status = client.wait_for_upload(PROJECT, result.upload_id, timeout=300)
    log.info("uploaded the pool: %d unlabeled frames (%s) in %.1fs", len(pool.frame_ids),
             pb.UploadState.Name(status.state), time.monotonic() - t0)  # fmt: skip
    stats = client.ingest.GetDataset(pb.GetDatasetRequest(project=PROJECT, dataset=POOL, include_stats=True)).stats
    return {
        "frames": stats.frames,
        "expected_frames": len(pool.frame_ids),
        "pixel_embeddings": stats.embeddings[PIXEL_SPACE],
        "upload_state": pb.UploadState.Name(status.state).removeprefix("UPLOAD_STATE_"),
    }


def _digits_campaign(client: Client, out: Path, flagged: set[str]) -> dict[str, Any]:
    """The loop of a user who found a failure: the commonest confusion among the model's errors
    on the train split (labeled a, predicted b, leaving out the frames flagged as label issues,
    whose labels are suspect) becomes a seed segment, and a collection campaign chooses the
    pool frames most like it. A chosen frame belongs to the pattern when it truly is an a that
    the pool's model predicts as b; ``random_precision`` is the share of such frames in the whole
    pool, the expected precision of a random sample of the same budget."""
    from shoal.common.v1 import common_pb2 as cpb

    t0 = time.monotonic()
    errors = _pages(client.analysis.QueryDatapoints, apb.QueryDatapointsRequest(
        project=PROJECT, inference_set=INFERENCE_SET, filter=cpb.Filter(all=[
            cpb.Condition(field="correct", equals=cpb.Value(bool_value=False)),
            cpb.Condition(field="split", equals=cpb.Value(string_value="train")),
        ])), "datapoints")  # fmt: skip
    cells: dict[tuple[int, int], list[str]] = {}
    for d in errors:
        if d.ref.frame_id not in flagged:
            cells.setdefault((d.label_class, d.predicted_class), []).append(d.ref.frame_id)
    (a, b), seeds = max(cells.items(), key=lambda kv: (len(kv[1]), -kv[0][0], -kv[0][1]))
    suffix = datetime.now(UTC).strftime("%Y%m%d%H%M%S")  # a fresh name per run: the data folder stays
    seed_segment = client.analysis.CreateSegment(apb.CreateSegmentRequest(
        project=PROJECT, frame_ids=seeds, segment=apb.Segment(
            name=f"seeds-{a}-as-{b}-{suffix}", dataset=DATASET, kind=apb.SEGMENT_KIND_COLLECTION_SEED,
            reason=f"digits labeled {a} that the model predicts as {b} (label issues left out)", author="demo")),
    ).segment  # fmt: skip
    campaign = client.run_campaign(
        PROJECT, f"campaign-{a}-as-{b}-{suffix}", pool_dataset=POOL, embedding_space=PIXEL_SPACE,
        budget=CAMPAIGN_BUDGET, seed_segment=seed_segment.name, diversity=CAMPAIGN_DIVERSITY, progress=False,
        timeout=600,
    )  # fmt: skip
    truth: dict[str, dict[str, Any]] = json.loads((out / "pool_truth.json").read_text())

    def pattern(fid: str) -> bool:
        return truth[fid]["true"] == a and truth[fid]["predicted"] == b

    picked = campaign.frame_ids
    hits = sum(pattern(f) for f in picked)
    in_pool = sum(pattern(f) for f in truth)
    of_class = sum(truth[f]["true"] == a for f in picked)
    summary = {
        "pattern": f"{a} predicted as {b}",
        "seed_segment": seed_segment.name,
        "seeds": len(seeds),
        "pool": POOL,
        "pool_frames": len(truth),
        "pattern_frames_in_pool": in_pool,
        "job_id": campaign.job_id,
        "segment": campaign.summary.segment,
        "strategy": campaign.summary.strategy,
        "budget": CAMPAIGN_BUDGET,
        "selected": len(picked),
        "in_pattern": hits,
        "precision": round(hits / len(picked), 4) if picked else 0.0,
        "random_precision": round(in_pool / len(truth), 4),
        "recall": round(hits / in_pool, 4) if in_pool else None,
        # the looser target: any true a, the class the model fails on
        "class_precision": round(of_class / len(picked), 4) if picked else 0.0,
        "class_random_precision": round(sum(t["true"] == a for t in truth.values()) / len(truth), 4),
    }
    log.info("campaign for '%s' (%d seeds): %d of %d chosen pool frames are in the pattern (precision %.3f;"
             " random %.3f; %d such frames in the pool of %d) in %.1fs", summary["pattern"], len(seeds), hits,
             len(picked), summary["precision"], summary["random_precision"], in_pool, len(truth),
             time.monotonic() - t0)  # fmt: skip
    summary["gallery"] = [
        {"frame_id": it.ref.frame_id, "media_uri": it.media_uri, "rank": it.rank, "reason": it.reason,
         "true": truth[it.ref.frame_id]["true"], "predicted": truth[it.ref.frame_id]["predicted"],
         "in_pattern": pattern(it.ref.frame_id)}
        for it in campaign.items
    ]  # fmt: skip
    return summary


def _clusters_found(fc: dict[str, Any]) -> str:
    if not fc["clusters"]:
        return (
            "None passed: the flipped labels are spread at random over every class, and the model's own errors are"
            " few and scattered, so no region of the space holds more errors than chance."
        )
    return (
        f"{len(fc['clusters'])} passed, holding {fc['clustered_errors']} errors. Each is saved as a segment;"
        " examples read back through it:"
    )


def _cluster_gallery(clusters: list[dict[str, Any]], examples: list[list[tuple[str, str, int, int]]]) -> str:
    if not clusters:
        return "<p class='muted'>No cluster of errors stood out from chance.</p>"
    parts = []
    for c, rows in zip(clusters, examples, strict=True):
        cells = "".join(
            f"<figure><img src='{_inline_image(uri)}' width='64' height='64' alt='{html.escape(fid)}'>"
            f"<figcaption>labeled {label}, predicted {pred}</figcaption></figure>"
            for fid, uri, label, pred in rows
        )
        parts.append(
            f"<h3>Cluster {c['cluster']}: segment <code>{html.escape(c['segment'])}</code></h3>"
            f"<p>{html.escape(c['description'])}</p><div class='gallery'>{cells}</div>"
        )
    return f"<div id='failure-clusters'>{''.join(parts)}</div>"


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


def _outlier_gallery(items: list[dict[str, Any]]) -> str:
    cells = []
    for it in items:
        if it["planted"]:
            what = f"<span class='ok'>planted: {html.escape(it['planted'])}</span>"
        else:
            label = "unlabeled" if it["label"] is None else f"labeled {it['label']}"
            what = f"<span class='muted'>a digit, {label}</span>"
        near = "" if it["neighbor_label"] is None else f"<br>neighbours labeled {it['neighbor_label']}"
        cells.append(
            f"<figure><img src='{_inline_image(it['media_uri'])}' width='64' height='64'"
            f" alt='{html.escape(it['frame_id'])}'>"
            f"<figcaption>#{it['rank']} score <b>{it['score']}</b><br>{what}{near}</figcaption></figure>"
        )
    return f"<div class='gallery' id='outlier-gallery'>{''.join(cells)}</div>"


#: one colour per class (0-9), and the colours of the map by issue
CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")  # fmt: skip
UNLABELED = "#1d2733"
ISSUE_COLOURS = {"normal": "#c9d1db", "label issue": "#e8590c", "planted outlier": "#6f1ab1"}


def _scatter(svg_id: str, title: str, dots: list[tuple[float, float, str, str]], legend: list[tuple[str, str]]) -> str:
    """An inline SVG scatter plot of (x, y, colour, tooltip) in the given order (later on top)."""
    size, pad = 420.0, 12.0
    xs = [d[0] for d in dots] or [0.0]
    ys = [d[1] for d in dots] or [0.0]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (size - 2 * pad) / ((x1 - x0) or 1.0)
    sy = (size - 2 * pad) / ((y1 - y0) or 1.0)
    circles = "".join(
        f"<circle cx='{pad + (x - x0) * sx:.1f}' cy='{size - pad - (y - y0) * sy:.1f}' r='2.4' fill='{colour}'>"
        f"<title>{html.escape(tip)}</title></circle>"
        for x, y, colour, tip in dots
    )
    keys = "".join(
        f"<span><svg width='10' height='10'><circle cx='5' cy='5' r='4' fill='{colour}'/></svg> {html.escape(name)}"
        "</span>"
        for name, colour in legend
    )
    return (
        f"<figure class='map'><figcaption>{html.escape(title)}</figcaption>"
        f"<svg id='{svg_id}' class='map' xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {size:.0f} {size:.0f}'"
        f" width='{size:.0f}' height='{size:.0f}' role='img' aria-label='{html.escape(title)}'>"
        f"<rect width='100%' height='100%' fill='#fbfcfd' stroke='#dde3ea'/>{circles}</svg>"
        f"<div class='legend'>{keys}</div></figure>"
    )


def _map_svgs(points: list[tuple[str, float, float, int | None]], issue_ids: list[str], out: Path) -> str:
    """The embedding map twice: coloured by class label, and by issue (label issue, planted
    outlier, normal)."""
    planted: dict[str, str] = json.loads((out / "outliers.json").read_text())
    issues = set(issue_ids)
    by_class = [
        (x, y, UNLABELED if c is None else CLASS_COLOURS[c % 10], f"{f}: {'no label' if c is None else f'label {c}'}")
        for f, x, y, c in points
    ]

    def issue(frame_id: str) -> str:
        return "planted outlier" if frame_id in planted else "label issue" if frame_id in issues else "normal"

    rank = {"normal": 0, "label issue": 1, "planted outlier": 2}  # issues drawn over the normal frames
    by_issue = sorted(((x, y, issue(f), f) for f, x, y, _ in points), key=lambda d: rank[d[2]])
    class_legend = [(str(c), CLASS_COLOURS[c]) for c in range(10)] + [("no label (planted)", UNLABELED)]
    counts = {k: sum(1 for d in by_issue if d[2] == k) for k in rank}
    return (
        "<div class='maps'>"
        + _scatter("map-by-class", "coloured by class label", by_class, class_legend)
        + _scatter(
            "map-by-issue",
            "coloured by issue",
            [(x, y, ISSUE_COLOURS[k], f"{f}: {k}") for x, y, k, f in by_issue],
            [(f"{k} ({counts[k]})", ISSUE_COLOURS[k]) for k in rank],
        )
        + "</div>"
    )


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
    return f"<div class='gallery' id='label-issue-gallery'>{''.join(cells)}</div>"


def _campaign_gallery(items: list[dict[str, Any]]) -> str:
    cells = []
    for it in items:
        mark, what = ("ok", "in the pattern") if it["in_pattern"] else ("muted", "not in the pattern")
        cells.append(
            f"<figure><img src='{_inline_image(it['media_uri'])}' width='64' height='64'"
            f" alt='{html.escape(it['frame_id'])}'>"
            f"<figcaption>#{it['rank']} truly <b>{it['true']}</b>, predicted <b>{it['predicted']}</b><br>"
            f"<span class='{mark}'>{what}</span></figcaption></figure>"
        )
    return f"<div class='gallery' id='campaign-gallery'>{''.join(cells)}</div>"


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


def _report(
    summary: dict[str, Any],
    gallery: list[dict[str, Any]],
    outlier_gallery: list[dict[str, Any]],
    maps: str,
    cluster_examples: list[list[tuple[str, str, int, int]]],
    campaign_gallery: list[dict[str, Any]],
) -> str:
    fc, cp = summary["failure_clusters"], summary["campaign"]
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
        for k in ing["expected"]
    )
    ol = summary["outliers"]
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
.muted {{ color: #57606a; }}
.maps {{ display: flex; flex-wrap: wrap; gap: 1rem; }}
.maps figure {{ margin: 0; }} .maps figcaption {{ font-weight: 600; margin-bottom: .3rem; }}
.legend {{ display: flex; flex-wrap: wrap; gap: .3rem .8rem; font-size: .75rem; max-width: 420px; }}
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
<p>The digits dataset ({summary["ingest"]["expected"]["labels"]} labeled frames, {summary["ingest"]["flipped_labels"]}
labels flipped on purpose, and {summary["ingest"]["planted_outliers"]} planted images that are not digits, without
labels or predictions) was uploaded through the SDK in {summary["ingest"]["upload_seconds"]} s and read back:</p>
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
<h2>Outliers</h2>
<p>The neighbour job scored every frame by its mean {html.escape(str(ol["k"]))}-nearest-neighbour cosine distance in
the raw pixel space. Against the {ol["planted"]} planted images (noise, stripes, checkerboards, inverted digits,
blobs) and the {ol["genuine"]} digits the score has an AUROC of {ol["auroc"]}; {ol["top_k_precision"]:.0%} of the
top {ol["planted"]} frames are planted. The same graph found {ol["exact_duplicate_pairs"]} exact and
{ol["near_duplicate_pairs"]} near-duplicate pairs ({ol["cross_split_pairs"]} across the train and test splits).
The highest scores first:</p>
{_outlier_gallery(outlier_gallery)}
<h2>Embedding map</h2>
<p>UMAP of the pixel space, fitted on {summary["map"]["fitted_on"]} of the {summary["map"]["frames"]} frames, as
the analysis service serves it (hover a point for its frame):</p>
{maps}
<h2>Failure clusters</h2>
<p>The model's {fc["errors"]} errors (error rate {fc["error_rate"]}, flipped labels included) were clustered in its
own hidden-layer space, and a cluster is kept only where errors are denser than chance would make them.
{_clusters_found(fc)}</p>
{_cluster_gallery(fc["clusters"], cluster_examples)}
<h2>Collection campaign</h2>
<p>The commonest of the model's errors on the train split, labeled {html.escape(cp["pattern"])} (frames flagged as
label issues left out), became the seed segment <code>{html.escape(cp["seed_segment"])}</code> of {cp["seeds"]}
frames. A campaign ({html.escape(cp["strategy"])}) chose {cp["selected"]} frames of the unlabeled pool of
{cp["pool_frames"]} noisy redraws of the test split's digits, which the model has not seen, and saved them as the
segment <code>{html.escape(cp["segment"])}</code>. {cp["in_pattern"]} of them truly are a {html.escape(cp["pattern"])}
(precision {cp["precision"]}, and {cp["in_pattern"]} of the {cp["pattern_frames_in_pool"]} such frames in the pool),
where a random sample of the same budget would hold {cp["random_precision"]} of them; {cp["class_precision"]:.0%}
of the chosen frames are of the seeds' class (random: {cp["class_random_precision"]:.0%}). In rank order:</p>
{_campaign_gallery(campaign_gallery)}
<h2>Reflection</h2><ul>{reflected}</ul>
</body></html>
"""
