"""The demo dataset: scikit-learn's bundled digits (1,797 8x8 images, 10 classes), a model's
out-of-fold predictions and embeddings, a known set of flipped labels, and a known set of planted
outliers (8x8 images that are not digits).

Everything is computed here from data that ships with scikit-learn: nothing is downloaded.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: what the planted outliers are, in turn: sparse random noise, stripes at a random angle and
#: period, checkerboards, digits with their intensities inverted, and soft blobs
OUTLIER_KINDS = ("noise", "stripes", "checkerboard", "inverted", "blob")


@dataclass
class Planted:
    """Images that are not digits, added to the dataset unlabeled and without predictions."""

    frame_ids: list[str]
    kinds: list[str]  # one of OUTLIER_KINDS each
    images: np.ndarray  # (M, 8, 8) uint8
    embeddings: np.ndarray  # (M, D) in the same hidden layer as the digits' embeddings
    splits: list[str]
    media_uris: list[str]


@dataclass
class Digits:
    frame_ids: list[str]
    images: np.ndarray  # (N, 8, 8) uint8
    true_labels: np.ndarray  # (N,)
    given_labels: np.ndarray  # (N,) with the flips
    flipped: np.ndarray  # (N,) bool
    probabilities: np.ndarray  # (N, 10) out-of-fold, from a model trained on the given labels
    embeddings: np.ndarray  # (N, D) hidden-layer activations of that model
    splits: list[str]
    media_uris: list[str]
    planted: Planted


def pixels(images: np.ndarray) -> np.ndarray:
    """(N, 8, 8) uint8 images as (N, 64) float32 vectors in [0, 1]: the "pixels" embedding space."""
    return (images.reshape(len(images), -1) / 255.0).astype(np.float32)


def plant_outliers(count: int, *, seed: int = 1) -> tuple[np.ndarray, list[str]]:
    """``count`` 8x8 uint8 images that are not digits, of the kinds in :data:`OUTLIER_KINDS` in
    turn, each drawn with its own random parameters (so no two are alike): returns (images, kinds).
    The inverted digits invert randomly chosen scikit-learn digits."""
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    source = load_digits().images
    yy, xx = np.mgrid[0:8, 0:8].astype(np.float64)
    images, kinds = [], []
    for i in range(count):
        kind = OUTLIER_KINDS[i % len(OUTLIER_KINDS)]
        if kind == "noise":  # uniform intensities on a random share (30-90 %) of the pixels
            img = rng.uniform(0, 16, (8, 8)) * (rng.random((8, 8)) < rng.uniform(0.3, 0.9))
            img[rng.integers(8), rng.integers(8)] = 16  # never blank
        elif kind == "stripes":
            angle, period, phase = rng.uniform(0, np.pi), rng.uniform(2, 5), rng.uniform(0, 2 * np.pi)
            img = 8 + 8 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period + phase)
        elif kind == "checkerboard":
            size = int(rng.integers(1, 3))  # cells of 1 or 2 pixels, each of its own intensity
            img = 16.0 * ((xx // size + yy // size) % 2 == rng.integers(0, 2)) * rng.uniform(0.4, 1.0, (8, 8))
        elif kind == "inverted":
            img = 16.0 - source[rng.integers(len(source))]
        else:  # a Gaussian blob at a random place and width
            cx, cy, width = rng.uniform(0, 7), rng.uniform(0, 7), rng.uniform(1, 3)
            img = 16 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * width**2))
        images.append((np.clip(img, 0, 16) * (255.0 / 16.0)).round().astype(np.uint8))
        kinds.append(kind)
    return np.asarray(images, dtype=np.uint8).reshape(count, 8, 8), kinds


def write_png(path: Path, image: np.ndarray) -> None:
    """An 8-bit grayscale PNG, without an imaging library."""
    h, w = image.shape
    raw = b"".join(b"\x00" + image[y].astype(np.uint8).tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    path.write_bytes(png)


def build_digits(
    media_dir: Path, *, flip_fraction: float = 0.1, seed: int = 0, hidden: int = 32, outliers: int = 40
) -> Digits:
    """The digits with ``flip_fraction`` of their labels flipped, a network's out-of-fold
    probabilities and hidden-layer embeddings, and ``outliers`` planted non-digit images embedded
    by the same networks (the j-th by the j-th fold's network, in turn). Images are written as PNGs
    under ``media_dir``."""
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    data = load_digits()
    x = data.data.astype(np.float64)
    y = data.target.astype(np.int64)
    n = len(y)
    rng = np.random.default_rng(seed)
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, size=round(flip_fraction * n), replace=False)] = True
    given = y.copy()
    given[flipped] = (y[flipped] + rng.integers(1, 10, size=flipped.sum())) % 10

    planted_images, kinds = plant_outliers(outliers, seed=seed + 1)
    xp = planted_images.reshape(outliers, -1) * (16.0 / 255.0)  # the scale of load_digits().data
    probs = np.zeros((n, 10))
    emb = np.zeros((n, hidden), dtype=np.float32)
    planted_emb = np.zeros((outliers, hidden), dtype=np.float32)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    for fold, (train, test) in enumerate(folds.split(x, given)):
        scaler = StandardScaler().fit(x[train])
        # strong L2 keeps the network from memorising the flipped labels
        model = MLPClassifier(hidden_layer_sizes=(hidden,), alpha=1.0, max_iter=400, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(scaler.transform(x[train]), given[train])
        xt = scaler.transform(x[test])
        probs[test] = model.predict_proba(xt)
        emb[test] = np.maximum(xt @ model.coefs_[0] + model.intercepts_[0], 0.0)
        mine = np.arange(outliers) % folds.n_splits == fold
        planted_emb[mine] = np.maximum(scaler.transform(xp[mine]) @ model.coefs_[0] + model.intercepts_[0], 0.0)
    probs = probs / probs.sum(axis=1, keepdims=True)

    media_dir.mkdir(parents=True, exist_ok=True)
    images = (data.images * (255.0 / 16.0)).round().astype(np.uint8)
    ids, uris = _write_images(media_dir, "digit", images)
    splits = ["test" if i % 5 == 0 else "train" for i in range(n)]
    planted_ids, planted_uris = _write_images(media_dir, "planted", planted_images)
    planted = Planted(
        planted_ids,
        kinds,
        planted_images,
        planted_emb,
        ["test" if i % 5 == 0 else "train" for i in range(outliers)],
        planted_uris,
    )
    return Digits(ids, images, y, given, flipped, probs.astype(np.float32), emb, splits, uris, planted)


def _write_images(media_dir: Path, prefix: str, images: np.ndarray) -> tuple[list[str], list[str]]:
    """Writes each image as ``<prefix>-<i>.png`` (unless there already) and returns the frame ids
    and file URIs."""
    ids, uris = [], []
    for i, image in enumerate(images):
        fid = f"{prefix}-{i:04d}"
        path = media_dir / f"{fid}.png"
        if not path.exists():
            write_png(path, image)
        ids.append(fid)
        uris.append(path.resolve().as_uri())
    return ids, uris


@dataclass
class Pool:
    """Unlabeled frames for the sampler to choose from: noisy redraws of the digits of the test
    split, with their true labels kept aside and the probabilities of a model trained on the train
    split (the model a user would run over an unlabeled pool)."""

    frame_ids: list[str]
    images: np.ndarray  # (M, 8, 8) uint8
    true_labels: np.ndarray  # (M,)
    probabilities: np.ndarray  # (M, 10)
    sources: list[str]  # the digit frame each was redrawn from
    media_uris: list[str]
    model: Any = None  # the classifier that gave the probabilities


def build_pool(
    media_dir: Path,
    digits: Digits,
    *,
    copies: int = 3,
    seed: int = 2,
    hidden: int = 32,
    prefix: str = "pool",
    model: Any = None,
) -> Pool:
    """``copies`` redraws of every test-split digit, each with its own ink gain (0.8 to 1.2) and
    Gaussian noise (standard deviation 40 of 255) on its intensities, and the probabilities of a
    network trained on the train split's given labels (``model``, when given, is such a network
    trained before, e.g. another pool's). The seeds of the demo's campaign come from the train
    split, so no pool frame is redrawn from a seed. Frame ids read ``<prefix>-<i>``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(seed)
    splits = np.asarray(digits.splits)
    test, train = np.flatnonzero(splits == "test"), np.flatnonzero(splits == "train")
    source = digits.images[test].astype(np.float64)
    images = np.concatenate([
        np.clip(source * rng.uniform(0.8, 1.2, (len(test), 1, 1)) + rng.normal(0, 40, source.shape), 0, 255)
        for _ in range(copies)
    ]).round().astype(np.uint8)  # fmt: skip
    # raw intensities, not standardised: the border pixels are almost always 0 in training, and
    # standardising would blow the pool's noise there up
    if model is None:
        model = MLPClassifier(hidden_layer_sizes=(hidden,), alpha=1.0, max_iter=400, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(pixels(digits.images[train]), digits.given_labels[train])
    probs = model.predict_proba(pixels(images))
    media_dir.mkdir(parents=True, exist_ok=True)
    ids, uris = _write_images(media_dir, prefix, images)
    return Pool(
        ids,
        images,
        np.tile(digits.true_labels[test], copies),
        probs.astype(np.float32),
        [digits.frame_ids[i] for i in test] * copies,
        uris,
        model,
    )
