"""nuScenes detection metrics (AP at 0.5/1/2/4 m, ATE, ASE, AOE, AVE, AAE, mAP, NDS) of N labeled cuboids and a
model's predictions, Shoal beside the nuScenes devkit on the same boxes.

Each side runs in a process of its own, so that each peak memory is its own, after a parent wrote the set to an
``.npz`` file in the devkit's fields (translation, size, rotation as a quaternion, velocity, attribute, score):

1. Shoal (``shoal.analysis.nuscenes.evaluate_chunks``, chunks of 2,000 frames), from the arrays: the quaternions
   made yaws and the cuboids checked, then matching and accumulation;
2. the devkit 1.2 (``DetectionEval.evaluate``: its ``accumulate``, ``calc_ap``, ``calc_tp`` and
   ``DetectionMetrics``; tests/harness/nuscenes_devkit.py) in its own venv (it requires numpy<2; made by
   scripts/ensure-nuscenes-devkit.sh), from the same arrays: the ``DetectionBox`` objects built, then evaluated;
3. Shoal's AP over BEV IoU and over 3-D IoU (COCO's rules, .50:.95), which the devkit has no peer for.

The sets: 10 classes (nuScenes' names, cars and pedestrians most frequent), about 30 labeled cuboids a frame within
50 m of the ego vehicle at a global position, attributes (5% missing) and velocities (5% unknown); the model finds
80% of them (a tenth twice) at centre errors of 0.1 to 2 m, sizes off by about 10%, headings off by about 0.15 rad
(5% turned around), a tenth with the wrong class, and 30% more false positives; scores in 0.01 steps (ties). The
headline numbers (mAP, the five mTP errors, NDS) and every class's AP must agree to 1e-6, or the timings mean
nothing.

    python bench/analysis_metrics/bench_cuboids.py --cuboids 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.harness import peak_rss_mib, results_header, run_child, write_results  # noqa: E402

MODULE = "bench.analysis_metrics.bench_cuboids"
DEVKIT_DRIVER = REPO / "tests" / "harness" / "nuscenes_devkit.py"

NAMES = ("car", "truck", "bus", "trailer", "construction_vehicle", "pedestrian", "motorcycle", "bicycle",
         "traffic_cone", "barrier")  # fmt: skip
ATTRIBUTES = ("pedestrian.moving", "pedestrian.sitting_lying_down", "pedestrian.standing", "cycle.with_rider",
              "cycle.without_rider", "vehicle.moving", "vehicle.parked", "vehicle.stopped")  # fmt: skip
#: how often each class occurs, roughly as in nuScenes
SHARE = np.array([0.30, 0.07, 0.02, 0.03, 0.02, 0.20, 0.03, 0.03, 0.13, 0.17])
#: w, l, h per class
SIZES = np.array([[1.9, 4.6, 1.7], [2.5, 7.0, 3.0], [2.9, 11.0, 3.5], [2.9, 12.0, 3.9], [2.8, 6.4, 3.2],
                  [0.7, 0.7, 1.8], [0.8, 2.1, 1.5], [0.6, 1.7, 1.3], [0.4, 0.4, 1.0], [2.5, 0.5, 1.0]])  # fmt: skip
#: the attributes a class can have (first, last code), -1 for none
ATTRIBUTE_RANGE = np.array([[5, 7], [5, 7], [5, 7], [5, 7], [5, 7], [0, 2], [3, 4], [3, 4], [-1, -1], [-1, -1]])
PER_FRAME = 30
STATS = ("mAP", "mATE", "mASE", "mAOE", "mAVE", "mAAE", "NDS")
DEVKIT_STATS = {"mATE": "trans_err", "mASE": "scale_err", "mAOE": "orient_err", "mAVE": "vel_err", "mAAE": "attr_err"}
CHUNK_FRAMES = 2000


def data(cuboids: int, seed: int = 0) -> dict[str, np.ndarray]:
    """About ``cuboids`` labeled cuboids and the model's predictions, in the devkit's fields, sorted by frame."""
    rng = np.random.default_rng(seed)
    n = max(1, cuboids // PER_FRAME)
    per = rng.integers(PER_FRAME - 10, PER_FRAME + 11, n)
    g_frame = np.repeat(np.arange(n), per)
    g = len(g_frame)
    ego = rng.uniform(0, 2000, (n, 2))
    g_cls = rng.choice(len(NAMES), g, p=SHARE)
    g_xy = ego[g_frame] + rng.uniform(-50, 50, (g, 2))
    g_translation = np.column_stack([g_xy, rng.uniform(0.3, 2.0, g)])
    g_size = SIZES[g_cls] * rng.uniform(0.85, 1.15, (g, 3))
    g_yaw = rng.uniform(-np.pi, np.pi, g)
    still = (g_cls == NAMES.index("traffic_cone")) | (g_cls == NAMES.index("barrier"))
    g_velocity = np.where(still[:, None], 0.0, rng.normal(0, 3, (g, 2)))
    g_velocity[rng.random(g) < 0.05] = np.nan
    lo, hi = ATTRIBUTE_RANGE[g_cls, 0], ATTRIBUTE_RANGE[g_cls, 1]
    g_attr = np.where(lo < 0, -1, lo + (rng.random(g) * (hi - lo + 1)).astype(np.int64))
    g_attr[rng.random(g) < 0.05] = -1

    seen = np.flatnonzero(rng.random(g) < 0.8)
    seen = np.concatenate([seen, seen[rng.random(len(seen)) < 0.1]])  # some found twice
    s = len(seen)
    sigma = rng.choice([0.1, 0.3, 0.8, 2.0], s)
    d_translation = g_translation[seen] + rng.normal(0, 1, (s, 3)) * np.column_stack([sigma, sigma, np.full(s, 0.2)])
    d_size = g_size[seen] * np.exp(rng.normal(0, 0.1, (s, 3)))
    d_yaw = g_yaw[seen] + rng.normal(0, 0.15, s) + np.where(rng.random(s) < 0.05, np.pi, 0.0)
    d_velocity = g_velocity[seen] + rng.normal(0, 1, (s, 2))
    d_velocity[rng.random(s) < 0.05] = np.nan
    d_cls = np.where(rng.random(s) < 0.9, g_cls[seen], rng.choice(len(NAMES), s, p=SHARE))
    d_attr = np.where(rng.random(s) < 0.8, g_attr[seen], rng.integers(-1, len(ATTRIBUTES), s))
    d_score = rng.integers(30, 101, s) / 100
    noise = int(0.3 * g)
    f_frame = rng.integers(0, n, noise)
    f_cls = rng.choice(len(NAMES), noise, p=SHARE)
    d_frame = np.concatenate([g_frame[seen], f_frame])
    d_cls = np.concatenate([d_cls, f_cls])
    f_xy = ego[f_frame] + rng.uniform(-50, 50, (noise, 2))
    d_translation = np.concatenate([d_translation, np.column_stack([f_xy, np.ones(noise)])])
    d_size = np.concatenate([d_size, SIZES[f_cls]])
    d_yaw = np.concatenate([d_yaw, rng.uniform(-np.pi, np.pi, noise)])
    d_velocity = np.concatenate([d_velocity, rng.normal(0, 3, (noise, 2))])
    d_attr = np.concatenate([d_attr, np.full(noise, -1)])
    d_score = np.concatenate([d_score, rng.integers(1, 61, noise) / 100])
    order = np.argsort(d_frame, kind="stable")

    def rotation(yaw: np.ndarray) -> np.ndarray:
        zero = np.zeros_like(yaw)
        return np.column_stack([np.cos(yaw / 2), zero, zero, np.sin(yaw / 2)])

    return {
        "frames": np.arange(n), "class_names": np.array(NAMES), "attribute_names": np.array(ATTRIBUTES),
        "g_frame": g_frame, "g_cls": g_cls, "g_translation": g_translation, "g_size": g_size,
        "g_rotation": rotation(g_yaw), "g_velocity": g_velocity, "g_attr": g_attr,
        "d_frame": d_frame[order], "d_cls": d_cls[order], "d_translation": d_translation[order],
        "d_size": d_size[order], "d_rotation": rotation(d_yaw[order]), "d_velocity": d_velocity[order],
        "d_attr": d_attr[order], "d_score": d_score[order],
    }  # fmt: skip


def _rss_mib() -> float:
    """This process's resident memory now (the set loaded, before the evaluation)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _load(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _chunks(a: dict[str, np.ndarray], frames: int):  # type: ignore[no-untyped-def]
    """(labels, predictions, frames) of each run of CHUNK_FRAMES frames, the cuboids made from the devkit's fields."""
    from shoal.analysis.nuscenes import Cuboids
    from shoal.common.cuboids import cuboids, yaw_from_quaternion

    bounds = {p: np.searchsorted(a[f"{p}_frame"], np.arange(0, frames + CHUNK_FRAMES, CHUNK_FRAMES)) for p in "gd"}
    for i in range(len(bounds["g"]) - 1):
        sides = []
        for p in "gd":
            part = slice(bounds[p][i], bounds[p][i + 1])
            box = cuboids(centre=a[f"{p}_translation"][part], size=a[f"{p}_size"][part],
                          yaw=yaw_from_quaternion(a[f"{p}_rotation"][part]))  # fmt: skip
            sides.append(Cuboids(frame=a[f"{p}_frame"][part], category=a[f"{p}_cls"][part], box=box,
                                 score=a["d_score"][part] if p == "d" else None,
                                 velocity=a[f"{p}_velocity"][part], attribute=a[f"{p}_attr"][part]))  # fmt: skip
        yield sides[0], sides[1], np.arange(i * CHUNK_FRAMES, min((i + 1) * CHUNK_FRAMES, frames))


def _warm() -> float:
    """Loads (or compiles) the kernels on a tiny set, so that the timing is the evaluation's."""
    from shoal.analysis import nuscenes

    t = time.perf_counter()
    a = data(60, seed=1)
    nuscenes.evaluate_chunks(_chunks(a, len(a["frames"])), list(range(len(NAMES))))
    for kind in ("bev_iou", "iou_3d"):
        nuscenes.iou_ap_chunks(_chunks(a, len(a["frames"])), list(range(len(NAMES))), nuscenes.IouParams(kind=kind))
    return round(time.perf_counter() - t, 2)


def shoal_side(path: str) -> dict:  # type: ignore[type-arg]
    from shoal.analysis import nuscenes

    warm = _warm()
    a = _load(path)
    loaded = _rss_mib()
    t = time.perf_counter()
    result = nuscenes.evaluate_chunks(_chunks(a, len(a["frames"])), list(range(len(NAMES))))
    return {"seconds": round(time.perf_counter() - t, 2), "peak_rss_mib": round(peak_rss_mib()),
            "rss_after_load_mib": round(loaded), "warm_up_seconds": warm,
            "stats": result.stats, "class_ap": {NAMES[k]: v["AP"] for k, v in result.per_class.items()}}  # fmt: skip


def shoal_iou_side(path: str, kind: str) -> dict:  # type: ignore[type-arg]
    from shoal.analysis import nuscenes

    _warm()
    a = _load(path)
    t = time.perf_counter()
    result = nuscenes.iou_ap_chunks(
        _chunks(a, len(a["frames"])), list(range(len(NAMES))), nuscenes.IouParams(kind=kind)
    )
    return {"seconds": round(time.perf_counter() - t, 2), "peak_rss_mib": round(peak_rss_mib()),
            "AP": result.stats["AP"], "AP@0.5": result.stats["AP@0.5"]}  # fmt: skip


def devkit_side(python: str, path: str, timeout: float) -> dict:  # type: ignore[type-arg]
    """The devkit's evaluation of the set in its venv, by tests/harness/nuscenes_devkit.py (a process of its own)."""
    answer = Path(path).with_suffix(".devkit.json")
    t = time.perf_counter()
    subprocess.run([python, str(DEVKIT_DRIVER), path, str(answer), "--no-curves"], check=True, timeout=timeout)
    wall = round(time.perf_counter() - t, 1)
    out = json.loads(answer.read_text())
    stats = {"mAP": out["mean_ap"], "NDS": out["nd_score"]} | {k: out["tp_errors"][v] for k, v in DEVKIT_STATS.items()}
    return {"seconds": round(out["build_seconds"] + out["eval_seconds"], 2), "build_seconds": out["build_seconds"],
            "eval_seconds": out["eval_seconds"], "process_seconds": wall, "peak_rss_mib": out["peak_rss_mib"],
            "rss_after_load_mib": out["rss_after_load_mib"],
            "stats": stats, "class_ap": out["mean_dist_aps"]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cuboids", type=int, nargs="+", default=[100_000, 1_000_000], help="labeled cuboids a run")
    ap.add_argument("--peer-max-cuboids", type=int, default=1_000_000, help="run the devkit only up to this size")
    ap.add_argument("--peer-timeout", type=float, default=3600, help="seconds the devkit may take a run")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "analysis_metrics" / "results_cuboids.json")
    args = ap.parse_args()
    from tests.harness import nuscenes_devkit

    python = nuscenes_devkit.ensure()
    if python is None:
        raise SystemExit("the devkit's venv is missing: run scripts/ensure-nuscenes-devkit.sh")
    results = results_header()
    results["devkit"] = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('nuscenes-devkit'))"],
                                       capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    for n in args.cuboids:
        work = Path(tempfile.mkdtemp(prefix="bench-cuboids-"))
        try:
            print(f"[{n}] generating ...", flush=True)
            t = time.perf_counter()
            a = data(n)
            path = str(work / "set.npz")
            np.savez(path, **a)
            loaded = {"generate_seconds": round(time.perf_counter() - t, 1), "frames": len(a["frames"]),
                      "labeled": len(a["g_frame"]), "predicted": len(a["d_frame"])}  # fmt: skip
            del a
            print(f"[{n}] {loaded}; Shoal ...", flush=True)
            shoal = run_child(MODULE, "shoal_side", path)
            print(f"[{n}] Shoal {shoal['seconds']} s; AP over BEV and 3-D IoU ...", flush=True)
            iou = {kind: run_child(MODULE, "shoal_iou_side", path, kind) for kind in ("bev_iou", "iou_3d")}
            print(f"[{n}] {json.dumps(iou)}; the devkit ...", flush=True)
            peer = devkit_side(str(python), path, args.peer_timeout) if n <= args.peer_max_cuboids else None
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if peer is not None:  # the same answers, or the timings mean nothing
            for name in STATS:
                assert abs(shoal["stats"][name] - peer["stats"][name]) <= 1e-6, (
                    name,
                    shoal["stats"][name],
                    peer["stats"][name],
                )
            for name, value in peer["class_ap"].items():
                assert abs(shoal["class_ap"][name] - value) <= 1e-6, (name, shoal["class_ap"][name], value)
        summary = {
            "load": loaded,
            "shoal": {k: v for k, v in shoal.items() if k not in ("stats", "class_ap")},
            "devkit": {k: v for k, v in peer.items() if k not in ("stats", "class_ap")} if peer else "not run",
            "shoal_iou_ap": iou,
            "stats": shoal["stats"],
        }
        results["runs"][str(n)] = summary
        print(f"[{n}] {json.dumps(summary)}", flush=True)
    write_results(args.out, results)


if __name__ == "__main__":
    main()
