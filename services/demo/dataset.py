"""The digits dataset and the unlabeled pool: built, uploaded through the SDK, and read back from
both stores as counts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from shoal.client import Client
from shoal.demo.names import DATASET, INFERENCE_SET, PIXEL_SPACE, POOL, POOL_INFERENCE_SET, PROJECT, SPACE, log


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


def ingest_digits(client: Client, out: Path, data_dir: Path) -> tuple[dict[str, Any], Any]:
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


def ingest_pool(client: Client, out: Path, data_dir: Path, digits: Any) -> tuple[dict[str, Any], Any]:
    """Builds the unlabeled pool (noisy redraws of the test-split digits, see
    :func:`shoal.digits.build_pool`) and uploads it with its pixel vectors and the pool model's
    predictions; the true labels go to ``pool_truth.json``. Returns the counts and the pool."""

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
    }, pool
