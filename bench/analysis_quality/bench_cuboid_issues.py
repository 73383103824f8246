"""Label issues of 3-D cuboids on generated lidar frames with planted errors.

The data: frames of about 13 objects up to 49 m from the ego vehicle each way, of seven classes with nuScenes' mean
sizes (cars most, then pedestrians, barriers, cones, trucks, bicycles, buses), placed in groups (a vehicle alone,
people in ones to threes, barriers end to end, cones in a row, bicycles side by side). A simulated detector sees
every object, most clearly (95 % of vehicles and 93 % of small objects near the ego vehicle, 10 and 20 points fewer
at 70 m): centre off by 0.07 to 0.25 m a side depending on the class, growing with range; sides by 5 % (vehicles) to
12 % (people, cones); headings by 3 to 14 degrees, turned around for 1 % of vehicles, 8 to 12 % of bicycles and
people and half the barriers, and any heading for a cone; confidence about 0.9. The rest it sees vaguely (errors 2.5
times as large, a fifth of them taken for a look-alike class) with a confidence about 0.3, and it adds about one
false alarm a frame. The labels are the true objects with an annotator's small noise and, on 1 % of them per kind, a
planted error: a label dropped (missing), a label added in an empty place (spurious), a box moved by a quarter to a
half of its size along and across and at least 0.6 m (centre), one or two of its sides stretched 1.5 to 2 times or
shrunk to 0.5 to 0.65 (size), its heading turned by 40 to 140 degrees or reversed (heading; never on a cone, never
reversed on a barrier), its class changed, to a look-alike's four times in five (swap).

The job is the one ``StartLabelIssues`` runs on a cuboid project (``find_detection_issues``), on chDB, loaded as
ingest writes it. Per type: precision and recall of its flags against the errors planted of that type; P@planted,
the share of the planted errors in the first P places of the type's list, lowest score first (P: how many were
planted); AUROC of the type's score between the planted errors of that type and the clean labels (other kinds'
errors left out). Mislocalized counts the three planted kinds of mislocalization together, and says per kind how
many were found and what they were named. A missing-label flag is a prediction: it is right when it is the
detector's prediction of a dropped label (its AUROC: over every prediction). Frames: those with a planted error
against the flagged ones and the frame score. ``--box-rules`` runs the same sets again with cuboids judged by the
rules of 2-D boxes (footprints as they are, a mislocalization by their IoU), for comparison.

    python bench/analysis_quality/bench_cuboid_issues.py --frames 3000 --seeds 1 2 3 --box-rules
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.harness import frame_name, peak_rss_mib, results_header, write_results  # noqa: E402

PROJECT, DATASET, INFERENCE_SET = "bench", "d", "m"
#: name: width, length, height (m, nuScenes' mean sizes), share of the groups
CLASSES = {
    "car": (1.95, 4.62, 1.73, 0.42),
    "truck": (2.51, 6.93, 2.84, 0.07),
    "bus": (2.94, 11.19, 3.47, 0.03),
    "pedestrian": (0.67, 0.73, 1.77, 0.18),
    "bicycle": (0.61, 1.70, 1.29, 0.06),
    "barrier": (2.53, 0.50, 0.98, 0.12),
    "traffic_cone": (0.41, 0.41, 1.07, 0.12),
}
NAMES = tuple(CLASSES)
CAR, TRUCK, BUS, PEDESTRIAN, BICYCLE, BARRIER, CONE = range(7)
#: a class the detector takes a class for when it is wrong, and what a class swap plants
LOOK_ALIKE = {CAR: TRUCK, TRUCK: BUS, BUS: TRUCK, PEDESTRIAN: BICYCLE, BICYCLE: PEDESTRIAN, BARRIER: CONE,
              CONE: BARRIER}  # fmt: skip
#: per class: centre error (m a side, clear detections, at the ego), size error (log, per side), heading error
#: (rad), share of headings turned around (cones: any heading)
DETECTOR = {
    CAR: (0.12, 0.05, 0.05, 0.01), TRUCK: (0.20, 0.05, 0.05, 0.01), BUS: (0.25, 0.05, 0.05, 0.01),
    PEDESTRIAN: (0.08, 0.12, 0.25, 0.12), BICYCLE: (0.10, 0.10, 0.15, 0.08), BARRIER: (0.10, 0.10, 0.05, 0.5),
    CONE: (0.07, 0.12, 0.0, 1.0),
}  # fmt: skip
#: planted errors: share of the true objects per kind
RATE = 0.01
KINDS = ("missing", "spurious", "centre", "size", "heading", "swap")
#: the grid of cells groups are placed in (m): 7 x 7 cells of 14 m, the ego's cell left empty
CELL, CELLS = 14.0, 7


def _group(rng: np.random.Generator, cls: int) -> list[tuple[float, float, float]]:
    """Offsets (along, across) and yaw of the members of a group, around its centre."""
    yaw = float(rng.uniform(-math.pi, math.pi))
    if cls == PEDESTRIAN:
        k = int(rng.integers(1, 4))
        return [(1.2 * i - 1.2 * (k - 1) / 2, float(rng.uniform(-0.3, 0.3)), float(rng.uniform(-math.pi, math.pi)))
                for i in range(k)]  # fmt: skip
    if cls == BARRIER:
        k = int(rng.integers(1, 4))
        return [(0.0, 2.7 * i - 2.7 * (k - 1) / 2, yaw) for i in range(k)]
    if cls == CONE:
        k = int(rng.integers(2, 5))
        gap = float(rng.uniform(1.5, 2.2))
        return [(gap * i - gap * (k - 1) / 2, 0.0, float(rng.uniform(-math.pi, math.pi))) for i in range(k)]
    if cls == BICYCLE:
        k = int(rng.integers(1, 3))
        return [(0.0, 1.0 * i - 1.0 * (k - 1) / 2, yaw) for i in range(k)]
    return [(0.0, 0.0, yaw)]


def _rotate(along: float, across: float, yaw: float) -> tuple[float, float]:
    c, s = math.cos(yaw), math.sin(yaw)
    return along * c - across * s, along * s + across * c


def data(n: int, seed: int = 0) -> dict[str, Any]:
    """Labeled cuboids (``g_*``) and predicted ones (``d_*``), each sorted by frame, with what was planted:
    ``g_planted`` (a kind of :data:`KINDS` on each wrong label, else ""), ``d_shows`` (the predictions of dropped
    labels) and ``g_truth`` (each label's true object, -1 for a spurious one)."""
    rng = np.random.default_rng(seed)
    shares = np.array([v[3] for v in CLASSES.values()])
    sizes = np.array([v[:3] for v in CLASSES.values()])
    cells = [(i, j) for i in range(CELLS) for j in range(CELLS) if (i, j) != (CELLS // 2, CELLS // 2)]
    t_frame, t_cls, t_box, free = [], [], [], []
    for f in range(n):
        chosen = rng.permutation(len(cells))
        k = int(rng.integers(6, 12))
        for c in chosen[:k]:
            i, j = cells[c]
            cx, cy = (i - CELLS // 2) * CELL + rng.uniform(-1, 1), (j - CELLS // 2) * CELL + rng.uniform(-1, 1)
            cls = int(rng.choice(len(shares), p=shares / shares.sum()))
            for along, across, yaw in _group(rng, cls):
                dx, dy = _rotate(along, across, yaw)
                wlh = sizes[cls] * np.exp(rng.normal(0, 0.08, 3))
                t_frame.append(f)
                t_cls.append(cls)
                t_box.append([cx + dx, cy + dy, wlh[2] / 2 + rng.normal(0, 0.05), *wlh, yaw])
        free.append([cells[c] for c in chosen[k : k + 3]])  # empty cells, for spurious labels
    t_frame_a, t_cls_a, t_box_a = np.asarray(t_frame), np.asarray(t_cls), np.asarray(t_box)
    t = len(t_frame_a)
    dist = np.hypot(t_box_a[:, 0], t_box_a[:, 1])
    # the detector
    small = np.isin(t_cls_a, [PEDESTRIAN, BICYCLE, BARRIER, CONE])
    clear = rng.random(t) < np.where(small, 0.93 - 0.2 * dist / 70, 0.95 - 0.1 * dist / 70)
    par = np.array([DETECTOR[c] for c in t_cls_a])
    scale = (1 + dist / 50) * np.where(clear, 1.0, 2.5)
    d_box = t_box_a.copy()
    d_box[:, :2] += rng.normal(0, 1, (t, 2)) * (par[:, 0] * scale)[:, None]
    d_box[:, 2] += rng.normal(0, 0.05, t) * scale
    d_box[:, 3:6] *= np.exp(rng.normal(0, 1, (t, 3)) * (par[:, 1] * np.where(clear, 1.0, 2.5))[:, None])
    turned = rng.random(t) < par[:, 3]
    d_box[:, 6] += rng.normal(0, 1, t) * par[:, 2] * np.where(clear, 1.0, 2.5) + np.where(turned, math.pi, 0.0)
    cone = t_cls_a == CONE
    d_box[cone, 6] = rng.uniform(-math.pi, math.pi, int(cone.sum()))
    right = rng.random(t) < np.where(clear, 0.98, 0.8)
    d_cls = np.where(right, t_cls_a, [LOOK_ALIKE[c] for c in t_cls_a])
    d_conf = np.where(clear, rng.beta(20, 2, t), rng.beta(2, 4, t)) * np.where(right, 1.0, 0.6)
    d_true = np.arange(t)
    d_frame = t_frame_a
    # false alarms anywhere
    fa = rng.poisson(1.0, n)
    m = int(fa.sum())
    fa_cls = rng.choice(len(shares), m, p=shares / shares.sum())
    fa_size = sizes[fa_cls] * np.exp(rng.normal(0, 0.1, (m, 3)))
    fa_box = np.c_[rng.uniform(-45, 45, (m, 2)), fa_size[:, 2] / 2, fa_size, rng.uniform(-math.pi, math.pi, m)]
    d_frame = np.r_[d_frame, np.repeat(np.arange(n), fa)]
    d_box = np.r_[d_box, fa_box]
    d_cls = np.r_[d_cls, fa_cls]
    d_conf = np.r_[d_conf, rng.beta(1.5, 8, m)]
    d_true = np.r_[d_true, np.full(m, -1)]
    # the labels: an annotator's small noise, then the planted errors
    g_box = t_box_a.copy()
    g_box[:, :3] += rng.normal(0, 0.03, (t, 3))
    g_box[:, 3:6] *= np.exp(rng.normal(0, 0.02, (t, 3)))
    g_box[:, 6] += rng.normal(0, 0.02, t)
    g_cls = t_cls_a.copy()
    kind = np.full(t, "", dtype=object)
    draw = rng.random(t)
    for i, name in enumerate(("missing", "centre", "size", "heading", "swap")):
        kind[(draw >= i * RATE) & (draw < (i + 1) * RATE)] = name
    kind[(kind == "heading") & cone] = ""
    yaw_turn = rng.uniform(math.radians(40), math.radians(140), t) * rng.choice([-1, 1], t)
    reverse = (rng.random(t) < 0.3) & (t_cls_a != BARRIER)
    h = kind == "heading"
    g_box[h, 6] += np.where(reverse, math.pi, yaw_turn)[h]
    c = np.flatnonzero(kind == "centre")
    along = rng.uniform(0.25, 0.5, len(c)) * rng.choice([-1, 1], len(c)) * g_box[c, 4]
    across = rng.uniform(0.25, 0.5, len(c)) * rng.choice([-1, 1], len(c)) * g_box[c, 3]
    stretch = np.maximum(1.0, 0.6 / np.hypot(along, across))  # at least 0.6 m in all
    along, across = along * stretch, across * stretch
    g_box[c, 0] += along * np.cos(g_box[c, 6]) - across * np.sin(g_box[c, 6])
    g_box[c, 1] += along * np.sin(g_box[c, 6]) + across * np.cos(g_box[c, 6])
    for i in np.flatnonzero(kind == "size"):
        sides = rng.choice(3, int(rng.integers(1, 3)), replace=False)
        grow = rng.random() < 0.5
        g_box[i, 3 + sides] *= rng.uniform(1.5, 2.0, len(sides)) if grow else rng.uniform(0.5, 0.65, len(sides))
    s = np.flatnonzero(kind == "swap")
    g_cls[s] = np.where(rng.random(len(s)) < 0.8, [LOOK_ALIKE[c] for c in g_cls[s]],
                        (g_cls[s] + rng.integers(1, len(CLASSES), len(s))) % len(CLASSES))  # fmt: skip
    keep = kind != "missing"
    d_shows = np.isin(d_true, np.flatnonzero(~keep))
    # spurious labels, in cells no group took
    n_spur = rng.binomial(t, RATE)
    s_frame = np.sort(rng.choice(n, n_spur))
    s_cls = rng.choice(len(shares), n_spur, p=shares / shares.sum())
    s_box = np.zeros((n_spur, 7))
    for i, f in enumerate(s_frame):
        ci, cj = free[f][int(rng.integers(0, len(free[f])))]
        s_box[i] = [(ci - CELLS // 2) * CELL + rng.uniform(-2, 2), (cj - CELLS // 2) * CELL + rng.uniform(-2, 2),
                    sizes[s_cls[i], 2] / 2, *sizes[s_cls[i]], rng.uniform(-math.pi, math.pi)]  # fmt: skip
    g_frame = np.r_[t_frame_a[keep], s_frame]
    g_box = np.r_[g_box[keep], s_box]
    g_cls = np.r_[g_cls[keep], s_cls]
    g_planted = np.r_[kind[keep], np.full(n_spur, "spurious", dtype=object)]
    g_truth = np.r_[np.flatnonzero(keep), np.full(n_spur, -1)]
    go, do = np.argsort(g_frame, kind="stable"), np.argsort(d_frame, kind="stable")
    return {
        "n": n, "g_frame": g_frame[go], "g_box": g_box[go], "g_cls": g_cls[go], "g_planted": g_planted[go],
        "g_truth": g_truth[go], "d_frame": d_frame[do], "d_box": d_box[do], "d_cls": d_cls[do],
        "d_conf": d_conf[do], "d_shows": d_shows[do],
    }  # fmt: skip


def load(d: dict[str, Any], path: Path) -> Any:
    """Writes the set into chDB's tables as ingest writes a cuboid project's: its frames with one label version
    each, the labeled cuboids and the predicted ones. Returns the store."""
    import pyarrow as pa

    from shoal.common.data import frames as frame_tables
    from shoal.common.data import projects
    from shoal.common.stores.metrics import EmbeddedMetricsStore
    from shoal.ingest import writer
    from shoal.ingest.columns import constant

    m = EmbeddedMetricsStore(path=path, database="bench")
    m.create_database()
    m.migrate((*projects.MIGRATIONS, *frame_tables.MIGRATIONS, *writer.MIGRATIONS))
    projects.ProjectCatalog(m).create(projects.Project(
        PROJECT, "CUBOIDS_3D", classes=tuple(projects.ClassDef(i, name) for i, name in enumerate(NAMES))))  # fmt: skip
    n = d["n"]
    frames = pa.array(frame_name(np.arange(n)))
    m.insert_arrow("frames", pa.table({"project": constant(PROJECT, n), "dataset": constant(DATASET, n),
                                       "frame_id": frames, "version": pa.array(np.ones(n, np.uint64))}))  # fmt: skip
    m.insert_arrow("label_versions", pa.table({"project": constant(PROJECT, n), "dataset": constant(DATASET, n),
                                               "frame_id": frames, "label_version": constant("v1", n)}))  # fmt: skip
    zeros = {c: pa.array(np.zeros(len(d["g_frame"]), np.float32)) for c in "xywh"}
    g = len(d["g_frame"])
    m.insert_arrow("label_objects", pa.table({
        "project": constant(PROJECT, g), "dataset": constant(DATASET, g),
        "frame_id": pa.array(frame_name(d["g_frame"])), "label_version": constant("v1", g),
        "object_id": pa.array([f"g{i:09d}" for i in range(g)]),
        "class_id": pa.array(d["g_cls"].astype(np.int32)), **zeros, "is_crowd": pa.array(np.zeros(g, np.uint8)),
        "cuboid": pa.array(d["g_box"].tolist(), pa.list_(pa.float64()))}))  # fmt: skip
    k = len(d["d_frame"])
    zeros = {c: pa.array(np.zeros(k, np.float32)) for c in "xywh"}
    m.insert_arrow("predicted_objects", pa.table({
        "project": constant(PROJECT, k), "inference_set": constant(INFERENCE_SET, k), "dataset": constant(DATASET, k),
        "frame_id": pa.array(frame_name(d["d_frame"])), "object_id": pa.array([f"d{i:09d}" for i in range(k)]),
        "class_id": pa.array(d["d_cls"].astype(np.int32)), "score": pa.array(d["d_conf"].astype(np.float32)),
        **zeros, "version": pa.array(np.ones(k, np.uint64)),
        "cuboid": pa.array(d["d_box"].tolist(), pa.list_(pa.float64()))}))  # fmt: skip
    return m


def _measures(truth: np.ndarray, flagged: np.ndarray, score: np.ndarray, among: np.ndarray) -> dict[str, Any]:
    """Precision and recall of ``flagged`` against ``truth``, P@planted and the AUROC of ``score`` (low: an
    issue), the last two over the rows ``among``."""
    from sklearn.metrics import roc_auc_score

    planted = int(truth.sum())
    top = np.flatnonzero(among)[np.argsort(score[among], kind="stable")[:planted]]
    return {
        "planted": planted,
        "flagged": int(flagged.sum()),
        "precision": round(float((truth & flagged).sum() / max(1, flagged.sum())), 3),
        "recall": round(float((truth & flagged).sum() / max(1, planted)), 3),
        "precision_at_planted": round(float(truth[top].sum() / max(1, planted)), 3),
        "auroc": round(float(roc_auc_score(truth[among], -score[among])), 3),
    }


def label_issues(n: int, seed: int) -> dict[str, Any]:
    """Generates the set, loads it, runs the job; the measures per issue type."""
    from shoal.analysis import detection_issues as di
    from shoal.analysis import label_issues as li
    from shoal.analysis import ranked
    from shoal.common.data import results
    from shoal.common.jobs import Job

    t = time.perf_counter()
    d = data(n, seed)
    generated = time.perf_counter() - t
    work = Path(tempfile.mkdtemp(prefix="bench-cuboid-issues-"))
    try:
        m = load(d, work / "ch")
        m.migrate([*results.MIGRATIONS, *li.MIGRATIONS, *ranked.MIGRATIONS, *di.MIGRATIONS, *di.RANK_MIGRATIONS])
        job = Job(PROJECT, "analysis", f"detection_label_issues-bench-{seed}", di.KIND)
        t = time.perf_counter()
        di.find_detection_issues(None, m, job, dataset=DATASET, inference_set=INFERENCE_SET)
        seconds = time.perf_counter() - t
        params = {"p": PROJECT, "j": job.job_id}
        rows = m.query_columns(
            "SELECT object_id, predicted, issue_type, score, is_issue, mislocalization FROM detection_issue_objects"
            " FINAL WHERE project = {p:String} AND job_id = {j:String}",
            params,
        )
        frames = m.query_columns(
            "SELECT frame_id, score, is_issue FROM detection_issue_frames FINAL WHERE project = {p:String}"
            " AND job_id = {j:String} ORDER BY frame_id",
            params,
        )
        m.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    index = np.array([int(o[1:]) for o in rows["object_id"]])
    predicted = np.asarray(rows["predicted"], bool)
    kind = np.asarray(rows["issue_type"])
    score = np.asarray(rows["score"], np.float64)
    flagged = np.asarray(rows["is_issue"], bool)
    named = np.asarray(rows["mislocalization"], object)
    planted = d["g_planted"]
    out: dict[str, Any] = {"frames": n, "labeled": len(d["g_frame"]), "predicted": len(d["d_frame"]),
                           "generate_seconds": round(generated, 1), "job_seconds": round(seconds, 2),
                           "types": {}}  # fmt: skip
    for name, t, kinds in (("spurious label", di.SPURIOUS, ("spurious",)),
                           ("mislocalized", di.MISLOCALIZED, ("centre", "size", "heading")),
                           ("class swap", di.SWAP, ("swap",))):  # fmt: skip
        mine = (kind == t) & ~predicted
        p = planted[index[mine]]
        truth = np.isin(p, kinds)
        out["types"][name] = _measures(truth, flagged[mine], score[mine], truth | (p == ""))
        if name == "mislocalized":
            per = {}
            for k in kinds:
                of = p == k
                found = of & flagged[mine]
                per[k] = {"planted": int(of.sum()), "recall": round(float(found.sum() / max(1, of.sum())), 3),
                          "named": {v: int((named[mine][found] == v).sum()) for v in kinds}}  # fmt: skip
            out["types"][name]["by_kind"] = per
            wrong = flagged[mine] & (p == "")
            classes, counts = np.unique(d["g_cls"][index[mine][wrong]], return_counts=True)
            out["types"][name]["false_by_class"] = {NAMES[c]: int(v) for c, v in zip(classes, counts, strict=True)}
    mine = (kind == di.MISSING) & predicted
    truth = d["d_shows"][index[mine]]
    out["types"]["missing label"] = _measures(truth, flagged[mine], score[mine], np.ones(int(mine.sum()), bool))
    # frames: those with a planted error (a wrong label, or the prediction of a dropped one)
    bad = np.zeros(n, bool)
    bad[d["g_frame"][planted != ""]] = True
    bad[d["d_frame"][d["d_shows"]]] = True
    out["frames_flagged"] = _measures(bad, np.asarray(frames["is_issue"], bool), np.asarray(frames["score"]),
                                      np.ones(n, bool))  # fmt: skip
    return out


def as_boxes() -> None:
    """Makes the job judge cuboids by the rules of 2-D boxes, for comparison: footprints as they are, and a
    mislocalization scored ``1 - c (1 - IoU)`` on the footprints' IoU (naming nothing)."""
    from shoal.analysis import detection_issues as di
    from shoal.common.cuboids import bev_iou

    def by_iou(*, g_box: np.ndarray, g_cls: np.ndarray, d_box: np.ndarray, d_conf: np.ndarray) -> Any:
        g, d = np.ascontiguousarray(g_box, np.float64), np.ascontiguousarray(d_box, np.float64)
        iou = np.array([bev_iou(a, b) for a, b in zip(g, d, strict=True)])
        return 1.0 - d_conf * (1.0 - iou), np.zeros(len(g_box), np.uint8)

    di.MIN_SIDE = 0.0
    di.localize_cuboids = by_iou


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--box-rules", action="store_true", help="then run again judging cuboids as 2-D boxes")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "analysis_quality" / "results_cuboid_issues.json")
    args = ap.parse_args()
    results = results_header()
    for rules in ("cuboid", "box")[: 2 if args.box_rules else 1]:
        if rules == "box":
            as_boxes()
        for seed in args.seeds:
            load_average = os.getloadavg()[0]
            run = label_issues(args.frames, seed)
            run["load_average_1min"] = [round(load_average, 1), round(os.getloadavg()[0], 1)]  # before and after
            run["peak_rss_mib"] = round(peak_rss_mib())
            results["runs"][f"seed {seed}, {rules} rules"] = run
            print(seed, rules, run, flush=True)
    write_results(args.out, results)


if __name__ == "__main__":
    main()
