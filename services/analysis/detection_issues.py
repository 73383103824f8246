"""Label issues of objects (2-D boxes, instance masks, keypoints, 3-D cuboids): which labeled objects and which
unlabeled ones a model's predictions contradict, scored per object and per frame.

Every score lies in [0, 1]; low means a likely issue. With ``m(iou) = min(1, iou / MATCH_IOU)`` (how
well two boxes overlap, saturating at the IoU that counts as a match) and ``c`` a prediction's
confidence, per frame:

- **missing label** (per predicted box ``p``): ``1 - c_p * max(0, 1 - o_p / MATCH_IOU)`` where
  ``o_p`` is the highest IoU of ``p`` with any labeled box (of any class, crowd regions included).
  A confident prediction where nothing is labeled scores near 0.
- **spurious label** (per labeled box ``g``): ``max_p c_p * m(iou(g, p))`` over predictions of any
  class: no prediction anywhere near the box scores 0.
- **mislocalized box** (per labeled box): the closest same-class prediction overlapping ``g`` at
  least ``LOCALIZATION_MIN_IOU`` (ties: the more confident) gives ``1 - c * (1 - iou)``: a
  confident prediction of the class that overlaps the box only partly scores low. 1 when no
  same-class prediction overlaps (that box is spurious or swapped, not mislocalized).
- **class swap** (per labeled box): ``1 - s_other * (1 - s_same)`` with ``s_other`` the largest
  ``c * m(iou)`` over predictions of another class (whose class is the suggested one) and ``s_same``
  the same over predictions of the box's class: a confident prediction of another class on the box
  and none of its own class scores low.

For mislocalization and swaps a prediction counts as evidence about ``g`` only if ``g`` is the
labeled box it overlaps most, so a neighbour's prediction reaching over ``g`` does not count.

Masks and keypoints are scored the same way with their own similarity (mask IoU, COCO's object
keypoint similarity: ``shoal.common.similarity``) in place of box IoU. A keypoint label is also
judged point by point against its mislocalization partner ``p`` (its own-class prediction), with
``t_q`` the COCO term ``exp(-d_q^2 / (2 s^2 (2 sigma_q)^2))`` of each labeled point ``q``:

- **swapped keypoints** (per labeled object): the left/right pair of its class (by their names)
  whose swap gains most, ``1 - c_p * max(0, (t'_a + t'_b) / 2 - (t_a + t_b) / 2)`` with ``t'`` the
  terms of the pair swapped; a flagged swap is undone before the next type is judged;
- **misplaced keypoint** (per labeled object with at least three labeled points): its worst point
  ``q``, ``1 - c_p * (1 - t_q) * mean(t)`` over the other labeled points: one point far off while the
  rest agree scores low.

A keypoint label's mislocalization is then judged on its points with a flagged swap undone and a
flagged misplaced point left out, so one error is reported once, as what it is.

Cuboids are compared by the IoU of their footprints seen from above, each footprint taken at least
:data:`MIN_SIDE` wide and long: a pedestrian, a cone or a barrier is a few tens of centimetres across, as
much as a detector's usual error, and would otherwise look missing and spurious wherever it is slightly off
(the IoU reported is that of the footprints as they are). A cuboid's mislocalization is judged by its
parts instead of that IoU, which is blind to a box turned around or at the wrong height and too harsh on
small ones: :func:`localize_cuboids` weighs its centre, size and heading against its own-class prediction,
each over a tolerance that is at least a fixed one and at least a multiple of the class's usual error, and
a flagged one says which of the three is most off.

Each raw score is flagged below the threshold of its type (:data:`THRESHOLDS`) and stored
rescaled, piecewise linearly, so that every threshold maps to :data:`FLAG_BELOW`: scores of
different types then compare. A frame's score is its worst object score and it is flagged when
any object is. On the benchmark data the minimum ranks frames with errors as well as a soft minimum
and better than a product or a mean, which lower a frame for having many objects.

Frames (those with a label version) are read in chunks of :data:`CHUNK_FRAMES` in frame-id order,
so memory grows with the chunk, not with the dataset; scores are written back per chunk.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numba
import numpy as np
import pyarrow as pa

from shoal.analysis import dismissals, ranked
from shoal.analysis.export import FrameTable
from shoal.common.cuboids import YAW, H, L, W, bev_iou
from shoal.common.data import results
from shoal.common.data.answers import AnswerCache
from shoal.common.data.frames import latest_labels_sql
from shoal.common.data.projects import ProjectCatalog
from shoal.common.jobs import Job, JobContext, progress_of
from shoal.common.similarity import (
    BOXES,
    ObjectArrays,
    Shapes,
    from_columns,
    labeled_points,
    pairs,
    parts,
    shapes_of,
    variances_of,
)
from shoal.common.stores.metrics import MetricsStore, Migration

KIND = "detection_label_issues"

#: issue types (the DetectionIssueType values of the API)
MISSING, SPURIOUS, MISLOCALIZED, SWAP, MISPLACED_KEYPOINT, SWAPPED_KEYPOINTS = 1, 2, 3, 4, 5, 6
TYPE_NAMES = {MISSING: "missing_label", SPURIOUS: "spurious_label", MISLOCALIZED: "mislocalized", SWAP: "class_swap",
              MISPLACED_KEYPOINT: "misplaced_keypoint", SWAPPED_KEYPOINTS: "swapped_keypoints"}  # fmt: skip
#: the IoU at which two boxes count as the same object
MATCH_IOU = 0.5
#: a same-class prediction overlapping a labeled box at least this much is taken as its localization
LOCALIZATION_MIN_IOU = 0.1
#: raw scores below these are issues; stored scores are rescaled so that each maps to :data:`FLAG_BELOW`
THRESHOLDS = {MISSING: 0.45, SPURIOUS: 0.08, MISLOCALIZED: 0.65, SWAP: 0.3, MISPLACED_KEYPOINT: 0.35,
              SWAPPED_KEYPOINTS: 0.45}  # fmt: skip
#: the issue types of keypoint projects alone
KEYPOINT_TYPES = (MISPLACED_KEYPOINT, SWAPPED_KEYPOINTS)
#: cuboids: footprints narrower or shorter than this (metres) are compared as this wide or long
MIN_SIDE = 1.5
#: cuboids: what a mislocalization is off by (stored by name; 0: none)
CENTRE, SIZE, HEADING = 1, 2, 3
MISLOCALIZATIONS = {CENTRE: "centre", SIZE: "size", HEADING: "heading"}
#: cuboids: the least tolerance of each part of a mislocalization: the distance of the centres (metres, and a
#: share of the label's length), the factor between a side's lengths, the angle between the headings
CENTRE_TOLERANCE, CENTRE_SHARE, SIZE_TOLERANCE, HEADING_TOLERANCE = 0.25, 0.1, 1.3, math.radians(30)
#: ... and at least this many times the class's median error against its confident predictions
NOISE_MULTIPLE = 4.0
#: the predictions that count as confident, and the pairs of a class its medians need
CONFIDENT, MIN_PAIRS = 0.5, 10
#: a class whose confident predictions point the other way (more than 135 degrees off) this often, and at least
#: this many times, has its headings judged up to front and back (barriers; people, whose back a detector often
#: takes for their front)
TURNED_SHARE, MIN_TURNED = 0.05, 3
#: objects (and frames) scoring below this are flagged
FLAG_BELOW = 0.5
#: frames read and scored at a time
CHUNK_FRAMES = 20_000

#: what ExportJobResult streams of a finished job: one row per frame
FRAMES = FrameTable(
    "detection_issue_frames",
    "frame_id, score, toBool(is_issue) AS is_issue, worst_type, objects, missing, spurious, mislocalized, swapped",
)

MIGRATIONS = (
    Migration(
        component="analysis",
        version=9,
        name="detection label issues",
        statements=(
            # one row per scored (object, issue type): labeled boxes get spurious, mislocalized and
            # swap rows, predicted boxes a missing-label row; partner: the other box of the evidence
            "CREATE TABLE IF NOT EXISTS detection_issue_objects ("
            " project LowCardinality(String), job_id String, frame_id String, object_id String,"
            " predicted UInt8, issue_type UInt8, score Float32, is_issue UInt8, given_class Int32,"
            " suggested_class Int32, partner_object_id String, iou Float32, confidence Float32)"
            " ENGINE = ReplacingMergeTree ORDER BY (project, job_id, frame_id, object_id, predicted, issue_type)",
            "CREATE TABLE IF NOT EXISTS detection_issue_frames ("
            " project LowCardinality(String), job_id String, frame_id String, score Float32, is_issue UInt8,"
            " worst_type UInt8, objects UInt32, missing UInt32, spurious UInt32, mislocalized UInt32,"
            " swapped UInt32)"
            " ENGINE = ReplacingMergeTree ORDER BY (project, job_id, frame_id)",
        ),
    ),
    Migration(
        component="analysis",
        version=20,
        name="keypoint label issues",
        statements=(
            # the keypoints a keypoint issue concerns (positions in the class's keypoints), and the
            # flagged keypoint issues of a frame
            "ALTER TABLE detection_issue_objects ADD COLUMN IF NOT EXISTS keypoints Array(UInt16)",
            "ALTER TABLE detection_issue_frames ADD COLUMN IF NOT EXISTS misplaced_keypoints UInt32",
            "ALTER TABLE detection_issue_frames ADD COLUMN IF NOT EXISTS swapped_keypoints UInt32",
        ),
    ),
    Migration(
        component="analysis",
        version=24,
        name="what a mislocalized cuboid is off by",
        statements=(
            # a flagged mislocalized cuboid: "centre", "size" or "heading" (empty otherwise), in the job's rows
            # and in their page order (the ranked table is made by RANK_MIGRATIONS' version 19)
            "ALTER TABLE detection_issue_objects ADD COLUMN IF NOT EXISTS mislocalization LowCardinality(String)",
            "ALTER TABLE detection_object_ranks ADD COLUMN IF NOT EXISTS mislocalization LowCardinality(String)",
        ),
    ),
)
TABLES = ("detection_issue_objects", "detection_issue_frames")

RANK_MIGRATIONS = (
    Migration(
        component="analysis",
        version=19,
        name="detection label issues in page order",
        statements=(
            "CREATE TABLE IF NOT EXISTS detection_object_ranks ("
            " project LowCardinality(String), job_id String, listing LowCardinality(String), rank UInt32,"
            " frame_id String, object_id String, predicted UInt8, issue_type UInt8, score Float32, is_issue UInt8,"
            " given_class Int32, suggested_class Int32, partner_object_id String, iou Float32, confidence Float32)"
            " ENGINE = ReplacingMergeTree ORDER BY (project, job_id, listing, rank)",
            "CREATE TABLE IF NOT EXISTS detection_frame_ranks ("
            " project LowCardinality(String), job_id String, listing LowCardinality(String), rank UInt32,"
            " frame_id String, score Float32, is_issue UInt8, worst_type UInt8, objects UInt32, missing UInt32,"
            " spurious UInt32, mislocalized UInt32, swapped UInt32)"
            " ENGINE = ReplacingMergeTree ORDER BY (project, job_id, listing, rank)",
        ),
    ),
    Migration(
        component="analysis",
        version=22,
        name="keypoint label issues in page order",
        statements=(
            "ALTER TABLE detection_object_ranks ADD COLUMN IF NOT EXISTS keypoints Array(UInt16)",
            "ALTER TABLE detection_frame_ranks ADD COLUMN IF NOT EXISTS misplaced_keypoints UInt32",
            "ALTER TABLE detection_frame_ranks ADD COLUMN IF NOT EXISTS swapped_keypoints UInt32",
        ),
    ),
    Migration(
        component="analysis",
        version=29,
        name="detection label issues' ranks by frame",
        statements=(
            *ranked.backfill("detection_object_ranks", "frame_id, object_id"),
            *ranked.backfill("detection_frame_ranks", "frame_id, ''")[1:],
        ),
    ),
)
RANK_TABLES = ("detection_object_ranks", "detection_frame_ranks")


@numba.njit(cache=True, nogil=True)
def _score_kernel(
    g_start: np.ndarray,
    g_end: np.ndarray,
    d_start: np.ndarray,
    d_end: np.ndarray,
    pair_start: np.ndarray,
    covering: np.ndarray,
    overlap: np.ndarray,
    g_cls: np.ndarray,
    g_crowd: np.ndarray,
    d_cls: np.ndarray,
    d_conf: np.ndarray,
    match_iou: float,
    loc_min_iou: float,
    g_score: np.ndarray,
    g_partner: np.ndarray,
    g_iou: np.ndarray,
    d_score: np.ndarray,
    d_partner: np.ndarray,
    d_iou: np.ndarray,
) -> None:
    """Per frame f, labeled objects [g_start[f], g_end[f]) against predictions [d_start[f], d_end[f]),
    with each frame's (prediction, label) similarities row-major from ``pair_start[f]``: ``covering``
    measures a crowd region against the prediction's own area, ``overlap`` takes every label as a
    regular one. g_* are (G, 3): columns spurious, mislocalized, swap; partner -1 for none."""
    for f in range(g_start.shape[0]):
        ng = g_end[f] - g_start[f]
        for di in range(d_start[f], d_end[f]):
            row = pair_start[f] + (di - d_start[f]) * ng - g_start[f]
            top, top_j = 0.0, -1
            for gj in range(g_start[f], g_end[f]):
                iou = covering[row + gj]
                if iou > top:
                    top, top_j = iou, gj
            d_score[di] = 1.0 - d_conf[di] * max(0.0, 1.0 - top / match_iou)
            d_partner[di], d_iou[di] = top_j, top
        for gj in range(g_start[f], g_end[f]):
            if g_crowd[gj]:
                continue
            sup, sup_d, sup_iou = 0.0, -1, 0.0
            loc, loc_d, loc_iou = 0.0, -1, 0.0
            same = 0.0
            other, other_d, other_iou = 0.0, -1, 0.0
            for di in range(d_start[f], d_end[f]):
                iou = overlap[pair_start[f] + (di - d_start[f]) * ng + (gj - g_start[f])]
                s = d_conf[di] * min(1.0, iou / match_iou)
                if s > sup:
                    sup, sup_d, sup_iou = s, di, iou
                # a prediction is evidence about where, or what, this box is only if this is the
                # labeled box it overlaps most (not a neighbour's prediction reaching over it)
                own = d_partner[di] == gj
                if d_cls[di] == g_cls[gj]:
                    if s > same:
                        same = s
                    # the closest same-class box (ties: the more confident one)
                    if own and iou >= loc_min_iou and (iou > loc_iou or (iou == loc_iou and d_conf[di] > loc)):
                        loc, loc_d, loc_iou = d_conf[di], di, iou
                elif own and s > other:
                    other, other_d, other_iou = s, di, iou
            g_score[gj, 0], g_partner[gj, 0], g_iou[gj, 0] = sup, sup_d, sup_iou
            if loc_d >= 0:
                g_score[gj, 1] = 1.0 - d_conf[loc_d] * (1.0 - loc_iou)
            else:
                g_score[gj, 1] = 1.0
            g_partner[gj, 1], g_iou[gj, 1] = loc_d, loc_iou
            g_score[gj, 2] = 1.0 - other * (1.0 - same)
            g_partner[gj, 2], g_iou[gj, 2] = other_d, other_iou


@numba.njit(cache=True, nogil=True)
def _keypoint_kernel(
    partner: np.ndarray,
    g_kp: np.ndarray,
    g_from: np.ndarray,
    g_to: np.ndarray,
    g_area: np.ndarray,
    var_from: np.ndarray,
    var_to: np.ndarray,
    variances: np.ndarray,
    pair_from: np.ndarray,
    pair_to: np.ndarray,
    mirrored: np.ndarray,
    d_kp: np.ndarray,
    d_from: np.ndarray,
    d_to: np.ndarray,
    d_conf: np.ndarray,
    swap_flag: float,
    misplaced_flag: float,
    out: np.ndarray,
    out_kp: np.ndarray,
) -> None:
    """Per labeled object g (with its partner prediction, or -1): out[g, 0] the swapped-keypoints
    score and out_kp[g, 0:2] its pair, out[g, 1] the misplaced-keypoint score and out_kp[g, 2] its
    point (see the module's docstring; 1 and -1 where nothing is judged), and out[g, 2] the
    object's keypoint similarity with the flagged swap undone and the flagged point left out (-1
    where nothing is judged)."""
    eps = np.spacing(1.0)
    for g in range(partner.shape[0]):
        d = partner[g]
        gk = g_kp[g_from[g] : g_to[g]]
        var = variances[var_from[g] : var_to[g]]
        k = gk.shape[0]
        if d < 0 or d_to[d] - d_from[d] != k or var.shape[0] != k or k == 0:
            continue
        dk = d_kp[d_from[d] : d_to[d]]
        c = d_conf[d]
        scale = g_area[g] + eps
        t = np.zeros(k)
        for q in range(k):
            dx, dy = dk[q, 0] - gk[q, 0], dk[q, 1] - gk[q, 1]
            t[q] = np.exp(-((dx * dx + dy * dy) / var[q] / scale / 2))
        best, best_p = 0.0, -1
        for p in range(pair_from[g], pair_to[g]):
            a, b = mirrored[p, 0], mirrored[p, 1]
            if gk[a, 2] <= 0 or gk[b, 2] <= 0:
                continue
            ax, ay = dk[a, 0] - gk[b, 0], dk[a, 1] - gk[b, 1]
            bx, by = dk[b, 0] - gk[a, 0], dk[b, 1] - gk[a, 1]
            sa = np.exp(-((ax * ax + ay * ay) / var[a] / scale / 2))
            sb = np.exp(-((bx * bx + by * by) / var[b] / scale / 2))
            gain = (sa + sb) / 2 - (t[a] + t[b]) / 2
            if gain > best:
                best, best_p = gain, p
        if best_p >= 0:
            a, b = mirrored[best_p, 0], mirrored[best_p, 1]
            out[g, 0] = 1.0 - c * best
            out_kp[g, 0], out_kp[g, 1] = a, b
            if out[g, 0] < swap_flag:  # judge the rest with the swap undone
                ax, ay = dk[a, 0] - gk[b, 0], dk[a, 1] - gk[b, 1]
                bx, by = dk[b, 0] - gk[a, 0], dk[b, 1] - gk[a, 1]
                t[a] = np.exp(-((ax * ax + ay * ay) / var[a] / scale / 2))
                t[b] = np.exp(-((bx * bx + by * by) / var[b] / scale / 2))
        worst, worst_q, labeled, total = 2.0, -1, 0, 0.0
        for q in range(k):
            if gk[q, 2] > 0:
                labeled += 1
                total += t[q]
                if t[q] < worst:
                    worst, worst_q = t[q], q
        if labeled >= 3:
            others = (total - worst) / (labeled - 1)
            out[g, 1] = 1.0 - c * (1.0 - worst) * others
            out_kp[g, 2] = worst_q
            out[g, 2] = others if out[g, 1] < misplaced_flag else total / labeled
        elif labeled > 0:
            out[g, 2] = total / labeled


@dataclass
class ObjectScores:
    """Scores of a chunk's objects, one entry per (object, issue type), in frame order.

    ``frame`` indexes the chunk's frames; ``predicted`` says whether ``obj`` indexes the predicted
    boxes (else the labeled ones); ``partner`` indexes the other kind (-1: none)."""

    frame: np.ndarray
    obj: np.ndarray
    predicted: np.ndarray
    issue_type: np.ndarray
    #: the score of the type's formula, and that score calibrated (see :func:`calibrate`)
    raw: np.ndarray
    partner: np.ndarray
    iou: np.ndarray
    score: np.ndarray
    #: keypoint issues: the keypoints concerned (-1: none)
    keypoint_a: np.ndarray | None = None
    keypoint_b: np.ndarray | None = None
    #: cuboids' mislocalized entries: what is most off (:data:`MISLOCALIZATIONS`; 0: none, and every other entry)
    mislocalization: np.ndarray | None = None

    def names(self, is_issue: np.ndarray) -> np.ndarray:
        """Per entry, what a flagged mislocalized cuboid is off by (:data:`MISLOCALIZATIONS`), else ""."""
        if self.mislocalization is None:
            return np.full(len(self.score), "", dtype=object)
        names = np.array(["", *MISLOCALIZATIONS.values()], dtype=object)
        return np.where(is_issue, names[self.mislocalization], "")

    def keypoints(self) -> tuple[np.ndarray, np.ndarray]:
        """Per entry, the keypoints concerned as list offsets and values."""
        n = len(self.score)
        a = np.full(n, -1, np.int64) if self.keypoint_a is None else self.keypoint_a
        b = np.full(n, -1, np.int64) if self.keypoint_b is None else self.keypoint_b
        both = np.stack([a, b], axis=1)
        offsets = np.concatenate([[0], np.cumsum((both >= 0).sum(axis=1))]).astype(np.int32)
        return offsets, both[both >= 0].astype(np.uint16)


def score_objects(
    *,
    n_frames: int,
    g_frame: np.ndarray,
    g_box: np.ndarray,
    g_cls: np.ndarray,
    g_crowd: np.ndarray,
    d_frame: np.ndarray,
    d_box: np.ndarray,
    d_cls: np.ndarray,
    d_conf: np.ndarray,
    shapes: Shapes = BOXES,
    labels: ObjectArrays | None = None,
    predictions: ObjectArrays | None = None,
) -> ObjectScores:
    """Scores G labeled and D predicted objects of ``n_frames`` frames, compared as ``shapes`` says:
    by their boxes, or by the masks, keypoints or cuboids of ``labels`` and ``predictions`` (the same
    objects, in the same order). Everything below reads "IoU" as that similarity.

    Parameters
    ----------
    g_frame, d_frame : (G,), (D,) int, sorted
        The frame (0 .. n_frames - 1) of each box.
    g_box, d_box : (G, 4), (D, 4) float
        Boxes as x, y, width, height.
    g_cls, d_cls : (G,), (D,) int
        Class ids.
    g_crowd : (G,) bool
        Crowd regions: never scored, but they cover predictions (no missing label there).
    d_conf : (D,) float in [0, 1]
        Prediction confidences.

    Returns
    -------
    ObjectScores: one spurious, mislocalized and swap entry per regular labeled box and one missing
    entry per predicted box; low scores are likely issues.
    """
    codes = np.arange(n_frames)
    g_frame, d_frame = np.asarray(g_frame, np.int64), np.asarray(d_frame, np.int64)
    g_crowd = np.asarray(g_crowd, np.bool_)
    n_g, n_d = len(g_frame), len(d_frame)
    g_score, g_partner, g_iou = np.ones((n_g, 3)), np.full((n_g, 3), -1, np.int64), np.zeros((n_g, 3))
    d_score, d_partner, d_iou = np.ones(n_d), np.full(n_d, -1, np.int64), np.zeros(n_d)
    groups = (
        np.searchsorted(g_frame, codes, "left"), np.searchsorted(g_frame, codes, "right"),
        np.searchsorted(d_frame, codes, "left"), np.searchsorted(d_frame, codes, "right"),
    )  # fmt: skip
    if labels is None or predictions is None:
        labels = ObjectArrays(np.asarray(g_cls, np.int64), np.ascontiguousarray(g_box, np.float64).reshape(-1, 4))
        predictions = ObjectArrays(np.asarray(d_cls, np.int64), np.ascontiguousarray(d_box, np.float64).reshape(-1, 4))
    labels.crowd = g_crowd
    if shapes.kind == "keypoints":  # a label without a labeled point is ignored, as a crowd region
        g_crowd = g_crowd | (labeled_points(labels, np.arange(n_g)) == 0)
    g_rows, d_rows = np.arange(n_g), np.arange(n_d)
    seen_g, seen_d = labels, predictions
    if shapes.kind == "cuboid":  # small footprints are judged by where they are, not by a few centimetres
        seen_g, seen_d = (
            replace(labels, cuboids=_grown(labels.cuboids)),
            replace(predictions, cuboids=_grown(predictions.cuboids)),
        )
    covering, pair_start = pairs(shapes.kind, groups, seen_g, g_rows, seen_d, d_rows, shapes.sigmas)
    regular = replace(seen_g, crowd=None)
    overlap, _ = pairs(shapes.kind, groups, regular, g_rows, seen_d, d_rows, shapes.sigmas)
    _score_kernel(
        *groups, pair_start, covering, overlap, np.asarray(g_cls, np.int64), g_crowd, np.asarray(d_cls, np.int64),
        np.clip(np.asarray(d_conf, np.float64), 0.0, 1.0), MATCH_IOU, LOCALIZATION_MIN_IOU,
        g_score, g_partner, g_iou, d_score, d_partner, d_iou,
    )  # fmt: skip
    what = np.zeros(n_g, np.uint8)
    if shapes.kind == "cuboid":
        assert labels.cuboids is not None and predictions.cuboids is not None
        conf = np.clip(np.asarray(d_conf, np.float64), 0.0, 1.0)
        has = g_partner[:, 1] >= 0
        g_score[has, 1], what[has] = localize_cuboids(
            g_box=labels.cuboids[has], g_cls=np.asarray(g_cls, np.int64)[has],
            d_box=predictions.cuboids[g_partner[has, 1]], d_conf=conf[g_partner[has, 1]],
        )  # fmt: skip
        # the IoU reported is that of the footprints as they are
        for col in range(3):
            g_iou[:, col] = _pair_ious(labels.cuboids, predictions.cuboids, np.arange(n_g), g_partner[:, col])
        d_iou = _pair_ious(labels.cuboids, predictions.cuboids, d_partner, np.arange(n_d))
    regular = np.flatnonzero(~g_crowd)
    k = len(regular)
    n_types = 3
    types = np.array([SPURIOUS, MISLOCALIZED, SWAP], np.uint8)
    kp_a, kp_b = np.full((n_g, 3), -1, np.int64), np.full((n_g, 3), -1, np.int64)
    if shapes.kind == "keypoints":
        kp_score, kp_which = _keypoint_scores(labels, predictions, g_partner[:, 1], d_conf, shapes)
        # an object whose points are off only where a keypoint issue says is not mislocalized as a whole
        judged = (kp_score[:, 2] >= 0) & (g_partner[:, 1] >= 0)
        conf = np.clip(np.asarray(d_conf, np.float64), 0.0, 1.0)
        g_score[judged, 1] = 1.0 - conf[g_partner[judged, 1]] * (1.0 - kp_score[judged, 2])
        kp_score = kp_score[:, :2]
        g_score = np.concatenate([g_score, kp_score], axis=1)
        g_partner = np.concatenate([g_partner, g_partner[:, 1:2].repeat(2, axis=1)], axis=1)
        g_iou = np.concatenate([g_iou, g_iou[:, 1:2].repeat(2, axis=1)], axis=1)
        kp_a = np.concatenate([kp_a, kp_which[:, [0, 2]]], axis=1)
        kp_b = np.concatenate([kp_b, np.stack([kp_which[:, 1], np.full(n_g, -1)], axis=1)], axis=1)
        types = np.array([SPURIOUS, MISLOCALIZED, SWAP, SWAPPED_KEYPOINTS, MISPLACED_KEYPOINT], np.uint8)
        n_types = 5
    issue_type = np.concatenate([np.tile(types, k), np.full(n_d, MISSING, np.uint8)])
    mislocalized = np.zeros((k, n_types), np.uint8)
    mislocalized[:, list(types).index(MISLOCALIZED)] = what[regular]
    raw = np.clip(np.concatenate([g_score[regular].ravel(), d_score]), 0.0, 1.0)
    none = np.full(n_d, -1, np.int64)
    return ObjectScores(
        frame=np.concatenate([np.repeat(g_frame[regular], n_types), d_frame]),
        obj=np.concatenate([np.repeat(regular, n_types), np.arange(n_d)]),
        predicted=np.concatenate([np.zeros(n_types * k, np.bool_), np.ones(n_d, np.bool_)]),
        issue_type=issue_type,
        raw=raw,
        partner=np.concatenate([g_partner[regular].ravel(), d_partner]),
        iou=np.concatenate([g_iou[regular].ravel(), d_iou]),
        score=calibrate(issue_type, raw),
        keypoint_a=np.concatenate([kp_a[regular].ravel(), none]),
        keypoint_b=np.concatenate([kp_b[regular].ravel(), none]),
        mislocalization=np.concatenate([mislocalized.ravel(), np.zeros(n_d, np.uint8)]),
    )


def _grown(cuboids: np.ndarray | None) -> np.ndarray:
    """Cuboids with their footprints at least :data:`MIN_SIDE` wide and long."""
    if cuboids is None:
        raise ValueError("comparing cuboids needs the objects' cuboids")
    out = np.array(cuboids, dtype=np.float64).reshape(-1, 7)
    out[:, W : L + 1] = np.maximum(out[:, W : L + 1], MIN_SIDE)
    return out


@numba.njit(cache=True, nogil=True)
def _pair_ious_kernel(g_box: np.ndarray, d_box: np.ndarray, g: np.ndarray, d: np.ndarray, out: np.ndarray) -> None:
    for i in range(g.shape[0]):
        if g[i] >= 0 and d[i] >= 0:
            out[i] = bev_iou(g_box[g[i]], d_box[d[i]])


def _pair_ious(g_box: np.ndarray, d_box: np.ndarray, g: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The bird's-eye-view IoU of labeled cuboid ``g[i]`` and predicted ``d[i]`` (0 where either is -1)."""
    out = np.zeros(len(g))
    _pair_ious_kernel(np.ascontiguousarray(g_box, np.float64), np.ascontiguousarray(d_box, np.float64),
                      np.asarray(g, np.int64), np.asarray(d, np.int64), out)  # fmt: skip
    return out


def _turn(d_yaw: np.ndarray, g_yaw: np.ndarray, period: float) -> np.ndarray:
    """The angle between two headings known up to ``period``, in [0, period / 2]."""
    return np.abs((d_yaw - g_yaw + period / 2) % period - period / 2)


def localize_cuboids(
    *, g_box: np.ndarray, g_cls: np.ndarray, d_box: np.ndarray, d_conf: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """How well each of N labeled cuboids is placed, judged against its own-class prediction.

    Three errors, each over its tolerance: the distance of the centres (3-D) over the larger of
    :data:`CENTRE_TOLERANCE` and :data:`CENTRE_SHARE` of the label's length; the largest factor between a
    side of one and the same side of the other (width, length or height; in logs) over
    :data:`SIZE_TOLERANCE`; the angle between their headings over :data:`HEADING_TOLERANCE`. Each tolerance
    is at least :data:`NOISE_MULTIPLE` times the median of that error over the class's pairs with a
    confident prediction (:data:`CONFIDENT`; from :data:`MIN_PAIRS` pairs on), so that a detector's usual
    error on a class is no issue. A class whose confident predictions point the other way (more than 135
    degrees off) more often than :data:`TURNED_SHARE` (and :data:`MIN_TURNED` times) has its headings judged
    up to front and back, and one whose headings then still differ by a median above
    :data:`HEADING_TOLERANCE` (traffic cones: any heading) has them not judged.

    Parameters
    ----------
    g_box, d_box : (N, 7) float
        Each label and its prediction (rows of :data:`shoal.common.cuboids.COLUMNS`).
    g_cls : (N,) int
        The labels' classes.
    d_conf : (N,) float in [0, 1]
        The predictions' confidences.

    Returns
    -------
    (N,) float: ``1 - c * (1 - exp(-|e|^2 / 2))``, ``e`` the three errors over their tolerances: low for a
    label a confident prediction places elsewhere. (N,) uint8: the largest of the three
    (:data:`CENTRE`, :data:`SIZE`, :data:`HEADING`).
    """
    g, d = np.asarray(g_box, np.float64).reshape(-1, 7), np.asarray(d_box, np.float64).reshape(-1, 7)
    n = len(g)
    g_cls, conf = np.asarray(g_cls, np.int64), np.asarray(d_conf, np.float64)
    distance = np.sqrt(((d[:, :3] - g[:, :3]) ** 2).sum(axis=1))
    size = np.abs(np.log(d[:, W : H + 1] / g[:, W : H + 1])).max(axis=1)
    turn = _turn(d[:, YAW], g[:, YAW], 2 * math.pi)
    tolerance = np.empty((n, 3))
    tolerance[:, 0] = np.maximum(CENTRE_TOLERANCE, CENTRE_SHARE * g[:, L])
    tolerance[:, 1] = math.log(SIZE_TOLERANCE)
    tolerance[:, 2] = HEADING_TOLERANCE
    judged = np.ones(n, np.bool_)
    for c in np.unique(g_cls).tolist():
        mine = g_cls == c
        sure = mine & (conf >= CONFIDENT)
        if sure.sum() < MIN_PAIRS:
            continue
        turned = int((turn[sure] > 0.75 * math.pi).sum())
        if turned >= MIN_TURNED and turned > TURNED_SHARE * sure.sum():
            turn[mine] = _turn(d[mine, YAW], g[mine, YAW], math.pi)
        usual = np.median(np.stack([distance[sure], size[sure], turn[sure]], axis=1), axis=0)
        judged[mine] = usual[2] <= HEADING_TOLERANCE
        tolerance[mine] = np.maximum(tolerance[mine], NOISE_MULTIPLE * usual)
    e = np.stack([distance, size, np.where(judged, turn, 0.0)], axis=1) / tolerance
    score = 1.0 - conf * (1.0 - np.exp(-(e * e).sum(axis=1) / 2))
    return score, (np.argmax(e, axis=1) + 1).astype(np.uint8)


def _keypoint_scores(
    labels: ObjectArrays, predictions: ObjectArrays, partner: np.ndarray, d_conf: np.ndarray, shapes: Shapes
) -> tuple[np.ndarray, np.ndarray]:
    """Per labeled object, its swapped-keypoints and misplaced-keypoint scores, and the keypoints
    concerned (the pair, then the point; -1 for none)."""
    n = len(labels.category)
    rows = np.arange(n)
    g_kp, g_from, g_to = parts(labels.keypoints, labels.keypoint_offsets, rows, "keypoints")
    d_kp, d_from, d_to = parts(predictions.keypoints, predictions.keypoint_offsets,
                               np.arange(len(predictions.category)), "keypoints")  # fmt: skip
    classes = np.asarray(labels.category, np.int64)
    var_from, var_to, variances = variances_of(shapes.sigmas, classes)
    flat: list[tuple[int, int]] = []
    bounds: dict[int, tuple[int, int]] = {}
    for cat in np.unique(classes).tolist():
        pairs_of = list(shapes.mirrored.get(cat, ()))
        bounds[cat] = (len(flat), len(flat) + len(pairs_of))
        flat.extend(pairs_of)
    at = np.asarray([bounds[c] for c in classes.tolist()], np.int64).reshape(-1, 2)
    out = np.ones((n, 3))
    out[:, 2] = -1.0
    which = np.full((n, 3), -1, np.int64)
    assert labels.area is not None
    _keypoint_kernel(
        np.asarray(partner, np.int64), np.ascontiguousarray(np.asarray(g_kp, np.float64).reshape(-1, 3)), g_from, g_to,
        np.asarray(labels.area, np.float64), var_from, var_to, variances, np.ascontiguousarray(at[:, 0]),
        np.ascontiguousarray(at[:, 1]), np.asarray(flat, np.int64).reshape(-1, 2),
        np.ascontiguousarray(np.asarray(d_kp, np.float64).reshape(-1, 3)), d_from, d_to,
        np.clip(np.asarray(d_conf, np.float64), 0.0, 1.0), THRESHOLDS[SWAPPED_KEYPOINTS],
        THRESHOLDS[MISPLACED_KEYPOINT], out, which,
    )  # fmt: skip
    return out, which


def calibrate(issue_type: np.ndarray, raw: np.ndarray, thresholds: Mapping[int, float] = THRESHOLDS) -> np.ndarray:
    """Raw scores rescaled, piecewise linearly and keeping their order within a type, so that the
    threshold of each type maps to :data:`FLAG_BELOW` (0 and 1 stay): scores of different types
    then compare, in a frame and across frames."""
    limit = np.full(max(thresholds) + 1, FLAG_BELOW)
    for t, v in thresholds.items():
        limit[t] = v
    t = limit[np.asarray(issue_type, np.int64)]
    r = np.clip(np.asarray(raw, np.float64), 0.0, 1.0)
    return np.where(r < t, FLAG_BELOW * r / t, FLAG_BELOW + (1 - FLAG_BELOW) * (r - t) / (1 - t))


def pool_frames(n_frames: int, s: ObjectScores, is_issue: np.ndarray) -> dict[str, np.ndarray]:
    """Per frame: the worst score (1 without objects), its type (0 without objects), the scored
    objects and the flagged entries per type."""
    score = np.ones(n_frames)
    worst = np.zeros(n_frames, np.uint8)
    if len(s.score):
        order = np.lexsort((s.score, s.frame))  # per frame, lowest score first
        first = np.flatnonzero(np.r_[True, s.frame[order][1:] != s.frame[order][:-1]])
        score[s.frame[order][first]] = s.score[order][first]
        worst[s.frame[order][first]] = s.issue_type[order][first]
    objects = np.bincount(s.frame[s.predicted], minlength=n_frames) + np.bincount(
        s.frame[~s.predicted & (s.issue_type == SPURIOUS)], minlength=n_frames
    )
    counts = {
        name: np.bincount(s.frame[is_issue & (s.issue_type == t)], minlength=n_frames)
        for t, name in COUNT_COLUMNS.items()
    }
    return {"score": score, "worst_type": worst, "objects": objects, **counts}


@dataclass
class Summary(results.JsonSummary):
    frames: int
    labeled_objects: int
    predicted_objects: int
    flagged_frames: int
    #: flagged objects per issue type name
    issues: dict[str, int]
    #: flag thresholds per issue type name
    thresholds: dict[str, float]
    match_iou: float
    localization_min_iou: float


def _chunk_starts(metrics: MetricsStore, params: Mapping[str, Any], frames_where: str) -> list[str]:
    return list(
        metrics.query_columns(
            "SELECT frame_id FROM (SELECT frame_id, row_number() OVER (ORDER BY frame_id) AS n"
            " FROM (SELECT DISTINCT frame_id FROM label_versions WHERE project = {project:String}"
            f" AND dataset = {{dataset:String}}{frames_where})) WHERE n % {{step:UInt64}} = 1 ORDER BY frame_id",
            {**params, "step": CHUNK_FRAMES},
        )["frame_id"]
    )


def find_detection_issues(
    ctx: JobContext | None,
    metrics: MetricsStore,
    job: Job,
    *,
    dataset: str,
    inference_set: str,
    frames_sql: str = "",
    frames_params: Mapping[str, Any] | None = None,
) -> Summary:
    """Scores every labeled frame of ``dataset`` (those ``frames_sql``, a SELECT of frame ids,
    selects) against the predictions of ``inference_set`` and stores the rows under the job;
    returns the summary (also stored)."""

    progress = progress_of(ctx)

    discard(metrics, job)
    params = {"project": job.project, "dataset": dataset, "set": inference_set, **(frames_params or {})}
    frames_where = f" AND frame_id IN ({frames_sql})" if frames_sql else ""
    progress("planning chunks", 0.02)
    shapes = shapes_of(ProjectCatalog(metrics).get(job.project))
    starts = _chunk_starts(metrics, params, frames_where)
    totals = {"frames": 0, "labeled": 0, "predicted": 0, "flagged_frames": 0}
    per_type = dict.fromkeys(TYPE_NAMES.values(), 0)  # the keypoint types stay 0 in other projects
    for i, lo in enumerate(starts):
        hi = starts[i + 1] if i + 1 < len(starts) else None
        scope = "frame_id >= {lo:String}" + (" AND frame_id < {hi:String}" if hi is not None else "") + frames_where
        chunk = {**params, "lo": lo, "hi": hi or ""}
        progress(f"scoring frames (chunk {i + 1} of {len(starts)})", 0.05 + 0.9 * i / len(starts))
        _score_chunk(metrics, job, chunk, scope, totals, per_type, progress, shapes)
    summary = Summary(
        frames=totals["frames"],
        labeled_objects=totals["labeled"],
        predicted_objects=totals["predicted"],
        flagged_frames=totals["flagged_frames"],
        issues=per_type,
        thresholds={TYPE_NAMES[t]: v for t, v in THRESHOLDS.items()},
        match_iou=MATCH_IOU,
        localization_min_iou=LOCALIZATION_MIN_IOU,
    )
    progress("summarizing", 0.97)
    results.save_summary(metrics, job, summary.to_json())
    return summary


def _score_chunk(
    metrics: MetricsStore,
    job: Job,
    params: Mapping[str, Any],
    scope: str,
    totals: dict[str, int],
    per_type: dict[str, int],
    progress: Callable[[str, float], None],
    shapes: Shapes,
) -> None:
    frames = np.asarray(
        metrics.query_columns(
            "SELECT DISTINCT frame_id FROM label_versions WHERE project = {project:String}"
            f" AND dataset = {{dataset:String}} AND {scope} ORDER BY frame_id",
            params,
        )["frame_id"],
        dtype=object,
    )
    gt = metrics.query_columns(f"{latest_labels_sql(scope, shapes.columns)} ORDER BY o.frame_id, o.object_id", params)
    extra = "".join(f", {c}" for c in shapes.columns)
    dt = metrics.query_columns(
        f"SELECT frame_id, object_id, class_id, score, x, y, w, h{extra} FROM predicted_objects FINAL"
        f" WHERE project = {{project:String}} AND inference_set = {{set:String}} AND {scope}"
        " ORDER BY frame_id, object_id",
        params,
    )
    if len(frames) == 0:
        return
    # predictions on frames without a label version are not examined
    d_frame = np.searchsorted(frames, np.asarray(dt["frame_id"], dtype=object)).astype(np.int64)
    keep = np.flatnonzero(frames[np.minimum(d_frame, len(frames) - 1)] == np.asarray(dt["frame_id"], dtype=object))
    dt = {k: np.asarray(v)[keep] for k, v in dt.items()}
    d_frame = d_frame[keep]
    g_frame = np.searchsorted(frames, np.asarray(gt["frame_id"], dtype=object)).astype(np.int64)

    def boxes(cols: Mapping[str, np.ndarray]) -> np.ndarray:
        return (
            np.stack([np.asarray(cols[c], np.float64) for c in "xywh"], axis=1) if len(cols["x"]) else np.zeros((0, 4))
        )

    s = score_objects(
        n_frames=len(frames), g_frame=g_frame, g_box=boxes(gt), g_cls=np.asarray(gt["class_id"]),
        g_crowd=np.asarray(gt["crowd"], np.bool_), d_frame=d_frame, d_box=boxes(dt), d_cls=np.asarray(dt["class_id"]),
        d_conf=np.asarray(dt["score"], np.float64), shapes=shapes,
        labels=from_columns(gt, shapes.kind, predicted=False),
        predictions=from_columns(dt, shapes.kind, predicted=True),
    )  # fmt: skip
    is_issue = s.score < FLAG_BELOW
    pred = s.predicted
    # index -1 (no such box) reads the appended sentinel
    g_ids, d_ids = (
        np.append(np.asarray(gt["object_id"], object), ""),
        np.append(np.asarray(dt["object_id"], object), ""),
    )
    g_cls = np.append(np.asarray(gt["class_id"], np.int32), np.int32(-1))
    d_cls = np.append(np.asarray(dt["class_id"], np.int32), np.int32(-1))
    d_conf = np.append(np.asarray(dt["score"], np.float32), np.float32(0))
    label_index = np.where(pred, s.partner, s.obj)
    pred_index = np.where(pred, s.obj, s.partner)
    obj_ids = np.where(pred, d_ids[pred_index], g_ids[label_index])
    partner_ids = np.where(pred, g_ids[label_index], d_ids[pred_index])
    given = np.where(pred, -1, g_cls[label_index])
    # the suggested class: a missing label's and a swap's predicted class, none for a spurious box
    suggested = np.where(
        pred | (s.issue_type == SWAP), d_cls[pred_index], np.where(s.issue_type == SPURIOUS, -1, given)
    )
    confidence = d_conf[pred_index]
    n = len(s.score)
    if n:
        metrics.insert_arrow(
            "detection_issue_objects",
            pa.table({
                "project": pa.array([job.project] * n, pa.string()),
                "job_id": pa.array([job.job_id] * n, pa.string()),
                "frame_id": pa.array(frames[s.frame], pa.string()),
                "object_id": pa.array(obj_ids.astype(object), pa.string()),
                "predicted": pa.array(pred.astype(np.uint8)),
                "issue_type": pa.array(s.issue_type.astype(np.uint8)),
                "score": pa.array(s.score.astype(np.float32)),
                "is_issue": pa.array(is_issue.astype(np.uint8)),
                "given_class": pa.array(np.asarray(given, np.int32)),
                "suggested_class": pa.array(np.asarray(suggested, np.int32)),
                "partner_object_id": pa.array(partner_ids.astype(object), pa.string()),
                "iou": pa.array(s.iou.astype(np.float32)),
                "confidence": pa.array(np.asarray(confidence, np.float32)),
                "keypoints": pa.ListArray.from_arrays(*(pa.array(v) for v in s.keypoints())),
                "mislocalization": pa.array(s.names(is_issue), pa.string()),
            }),
        )  # fmt: skip
    pooled = pool_frames(len(frames), s, is_issue)
    m = len(frames)
    flagged_any = sum(pooled[c] for c in COUNT_COLUMNS.values()) > 0
    metrics.insert_arrow(
        "detection_issue_frames",
        pa.table({
            "project": pa.array([job.project] * m, pa.string()),
            "job_id": pa.array([job.job_id] * m, pa.string()),
            "frame_id": pa.array(frames, pa.string()),
            "score": pa.array(pooled["score"].astype(np.float32)),
            "is_issue": pa.array(flagged_any.astype(np.uint8)),
            "worst_type": pa.array(pooled["worst_type"]),
            **{c: pa.array(pooled[c].astype(np.uint32)) for c in ("objects", *COUNT_COLUMNS.values())},
        }),
    )  # fmt: skip
    totals["frames"] += m
    totals["labeled"] += int((~pred & (s.issue_type == SPURIOUS)).sum())
    totals["predicted"] += int(pred.sum())
    totals["flagged_frames"] += int(flagged_any.sum())
    for t, name in TYPE_NAMES.items():
        per_type[name] += int((is_issue & (s.issue_type == t)).sum())


def discard(metrics: MetricsStore, job: Job) -> None:
    """Removes what a run of the job wrote (a cancelled or failed run keeps nothing)."""
    results.discard(metrics, job, TABLES)
    ranked.discard(metrics, job, RANK_TABLES)


def summary_of(metrics: MetricsStore, project: str, job_id: str) -> Summary | None:
    return results.summary_of(metrics, project, job_id, Summary)  # type: ignore[no-any-return]


#: row orders of a query (DetectionIssueOrder values)
OBJECT_ORDERS = {0: "score ASC, frame_id, object_id, issue_type", 1: "frame_id, object_id, issue_type"}
FRAME_ORDERS = {0: "score ASC, frame_id", 1: "frame_id"}
#: per issue type, its column of flagged counts in detection_issue_frames
COUNT_COLUMNS = {MISSING: "missing", SPURIOUS: "spurious", MISLOCALIZED: "mislocalized", SWAP: "swapped",
                 MISPLACED_KEYPOINT: "misplaced_keypoints", SWAPPED_KEYPOINTS: "swapped_keypoints"}  # fmt: skip
#: what a page shows of each (object, issue type) row, and of each frame
OBJECT_COLUMNS = ("frame_id, object_id, predicted, issue_type, score, is_issue, given_class, suggested_class,"
                  " partner_object_id, iou, confidence, keypoints, mislocalization")  # fmt: skip
FRAME_COLUMNS = ("frame_id, score, is_issue, worst_type, objects, missing, spurious, mislocalized, swapped,"
                 " misplaced_keypoints, swapped_keypoints")  # fmt: skip
_FLAGGED = "project = {project:String} AND job_id = {job:String} AND is_issue"


def object_listing(order: int) -> ranked.Listing:
    """The job's flagged (object, issue type) rows of every type in ``order`` (as the console's Issues page
    asks for them)."""
    return ranked.Listing("detection_object_ranks", f"objects.{order}", OBJECT_COLUMNS,
                          "detection_issue_objects FINAL", _FLAGGED, OBJECT_ORDERS[order],
                          frames="frame_id, object_id")  # fmt: skip


def frame_listing(order: int) -> ranked.Listing:
    """The job's flagged frames in ``order``."""
    return ranked.Listing("detection_frame_ranks", f"frames.{order}", FRAME_COLUMNS, "detection_issue_frames FINAL",
                          _FLAGGED, FRAME_ORDERS[order], frames="frame_id, ''")  # fmt: skip


#: every listing a job keeps in page order
LISTINGS = (*(object_listing(o) for o in OBJECT_ORDERS), *(frame_listing(o) for o in FRAME_ORDERS))


def rank(metrics: MetricsStore, job: Job, summary: Summary, *, above: int) -> int:
    """Keeps the job's flagged objects and frames in page order when longer than ``above`` (see :mod:`ranked`)."""
    flagged = sum(summary.issues.values())
    return ranked.keep(metrics, job, [*((object_listing(o), flagged) for o in OBJECT_ORDERS),
                                      *((frame_listing(o), summary.flagged_frames) for o in FRAME_ORDERS)],
                       above=above)  # fmt: skip


def query_objects(
    metrics: MetricsStore,
    project: str,
    job_id: str,
    *,
    dataset: str,
    types: list[int],
    include_unflagged: bool,
    include_dismissed: bool,
    order: int,
    offset: int,
    size: int,
    answers: AnswerCache | None = None,
) -> tuple[list[tuple[Any, ...]], int, int]:
    """A page of the job's (object, issue type) rows of ``types`` (all when empty), flagged ones
    only unless ``include_unflagged``, dismissed ones (the object's or its frame's dismissal in
    ``dataset``) only with ``include_dismissed``, in ``order``, each ending with whether it is
    dismissed; their count; and how many of the rows matched are dismissed. The flagged rows of every
    type are read from the ranked rows when the job kept them (:mod:`ranked`)."""
    if not types and not include_unflagged:
        found = _ranked_page(metrics, project, job_id, object_listing(order), dataset=dataset,
                             include_dismissed=include_dismissed, offset=offset, size=size,
                             answers=answers)  # fmt: skip
        if found is not None:
            return found
    where = "project = {project:String} AND job_id = {job:String}"
    where += "" if include_unflagged else " AND is_issue"
    where += " AND has({types:Array(UInt8)}, issue_type)" if types else ""
    params: dict[str, Any] = {"project": project, "job": job_id, "dataset": dataset}
    if types:
        params["types"] = sorted(set(types))
    return dismissals.page(metrics, "detection_issue_objects FINAL", OBJECT_COLUMNS, where, OBJECT_ORDERS[order],
                           params, dismissed=dismissals.object_dismissed_sql(), include_dismissed=include_dismissed,
                           offset=offset, size=size)  # fmt: skip


def query_frames(
    metrics: MetricsStore,
    project: str,
    job_id: str,
    *,
    dataset: str,
    types: list[int],
    include_unflagged: bool,
    include_dismissed: bool,
    order: int,
    offset: int,
    size: int,
    answers: AnswerCache | None = None,
) -> tuple[list[tuple[Any, ...]], int, int]:
    """A page of the job's frames: flagged ones (with ``types``: those with a flagged object of one
    of these types), or every frame with ``include_unflagged``; frames dismissed as a whole in
    ``dataset`` only with ``include_dismissed``; in ``order``, each ending with whether it is
    dismissed; their count; and how many of the frames matched are dismissed. The flagged frames are
    read from the ranked rows when the job kept them (:mod:`ranked`)."""
    if not types and not include_unflagged:
        found = _ranked_page(metrics, project, job_id, frame_listing(order), dataset=dataset,
                             include_dismissed=include_dismissed, offset=offset, size=size,
                             answers=answers)  # fmt: skip
        if found is not None:
            return found
    where = "project = {project:String} AND job_id = {job:String}"
    if types:
        where += " AND (" + " OR ".join(f"{COUNT_COLUMNS[t]} > 0" for t in sorted(set(types))) + ")"
    elif not include_unflagged:
        where += " AND is_issue"
    params = {"project": project, "job": job_id, "dataset": dataset}
    return dismissals.page(metrics, "detection_issue_frames FINAL", FRAME_COLUMNS, where, FRAME_ORDERS[order],
                           params, dismissed=dismissals.frame_dismissed_sql(), include_dismissed=include_dismissed,
                           offset=offset, size=size)  # fmt: skip


def _ranked_page(metrics: MetricsStore, project: str, job_id: str, lst: ranked.Listing, *, dataset: str,
                 include_dismissed: bool, offset: int, size: int,
                 answers: AnswerCache | None = None) -> tuple[list[tuple[Any, ...]], int, int] | None:  # fmt: skip
    """A page of ``lst`` (flagged objects, or frames) from its ranked rows, as :func:`query_objects` and
    :func:`query_frames` answer it; None when they do not hold the page. The rows dismissed (an
    object's or its whole frame's dismissal in force) are left out by their ranks, read through their
    frames (``rank_frames``, each frame's looked up once until the ranks change), and counted among the
    ranked rows when they are the whole listing; else in the job's rows through their frames (about 0.15 ms
    a dismissed frame at 10M frames); both kept in ``answers`` until a dismissal, a relabel or the job's rows
    change."""
    known = ranked.length(metrics, project, job_id, lst)
    if known is None or (known[1] < known[0] and offset + size > known[1]):
        return None
    objects = lst.table == "detection_object_ranks"
    params = {"project": project, "dataset": dataset, "job": job_id, "listing": lst.name}
    whole = known[1] == known[0]

    def lookup() -> tuple[set[str], set[tuple[str, str]], list[int], int]:  # all it depends on read anew
        """The frames dismissed whole, the objects dismissed (of an objects' listing), the ranks they leave out and
        how many rows of the listing they leave out."""
        in_force = {(str(f), str(o)) for f, o in metrics.query(
            f"SELECT frame_id, object_id FROM ({dismissals.in_force_sql()})", params).rows}  # fmt: skip
        frames = {f for f, o in in_force if not o}
        # an object's own dismissal counts for its rows, not for its frame
        pairs = {(f, o) for f, o in in_force if o} if objects else set()
        if not frames and not pairs:
            return frames, pairs, [], 0
        # the frames named as a literal set, which the ranks by frame and the job's rows are read through
        touched = sorted(frames | {f for f, _ in pairs})
        rows = ranked.ranks_by_frame(metrics, project, job_id, [lst], touched, answers)[lst.name]
        # a row is left out by its frame's dismissal, or (an object's row) its object's
        skipped = [r for f, o, r in rows if f in frames or (f, o) in pairs]
        if whole:
            return frames, pairs, skipped, len(skipped)
        condition = dismissals.object_dismissed_sql() if objects else dismissals.frame_dismissed_sql()
        n = int(metrics.query(
            f"SELECT count() FROM {lst.source} WHERE {lst.where} AND frame_id IN {{touched:Array(String)}}"
            f" AND {condition}", {**params, "touched": touched}).scalar())  # fmt: skip
        return frames, pairs, skipped, n

    # kept until a dismissal, a relabel or the job's rows or ranks change
    tables = (*ranked.BY_FRAME_TABLES, *dismissals.IN_FORCE_TABLES, lst.source.split()[0])
    key = ("detection_issues.dismissed", project, job_id, dataset, lst.key, whole)
    found = lookup() if answers is None else answers.get(tables, key, lookup, lambda a: len(a[2]) + len(a[0]))
    frames, pairs, skipped, n_dismissed = found
    if include_dismissed:
        skipped = []
    page = ranked.page(metrics, project, job_id, lst, offset=offset, size=size, skipped=skipped, known=known)
    if page is None:
        return None
    rows, total = page
    marked = [(*r, r[0] in frames or (str(r[0]), str(r[1])) in pairs) for r in rows]
    return marked, total if include_dismissed else total - n_dismissed, n_dismissed


def scored(
    metrics: MetricsStore, project: str, job_id: str, frame_ids: list[str], objects: list[tuple[str, str]]
) -> tuple[set[str], set[tuple[str, str]]]:
    """Which of these frames, and of these (frame, object) pairs, the job scored."""
    params = {"project": project, "job": job_id}
    frames = metrics.query_ids(
        "SELECT DISTINCT frame_id FROM detection_issue_frames WHERE project = {project:String}"
        " AND job_id = {job:String} AND frame_id IN {ids:Array(String)}",
        params, "ids", sorted(set(frame_ids)),
    )  # fmt: skip
    pairs = metrics.query_ids(
        "SELECT DISTINCT frame_id, object_id FROM detection_issue_objects WHERE project = {project:String}"
        " AND job_id = {job:String} AND frame_id IN {ids:Array(String)}",
        params, "ids", sorted({f for f, _ in objects}),
    )  # fmt: skip
    return {str(r[0]) for r in frames}, {(str(f), str(o)) for f, o in pairs}
