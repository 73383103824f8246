"""The nuScenes devkit's detection metrics on boxes given as arrays, run in the devkit's own venv.

nuscenes-devkit 1.2 requires numpy<2, so it lives in ``.cache/nuscenes-devkit-venv`` (made by
``scripts/ensure-nuscenes-devkit.sh``), away from the project's venv. :func:`run` writes the boxes to an
``.npz`` file and runs this file with that venv's Python; there :func:`devkit_metrics` builds the devkit's
``EvalBoxes`` of ``DetectionBox`` in memory (no dataset, no result file) and runs ``DetectionEval.evaluate``,
the devkit's own loop over ``accumulate``, ``calc_ap`` and ``calc_tp`` with its class exceptions, and
``DetectionMetrics`` for mAP, the mTP errors and NDS. The object that runs ``evaluate`` is made without its
constructor, which would load a dataset and a result file and filter them (the filters are the caller's).

The arrays (``frames`` in order; per side ``g_`` / ``d_``: ``frame``, ``cls`` (index into ``class_names``),
``translation`` (N, 3), ``size`` (N, 3) w, l, h, ``rotation`` (N, 4) w, x, y, z, ``velocity`` (N, 2),
``attr`` (index into ``attribute_names``, -1 for none), and ``d_score``) are nuScenes' own fields. Every frame
is added to both sides in ``frames`` order, empty or not: the order the devkit breaks score ties by.

This module needs only the standard library and numpy, so that both venvs can import it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def ensure(install: bool = True) -> Path | None:
    """The devkit venv's Python: installed by the script when ``install`` and missing or stale (about a minute,
    from PyPI); None when it is not there and cannot be made."""
    from tests.harness import reference_venv  # here: this module also runs as a script in the reference's venv

    return reference_venv.ensure("ensure-nuscenes-devkit.sh", "nuscenes-devkit-venv", install=install)


def run(arrays: dict[str, Any], *, python: Path, curves: bool = True, timeout: float = 3600) -> dict[str, Any]:
    """:func:`devkit_metrics` of ``arrays`` in the devkit venv (``python``), in a process of its own."""
    with tempfile.TemporaryDirectory(prefix="nuscenes-devkit-") as work:
        source, answer = Path(work) / "in.npz", Path(work) / "out.json"
        np.savez(source, **{k: np.asarray(v) for k, v in arrays.items()})
        cmd = [str(python), str(Path(__file__).resolve()), str(source), str(answer)] + (
            [] if curves else ["--no-curves"]
        )
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the devkit failed ({done.returncode}):\n{done.stderr[-5000:]}")
        return json.loads(answer.read_text())


def _boxes(a: dict[str, np.ndarray], side: str, tokens: list[str], names: list[str], attributes: list[str]) -> Any:
    from nuscenes.eval.common.data_classes import EvalBoxes
    from nuscenes.eval.detection.data_classes import DetectionBox

    boxes = EvalBoxes()
    per_frame: dict[str, list[Any]] = {t: [] for t in tokens}
    frame_token = dict(zip(a["frames"].tolist(), tokens, strict=True))
    score = a["d_score"].tolist() if side == "d" else None
    columns = zip(
        a[f"{side}_frame"].tolist(), a[f"{side}_cls"].tolist(), a[f"{side}_translation"].tolist(),
        a[f"{side}_size"].tolist(), a[f"{side}_rotation"].tolist(), a[f"{side}_velocity"].tolist(),
        a[f"{side}_attr"].tolist(), strict=True,
    )  # fmt: skip
    for i, (frame, cls, translation, size, rotation, velocity, attr) in enumerate(columns):
        token = frame_token[frame]
        per_frame[token].append(
            DetectionBox(
                sample_token=token, translation=tuple(translation), size=tuple(size), rotation=tuple(rotation),
                velocity=tuple(velocity), detection_name=names[cls],
                detection_score=float(score[i]) if score is not None else -1.0,
                attribute_name=attributes[attr] if attr >= 0 else "",
            )
        )  # fmt: skip
    for token in tokens:  # every frame, in order, empty or not
        boxes.add_boxes(token, per_frame[token])
    return boxes


def devkit_metrics(a: dict[str, np.ndarray], curves: bool = True) -> dict[str, Any]:
    """The devkit's metrics of the boxes in ``a`` (in the devkit venv)."""
    from nuscenes.eval.common.config import config_factory
    from nuscenes.eval.detection.constants import TP_METRICS
    from nuscenes.eval.detection.evaluate import DetectionEval

    cfg = config_factory("detection_cvpr_2019")
    for key in ("dist_ths", "dist_th_tp", "min_recall", "min_precision"):
        if key in a:
            value = a[key]
            setattr(cfg, key, value.tolist() if value.ndim else float(value))
    names = a["class_names"].tolist()
    if list(cfg.class_names) != names:
        raise ValueError(f"classes {names} must be the devkit's, in its order: {list(cfg.class_names)}")
    attributes = a["attribute_names"].tolist()
    tokens = [f"sample-{int(f)}" for f in a["frames"].tolist()]
    started = time.perf_counter()
    gt = _boxes(a, "g", tokens, names, attributes)
    pred = _boxes(a, "d", tokens, names, attributes)
    built = time.perf_counter()
    ev = DetectionEval.__new__(DetectionEval)  # no dataset to load: the boxes are given
    ev.cfg, ev.gt_boxes, ev.pred_boxes, ev.verbose, ev.sample_tokens = cfg, gt, pred, False, tokens
    metrics, data = ev.evaluate()
    done = time.perf_counter()
    out = {k: v for k, v in metrics.serialize().items() if k not in ("cfg", "eval_time")}
    out["build_seconds"] = round(built - started, 2)
    out["eval_seconds"] = round(done - built, 2)
    if curves:
        out["curves"] = {
            f"{name}:{th}": {key: getattr(data[(name, th)], key).tolist()
                             for key in ("precision", "confidence", *TP_METRICS)}
            for name in names for th in cfg.dist_ths
        }  # fmt: skip
    return out


def _rss_mib(field: str) -> float:
    """This process's resident memory now (``VmRSS``) or at its peak (``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str]) -> None:
    source, answer = argv[0], argv[1]
    with np.load(source) as f:
        a = {k: f[k] for k in f.files}
    loaded = _rss_mib("VmRSS")
    out = devkit_metrics(a, curves="--no-curves" not in argv)
    out["rss_after_load_mib"] = round(loaded)
    out["peak_rss_mib"] = round(_rss_mib("VmHWM"))
    Path(answer).write_text(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
