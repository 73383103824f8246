"""The analysis jobs the demo runs, each scored against what the dataset was built with: the
flipped labels (``truth.json``), the planted images (``outliers.json``) and the pool's hidden
labels (``pool_truth.json``)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shoal.analysis.v1 import analysis_pb2 as apb
from shoal.client import Client
from shoal.demo.names import DATASET, INFERENCE_SET, PIXEL_SPACE, POOL, PROJECT, SPACE, log


def model_metrics(client: Client) -> dict[str, Any]:
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


def _finish(client: Client, job: Any, what: str, timeout: float = 300, project: str = PROJECT) -> Any:
    """Waits for an analysis job of ``project`` to end; returns it, or raises unless it succeeded."""
    from shoal.common.v1 import common_pb2 as cpb

    t0 = time.monotonic()
    while job.state not in (cpb.JOB_STATE_SUCCEEDED, cpb.JOB_STATE_FAILED, cpb.JOB_STATE_CANCELLED):
        time.sleep(0.2)
        job = client.analysis.GetJob(apb.GetJobRequest(project=project, job_id=job.job_id)).job
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


def label_issues(client: Client, out: Path) -> dict[str, Any]:
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


def outliers(client: Client, out: Path) -> dict[str, Any]:
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


def embedding_map(client: Client) -> dict[str, Any]:
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


def failure_clusters(client: Client, out: Path) -> dict[str, Any]:
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


#: frames a campaign may choose from the pool
CAMPAIGN_BUDGET = 30
#: a little diversity: more frames like the failure, not thirty redraws of the one nearest digit
CAMPAIGN_DIVERSITY = 0.1


def collection_campaign(client: Client, out: Path, flagged: set[str]) -> dict[str, Any]:
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
