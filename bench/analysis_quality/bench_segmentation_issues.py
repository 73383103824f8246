"""Semantic-segmentation label issues beside cleanlab's ``segmentation`` module on planted errors.

The data (fixed seed): N images of S x S pixels, K classes, 2 to 5 objects each (ellipses, rotated
rectangles, triangles of classes 1..K-1) over a background (class 0). The labels are the objects as an
annotator draws them: each outline off by about a pixel (centre, size, angle jittered), so every
image disagrees a little with the truth along its boundaries. The model sees the true objects:
blurred one-hot logits (sharpness drawn per image), smooth and pixel noise, and a quarter of the
objects confused with a neighbouring class (mostly still right, about 2 % of objects wrong: model
errors on correct labels). Errors are planted in a share of the images, a third of each kind:

- **swap**: an object's pixels given another foreground class;
- **erase**: an object's pixels given the background;
- **paint**: a new shape painted with a class the image does not show.

Three processes, so each peak memory is its own: a generator writes the arrays to .npy files; Shoal
reads them one image at a time (``segmentation_issues.find``, its two passes; the image read with a
file read, not a memory map, so the process holds one image); cleanlab loads them whole and runs
``segmentation.filter.find_label_issues`` and ``segmentation.rank.get_label_quality_scores``
(defaults: softmin, temperature 0.1, ``downsample=1``; ``n_jobs=1``, as Shoal uses one core).

Figures: per pixel, precision / recall / F1 of the flags against the planted pixels (label changed by
a planted error), for cleanlab and Shoal's two rules; per image, precision / recall / F1 of the image
flags against the planted images, and the AUROC of each image ranking (and the share of planted
images among as many lowest-ranked). cleanlab: flagged when any pixel is (its image level), ranked
by the soft minimum and by ``1 - flagged / pixels`` (its ``method="num_pixel_issues"``). Shoal, per
rule and outline tolerance r (0, 1, 2 pixels): flagged when a flagged pixel has its whole
(2r + 1) x (2r + 1) square flagged, ranked by how many do. Shoal's cleanlab rule is checked against
cleanlab's flags pixel for pixel, and thresholds from every 4th row and column against the full ones.

    python bench/analysis_quality/bench_segmentation_issues.py
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.harness import peak_rss_mib, results_header, run_child, write_results  # noqa: E402

MODULE = "bench.analysis_quality.bench_segmentation_issues"
KINDS = {1: "swap", 2: "erase", 3: "paint"}
RULES = ("cleanlab", "confident")
#: outline tolerances (pixels) measured for the image flags and rankings; 0 counts every flagged pixel
TOLERANCES = (0, 1, 2)


# ---------------------------------------------------------------------------------------------------
# data


def _shape(kind: int, cy: float, cx: float, r: float, aspect: float, angle: float, s: int) -> np.ndarray:
    """(s, s) bool: an ellipse (0), a rotated rectangle (1) or a triangle (2) of radius ``r``."""
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64) + 0.5
    cos, sin = np.cos(angle), np.sin(angle)
    u = (xx - cx) * cos + (yy - cy) * sin
    v = -(xx - cx) * sin + (yy - cy) * cos
    a, b = r * aspect, r / aspect
    if kind == 0:
        return (u / a) ** 2 + (v / b) ** 2 <= 1
    if kind == 1:
        return (np.abs(u) <= a) & (np.abs(v) <= b)
    inside = np.ones((s, s), bool)
    for k in range(3):  # an equilateral triangle (stretched by the aspect): three half-planes
        t = 2 * np.pi * k / 3
        inside &= (u / a) * np.cos(t) + (v / b) * np.sin(t) <= 0.5
    return inside


def _objects(rng: np.random.Generator, s: int, k: int) -> list[tuple[int, int, float, float, float, float, float]]:
    n = int(rng.integers(2, 6))
    return [(int(rng.integers(0, 3)), int(rng.integers(1, k)), rng.uniform(0.1, 0.9) * s, rng.uniform(0.1, 0.9) * s,
             rng.uniform(0.06, 0.2) * s, np.exp(rng.normal(0, 0.3)), rng.uniform(0, np.pi)) for _ in range(n)]  # fmt: skip


def _paint(objects: list, s: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    """Class map and object map (object index + 1, 0 for background) of objects painted in order."""
    cls = np.zeros((s, s), np.uint8)
    obj = np.zeros((s, s), np.int16)
    for i, (kind, c, cy, cx, r, aspect, angle) in enumerate(objects):
        m = _shape(kind, cy, cx, r, aspect, angle, s)
        cls[m] = c
        obj[m] = i + 1
    return cls, obj


def image(rng: np.random.Generator, s: int, k: int, plant: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels (s, s) uint8, probabilities (k, s, s) float32 and the planted pixels (s, s) bool of one image
    with error ``plant`` (0: none)."""
    from scipy.ndimage import gaussian_filter

    objects = _objects(rng, s, k)
    truth, truth_obj = _paint(objects, s)
    # the annotator's outlines: about a pixel off
    drawn = [(kind, c, cy + rng.normal(0, 0.7), cx + rng.normal(0, 0.7), r * (1 + rng.normal(0, 0.04)), aspect,
              angle + rng.normal(0, 0.03)) for kind, c, cy, cx, r, aspect, angle in objects]  # fmt: skip
    labels, obj = _paint(drawn, s)
    clean = labels.copy()
    if plant in (1, 2):
        visible = [i for i in range(len(objects)) if (obj == i + 1).sum() >= 0.002 * s * s]
        if visible:
            i = int(rng.choice(visible))
            c = objects[i][1]
            labels[obj == i + 1] = 0 if plant == 2 else int(rng.choice([j for j in range(1, k) if j != c]))
    elif plant == 3:
        absent = [j for j in range(1, k) if j not in set(np.unique(labels).tolist())] or list(range(1, k))
        c = int(rng.choice(absent))
        region = _shape(int(rng.integers(0, 3)), rng.uniform(0.15, 0.85) * s, rng.uniform(0.15, 0.85) * s,
                        rng.uniform(0.06, 0.16) * s, np.exp(rng.normal(0, 0.3)), rng.uniform(0, np.pi), s)  # fmt: skip
        labels[region] = c
    # the model: sharp (per image) blurred one-hot logits, smooth and pixel noise, some objects confused
    sharp = rng.uniform(4.0, 8.0)
    logits = np.stack([gaussian_filter((truth == j).astype(np.float64), 1.2) for j in range(k)]) * sharp
    for i, (_, c, *_rest) in enumerate(objects):
        if rng.random() < 0.25:
            other = (c % (k - 1)) + 1 if rng.random() < 0.7 else 0
            logits[other] += gaussian_filter((truth_obj == i + 1).astype(np.float64), 1.2) * sharp * rng.uniform(0, 1.1)
    smooth = np.stack([gaussian_filter(rng.normal(0, 1, (s, s)), 4) for _ in range(k)])
    logits += smooth / smooth.std() * 0.9 + rng.normal(0, 0.3, (k, s, s))
    logits -= logits.max(axis=0)
    p = np.exp(logits)
    p /= p.sum(axis=0)
    return labels, p.astype(np.float32), labels != clean


def generate(n: int, s: int, k: int, dtype: str, rate: float, seed: int, work: str) -> dict:  # type: ignore[type-arg]
    """Writes labels.npy (n, s, s), probs.npy (n, k, s, s) of ``dtype``, planted.npy (n, s, s) and kind.npy (n,)."""
    rng = np.random.default_rng(seed)
    kind = np.where(rng.random(n) < rate, rng.integers(1, 4, n), 0)
    out = Path(work)
    labels = np.lib.format.open_memmap(out / "labels.npy", "w+", np.uint8, (n, s, s))
    probs = np.lib.format.open_memmap(out / "probs.npy", "w+", np.dtype(dtype), (n, k, s, s))
    planted = np.lib.format.open_memmap(out / "planted.npy", "w+", bool, (n, s, s))
    for i in range(n):
        labels[i], probs[i], planted[i] = image(rng, s, k, int(kind[i]))
    kind[kind > 0] *= planted.reshape(n, -1)[kind > 0].any(axis=1)  # an erase with no object visible: none
    np.save(out / "kind.npy", kind)
    for a in (labels, probs, planted):
        a.flush()
    return {"images": n, "planted_images": int((kind > 0).sum()), "planted_pixels": int(planted.sum()),
            "probs_mib": round(probs.nbytes / 2**20)}  # fmt: skip


def images(work: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Each image's labels and probabilities, read from the files (one image in memory at a time)."""
    files = []
    for name in ("labels.npy", "probs.npy"):
        f = open(Path(work) / name, "rb")
        major, _ = np.lib.format.read_magic(f)
        header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, dtype = header(f)
        files.append((f, shape, np.dtype(dtype)))
    try:
        (lf, ls, ld), (pf, ps, pd) = files
        lb, pb = int(np.prod(ls[1:])) * ld.itemsize, int(np.prod(ps[1:])) * pd.itemsize
        for _ in range(ls[0]):
            yield (np.frombuffer(lf.read(lb), ld).reshape(ls[1:]), np.frombuffer(pf.read(pb), pd).reshape(ps[1:]))
    finally:
        for f, *_ in files:
            f.close()


# ---------------------------------------------------------------------------------------------------
# the two sides


def shoal_side(work: str, k: int) -> dict:  # type: ignore[type-arg]
    from itertools import islice

    from shoal.analysis import segmentation_issues as si

    # load the kernels (numba's disk cache, or compile) on two of the images first: the timing is of the run
    warm = si.find(lambda: islice(images(work), 2), classes=k)
    for rule in RULES:
        si.flag_image(warm.images[0], rule=rule, cutoff=warm.cutoff, tolerance=1)
    base = peak_rss_mib()
    out: dict = {"baseline_rss_mib": round(base)}  # type: ignore[type-arg]
    t = time.perf_counter()
    found = si.find(lambda: images(work), classes=k)
    out["cleanlab"] = {"seconds": round(time.perf_counter() - t, 2), "confident_pixels": found.confident_pixels,
                       "cutoff": found.cutoff}  # fmt: skip
    t = time.perf_counter()
    confident = si.find(lambda: images(work), classes=k, rule="confident")
    out["confident"] = {"seconds": round(time.perf_counter() - t, 2)}
    t = time.perf_counter()
    issues = {(rule, r): [si.flag_image(x, rule=rule, cutoff=found.cutoff, tolerance=r) for x in found.images]
              for rule in RULES for r in TOLERANCES}  # fmt: skip
    out["flag_again_seconds"] = round((time.perf_counter() - t) / len(issues), 3)
    out["peak_rss_mib"] = round(peak_rss_mib())
    # written after the memory is measured (a written memory map is resident)
    n, shape = len(found.issues), found.issues[0].shape
    for rule in RULES:
        masks = np.lib.format.open_memmap(Path(work) / f"shoal_{rule}.npy", "w+", bool, (n, *shape))
        for i, f in enumerate(issues[rule, 0]):
            masks[i] = f.mask()
        masks.flush()
        del masks
    np.save(Path(work) / "shoal_core.npy", np.array([[[f.core for f in issues[rule, r]] for r in TOLERANCES]
                                                      for rule in RULES]))  # fmt: skip
    np.save(Path(work) / "shoal_scores.npy", found.scores)
    assert all(
        a.pixels.tolist() == b.pixels.tolist() for a, b in zip(confident.issues, issues["confident", 0], strict=True)
    )
    # thresholds from every 4th row and column: how far they and the flags move
    strided = si.find(lambda: images(work), classes=k, stride=4)
    moved = sum(int((a.mask() != b.mask()).sum()) for a, b in zip(found.issues, strided.issues, strict=True))
    out["stride_4"] = {"threshold_max_diff": round(float(np.abs(found.thresholds - strided.thresholds).max()), 6),
                       "pixels_flagged_differently": moved, "pixels_flagged": sum(f.flagged for f in found.issues)}  # fmt: skip
    return out


def cleanlab_side(work: str) -> dict:  # type: ignore[type-arg]
    import warnings

    from cleanlab.segmentation.filter import find_label_issues
    from cleanlab.segmentation.rank import get_label_quality_scores

    base = peak_rss_mib()
    labels = np.load(Path(work) / "labels.npy")
    probs = np.load(Path(work) / "probs.npy")
    loaded = peak_rss_mib()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        flags = find_label_issues(labels, probs, n_jobs=1, verbose=False)
        flag_seconds = time.perf_counter() - t
        t = time.perf_counter()
        scores, _ = get_label_quality_scores(labels, probs, n_jobs=1, verbose=False)
        score_seconds = time.perf_counter() - t
    rss = peak_rss_mib()
    np.save(Path(work) / "cleanlab_flags.npy", flags)
    np.save(Path(work) / "cleanlab_scores.npy", scores)
    return {"seconds": round(flag_seconds + score_seconds, 2), "find_label_issues_seconds": round(flag_seconds, 2),
            "get_label_quality_scores_seconds": round(score_seconds, 2), "peak_rss_mib": round(rss),
            "baseline_rss_mib": round(base), "rss_with_arrays_mib": round(loaded)}  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# figures


def prf(found: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    tp = int(np.count_nonzero(found & truth))
    f, t = int(np.count_nonzero(found)), int(np.count_nonzero(truth))
    p = tp / f if f else 0.0
    r = tp / t if t else 0.0
    return {"flagged": f, "precision": round(p, 4), "recall": round(r, 4),
            "f1": round(2 * p * r / (p + r), 4) if tp else 0.0}  # fmt: skip


def image_figures(found: np.ndarray, kind: np.ndarray, score: np.ndarray) -> dict:  # type: ignore[type-arg]
    """Images flagged (``found``) against the planted ones, and the ranking by ``score`` (low = likely
    wrong): AUROC, and the share of planted images among as many lowest-scoring ones."""
    from sklearn.metrics import roc_auc_score

    truth = kind > 0
    top = np.argsort(score, kind="stable")[: int(truth.sum())]
    return {**prf(found, truth),
            "recall_per_kind": {name: round(float(found[kind == c].mean()), 4) for c, name in KINDS.items()},
            "auroc": round(float(roc_auc_score(truth, -score)), 4),
            "precision_at_planted": round(float(truth[top].mean()), 4)}  # fmt: skip


def figures(work: Path, shoal: dict, peer: dict) -> dict:  # type: ignore[type-arg]
    kind = np.load(work / "kind.npy")
    planted = np.load(work / "planted.npy")
    pixels = float(planted[0].size)
    cl_flags = np.load(work / "cleanlab_flags.npy")
    cl_scores = np.load(work / "cleanlab_scores.npy")
    sh_scores = np.load(work / "shoal_scores.npy")
    core = np.load(work / "shoal_core.npy")  # (rule, tolerance, image)
    cl_count = cl_flags.reshape(len(cl_flags), -1).sum(axis=1)
    out: dict = {  # type: ignore[type-arg]
        "cleanlab": {**peer, "pixels": prf(cl_flags, planted)},
        "agreement": {
            "pixels_flagged_differently": int((np.load(work / "shoal_cleanlab.npy") != cl_flags).sum()),
            "image_score_max_diff": float(np.abs(sh_scores - cl_scores).max()),
        },
        "images": {
            "cleanlab softmin": image_figures(cl_count > 0, kind, cl_scores),
            "cleanlab flagged share": image_figures(cl_count > 0, kind, 1 - cl_count / pixels),
            "shoal softmin": image_figures(cl_count > 0, kind, sh_scores),
        },
        "stride_4": shoal["stride_4"],
    }
    out["shoal"] = {key: shoal[key] for key in ("peak_rss_mib", "baseline_rss_mib", "flag_again_seconds")}
    for rule in RULES:
        out["shoal"][rule] = {**shoal[rule], "pixels": prf(np.load(work / f"shoal_{rule}.npy"), planted)}
    for i, rule in enumerate(RULES):
        for j, r in enumerate(TOLERANCES):
            out["images"][f"shoal {rule}, tolerance {r}"] = image_figures(core[i, j] > 0, kind, 1 - core[i, j] / pixels)
    return out


def table(runs: dict) -> str:  # type: ignore[type-arg]
    rows = []
    for name, run in runs.items():
        rows += [f"{name}: {run['data']['planted_images']} images and {run['data']['planted_pixels']:,} pixels planted",
                 "", "| method | pixel P / R / F1 | flagged pixels | time | peak RSS |", "| --- | --- | ---: | ---: | ---: |"]  # fmt: skip
        for label, m in (("cleanlab", run["cleanlab"]), *((f"shoal {r}", run["shoal"][r]) for r in RULES)):
            px = m["pixels"]
            rss = m.get("peak_rss_mib", run["shoal"]["peak_rss_mib"])
            rows.append(f"| {label} | {px['precision']:.3f} / {px['recall']:.3f} / {px['f1']:.3f} | {px['flagged']:,} |"
                        f" {m['seconds']:.2f} s | {rss:,} MiB |")  # fmt: skip
        rows += ["", "| image ranking / flag | image P / R / F1 | flagged images | AUROC | P@planted |",
                 "| --- | --- | ---: | ---: | ---: |"]  # fmt: skip
        for label, m in run["images"].items():
            rows.append(f"| {label} | {m['precision']:.3f} / {m['recall']:.3f} / {m['f1']:.3f} | {m['flagged']} |"
                        f" {m['auroc']:.4f} | {m['precision_at_planted']:.3f} |")  # fmt: skip
        rows.append("")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", default=["1000:128:6:float32", "300:256:8:float16"],
                    help="images:size:classes:dtype of each dataset")  # fmt: skip
    ap.add_argument("--rate", type=float, default=0.15, help="share of images with a planted error")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--out", type=Path, default=REPO / "bench" / "analysis_quality" / "results_segmentation_issues.json"
    )
    args = ap.parse_args()
    results = results_header()
    for spec in args.runs:
        n, size, k, dtype = spec.split(":")
        name = f"{n} images of {size} x {size}, {k} classes, {dtype}"
        work = Path(tempfile.mkdtemp(prefix="bench-segmentation-issues-"))
        try:
            t = time.perf_counter()
            data = run_child(MODULE, "generate", int(n), int(size), int(k), dtype, args.rate, args.seed, str(work))
            data["seconds"] = round(time.perf_counter() - t, 1)
            print(f"[{name}] data: {data}", flush=True)
            shoal = run_child(MODULE, "shoal_side", str(work), int(k))
            print(f"[{name}] shoal: {shoal}", flush=True)
            peer = run_child(MODULE, "cleanlab_side", str(work))
            print(f"[{name}] cleanlab: {peer}", flush=True)
            results["runs"][name] = {"data": data, **figures(work, shoal, peer)}
        finally:
            shutil.rmtree(work, ignore_errors=True)
    write_results(args.out, results)
    print(table(results["runs"]))


if __name__ == "__main__":
    main()
