"""The demo dataset: scikit-learn's bundled digits (1,797 8x8 images, 10 classes), a model's
out-of-fold predictions and embeddings, and a known set of flipped labels.

Everything is computed here from data that ships with scikit-learn: nothing is downloaded.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np


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


def write_png(path: Path, image: np.ndarray) -> None:
    """An 8-bit grayscale PNG, without an imaging library."""
    h, w = image.shape
    raw = b"".join(b"\x00" + image[y].astype(np.uint8).tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    path.write_bytes(png)


def build_digits(media_dir: Path, *, flip_fraction: float = 0.1, seed: int = 0, hidden: int = 32) -> Digits:
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

    probs = np.zeros((n, 10))
    emb = np.zeros((n, hidden), dtype=np.float32)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    for train, test in folds.split(x, given):
        scaler = StandardScaler().fit(x[train])
        # strong L2 keeps the network from memorising the flipped labels
        model = MLPClassifier(hidden_layer_sizes=(hidden,), alpha=1.0, max_iter=400, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(scaler.transform(x[train]), given[train])
        xt = scaler.transform(x[test])
        probs[test] = model.predict_proba(xt)
        emb[test] = np.maximum(xt @ model.coefs_[0] + model.intercepts_[0], 0.0)
    probs = probs / probs.sum(axis=1, keepdims=True)

    media_dir.mkdir(parents=True, exist_ok=True)
    images = (data.images * (255.0 / 16.0)).round().astype(np.uint8)
    ids, uris = [], []
    for i in range(n):
        fid = f"digit-{i:04d}"
        path = media_dir / f"{fid}.png"
        if not path.exists():
            write_png(path, images[i])
        ids.append(fid)
        uris.append(path.resolve().as_uri())
    splits = ["test" if i % 5 == 0 else "train" for i in range(n)]
    return Digits(ids, images, y, given, flipped, probs.astype(np.float32), emb, splits, uris)
