"""A standing campaign filling from a stream: it watches a second unlabeled pool, seeded with the
collection campaign's seed segment (the failure the demo studies), while frames arrive upload by
upload. Before each upload the client scores the batch on its side (``score_for_campaign``) and
the server then keeps exactly those frames of it; after the stream the offline rule, run over the
same vectors in upload order, keeps the same frames.

The offline choice is :class:`shoal.sampler.standing_rule.Judge` over the streamed vectors in
upload order, from an empty sample: what :func:`shoal.sampler.standing.replay` does over a pool's
stores. The demo cannot call ``replay`` itself: the stores belong to the ``shoal serve`` process
while it runs, and by the time it has stopped the campaign's retention (0 s) has deleted the
vectors of the frames it dropped, which ``replay`` would need."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from shoal.client import Client
from shoal.demo.dataset import _create_all
from shoal.demo.names import DATASET, PIXEL_SPACE, PROJECT, STREAM, log

#: redraws of each of the 360 test-split digits: 2,160 frames, streamed in STREAM_UPLOADS uploads
#: of one chunk each (so upload order is arrival order), each sent once the one before is judged
STREAM_COPIES = 6
STREAM_UPLOADS = 5
#: the noise of the stream's redraws (the pool's is seed 2)
STREAM_SEED = 5
#: cosine similarity to the nearest seed in the pixel space: about 5% of the stream passes
THRESHOLD = 0.88
#: cosine distance to every frame kept before: near-duplicates of a kept frame are dropped
MIN_DISTANCE = 0.04
#: spent about two thirds into the stream, so the campaign ends FULL and the last uploads go unjudged
BUDGET = 50
#: the vectors of dropped frames are deleted at the next sweep
RETENTION_SECONDS = 0.0


def _counts(c: Any) -> dict[str, int]:
    return {k: int(getattr(c, k)) for k in ("judged", "kept", "filtered", "below_threshold", "near_kept",
                                            "vectors_deleted")}  # fmt: skip


def standing_campaign(
    client: Client, out: Path, data_dir: Path, digits: Any, model: Any, seeded: dict[str, Any]
) -> dict[str, Any]:
    """Starts a standing campaign on the stream pool with the collection campaign's seed segment
    (``seeded``: that campaign's summary), streams the frames into the pool and reads the campaign
    back. The stream's true labels and the first pool's model's predictions (``model``) go to
    ``stream_truth.json``."""
    from shoal.digits import build_pool, pixels
    from shoal.ingest.v1 import ingest_pb2 as pb
    from shoal.sampler.standing_rule import Judge, Rule
    from shoal.sampler.v1 import sampler_pb2 as spb
    from shoal.sdk import UploadColumns

    t0 = time.monotonic()
    a, b = (int(x) for x in seeded["pattern"].split(" predicted as "))
    # fresh frame ids per run: a dropped frame whose vector a sweep deleted stays recorded as swept,
    # so a run on the same data dir streams new frames and its campaign's counts are its own
    suffix = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    stream = build_pool(data_dir / "media" / "stream", digits, copies=STREAM_COPIES, seed=STREAM_SEED,
                        prefix=f"stream-{suffix}", model=model)  # fmt: skip
    predicted = stream.probabilities.argmax(1)
    truth = {fid: {"true": int(t), "predicted": int(p)}
             for fid, t, p in zip(stream.frame_ids, stream.true_labels, predicted, strict=True)}  # fmt: skip
    (out / "stream_truth.json").write_text(json.dumps(truth) + "\n")

    def pattern(fid: str) -> bool:
        return truth[fid]["true"] == a and truth[fid]["predicted"] == b

    _create_all((
        (client.ingest.CreateDataset, pb.CreateDatasetRequest(project=PROJECT, dataset=pb.Dataset(
            name=STREAM, kind=pb.DATASET_KIND_UNLABELED_POOL, splits=["pool"]))),
    ))  # fmt: skip
    name = f"standing-{a}-as-{b}-{suffix}"
    client.start_standing_campaign(
        PROJECT, name, pool_dataset=STREAM, embedding_space=PIXEL_SPACE, similarity_threshold=THRESHOLD,
        budget=BUDGET, seed_segment=seeded["seed_segment"], min_distance=MIN_DISTANCE,
        retention_seconds=RETENTION_SECONDS,
    )  # fmt: skip
    x = pixels(stream.images)
    uploads: list[dict[str, Any]] = []
    order: list[list[int]] = []  # each upload's frames in the order the server judges them (by id)
    judged = 0
    for part in np.array_split(np.arange(len(stream.frame_ids)), STREAM_UPLOADS):
        ids = [stream.frame_ids[i] for i in part]
        order.append(sorted(part.tolist(), key=lambda i: stream.frame_ids[i]))
        # what the campaign would keep of this batch, chosen here before it is sent
        score = client.score_for_campaign(PROJECT, name, ids, x[part], chunk_size=len(ids))
        filling = score.campaign.state == spb.STANDING_CAMPAIGN_STATE_FILLING
        columns = UploadColumns(
            frame_ids=ids, splits=["pool"] * len(ids), media_uris=[stream.media_uris[i] for i in part],
            sizes=[(8, 8)] * len(ids), metadata=[{"source": "stream"}] * len(ids),
            embeddings={PIXEL_SPACE: x[part]},
        )  # fmt: skip
        result = client.upload(PROJECT, STREAM, columns, chunk_size=len(ids), progress=False)
        status = client.wait_for_upload(PROJECT, result.upload_id, timeout=300, poll=0.1)
        if status.state != pb.UPLOAD_STATE_COMPLETED:
            raise RuntimeError(f"stream upload {result.upload_id} ended {pb.UploadState.Name(status.state)}")
        now = client.wait_for_standing_campaign(PROJECT, name, judged=judged + len(ids), timeout=120, poll=0.1)
        kept = [it.ref.frame_id for it in now.items if it.upload_id == result.upload_id]
        uploads.append({
            "upload_id": result.upload_id, "frames": len(ids), "judged": int(now.campaign.judged) - judged,
            "state_after": spb.StandingCampaignState.Name(now.campaign.state).removeprefix("STANDING_CAMPAIGN_STATE_"),
            "kept": len(kept), "scored_while_filling": filling, "predicted_kept": len(score.kept),
            "predicted_judged": score.judged, "client_side_equal": score.kept == kept,
        })  # fmt: skip
        judged = int(now.campaign.judged)
    # the retention: every dropped frame's vector is deleted at the sweep after its drop
    deadline = time.monotonic() + 120
    while True:
        c = client.sampler.GetStandingCampaign(spb.GetStandingCampaignRequest(project=PROJECT, name=name)).campaign
        if c.vectors_deleted >= c.judged - c.kept or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    final = client.standing_campaign(PROJECT, name)
    c = final.campaign
    kept = final.frame_ids
    # the offline twin: the campaign's rule over the seeds' own vectors and the streamed ones, in upload order
    seeds = client.sampler.GetStandingCampaign(
        spb.GetStandingCampaignRequest(project=PROJECT, name=name, include_vectors=False)
    ).seeds
    row = {f: i for i, f in enumerate(digits.frame_ids)}
    seed_rows = [row[s.ref.frame_id] for s in seeds if s.ref.dataset == DATASET]
    twin = Judge(Rule(c.similarity_threshold, c.min_distance, c.budget), pixels(digits.images[seed_rows]))
    twin_kept: list[str] = []
    twin_judged = 0
    for rows in order:
        v = twin.judge(x[rows])
        twin_judged += v.judged
        twin_kept += [stream.frame_ids[rows[i]] for i in v.kept_indices.tolist()]
    hits = sum(pattern(f) for f in kept)
    of_class = sum(truth[f]["true"] == a for f in kept)
    in_stream = sum(pattern(f) for f in truth)
    scored = [u for u in uploads if u["scored_while_filling"]]
    summary: dict[str, Any] = {
        "name": name,
        "pool": STREAM,
        "pattern": seeded["pattern"],
        "seed_segment": seeded["seed_segment"],
        "seeds": int(c.seeds),
        "embedding_space": PIXEL_SPACE,
        "similarity_threshold": THRESHOLD,
        "min_distance": MIN_DISTANCE,
        "budget": int(c.budget),
        "retention_seconds": RETENTION_SECONDS,
        "state": spb.StandingCampaignState.Name(c.state).removeprefix("STANDING_CAMPAIGN_STATE_"),
        **_counts(c),
        "uploads_streamed": len(uploads),
        "frames_streamed": len(stream.frame_ids),
        "full_after_upload": next((i + 1 for i, u in enumerate(uploads) if u["state_after"] == "FULL"), None),
        "pattern_frames_in_stream": in_stream,
        "in_pattern": hits,
        "precision": round(hits / len(kept), 4) if kept else 0.0,
        "random_precision": round(in_stream / len(truth), 4),
        "class_precision": round(of_class / len(kept), 4) if kept else 0.0,
        "class_random_precision": round(sum(t["true"] == a for t in truth.values()) / len(truth), 4),
        # every upload scored while the campaign was filling: the frames chosen on the client's side
        # are those the server kept of it, in the same order
        "client_side_batches": len(scored),
        "client_side_kept": sum(u["predicted_kept"] for u in scored),
        "client_side_equal": bool(scored) and all(u["client_side_equal"] for u in scored),
        "offline_twin": "standing_rule.Judge over the streamed vectors in upload order (the rule replay applies)",
        "offline_twin_kept": len(twin_kept),
        "offline_twin_equal": twin_kept == kept and twin_judged == c.judged,
        "uploads": uploads,
        "seconds": round(time.monotonic() - t0, 2),
    }
    log.info("standing campaign %s: %s after %d of %d uploads, %d judged, %d kept (%d in the pattern '%s'),"
             " %d vectors deleted; client side %s, offline twin %s (%.1fs)", name, summary["state"],
             summary["full_after_upload"] or len(uploads), len(uploads), c.judged, c.kept, hits, seeded["pattern"],
             c.vectors_deleted, "equal" if summary["client_side_equal"] else "NOT equal",
             "equal" if summary["offline_twin_equal"] else "NOT equal", summary["seconds"])  # fmt: skip
    summary["gallery"] = [
        {"frame_id": it.ref.frame_id, "media_uri": it.media_uri, "rank": it.rank, **truth[it.ref.frame_id],
         "in_pattern": pattern(it.ref.frame_id)}
        for it in final.items
    ]  # fmt: skip
    return summary
