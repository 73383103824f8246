"""Label issues in semantic segmentation: the labeled pixels a model's per-pixel class probabilities
contradict, and the images that hold them, computed image by image so that a dataset's masks and
probabilities are never in memory together.

Vocabulary: N images, K classes; an image's ``labels`` (H, W) give each pixel a class in ``0..K-1``,
or a value that leaves it unlabeled (``ignore``, 65535 by default, and any value outside ``0..K-1``):
unlabeled pixels are skipped everywhere (thresholds, counts, scores, flags). Its ``probs`` (K, H, W)
are the model's softmax. A pixel's **self-confidence** ``s = probs[label]`` is its label quality:
low means the label is likely wrong.

This is confident learning as ``cleanlab.segmentation`` (2.9) does it, in two passes over the images:

1. :class:`ThresholdFit`: each class's threshold ``t_k``, the mean self-confidence of the pixels
   labeled ``k`` (a sum and a count per class: any batching gives the same thresholds, up to rounding).
2. :func:`score_image`, per image: the self-confidence map, the image's score (cleanlab's default
   ``softmin``, ``sum_i s_i * softmax((1 - s) / T)_i`` over its labeled pixels, ``T = 0.1``: a soft
   minimum that a small region of low self-confidence pulls down), and the pixels whose likeliest
   class ``j`` is not their label. Such a pixel is *confidently* class ``j`` when ``p_j`` reaches
   ``t_j`` (less cleanlab's 1e-6): the number E of those in the dataset is confident learning's
   estimate of how many pixels are mislabeled (:class:`IssueCutoff` adds it up).

Which pixels are issues then follows one of two rules (:func:`flag_image`):

- ``"cleanlab"`` (``cleanlab.segmentation.filter.find_label_issues``'s answer, the tested baseline):
  the E pixels of the dataset with the lowest self-confidence, less those whose likeliest class is
  their label. Which E depends on every image, so pass 2 ends with the self-confidence of the E-th
  lowest (:meth:`IssueCutoff.cutoff`) and an image's issues are its contradicted pixels at or below
  it. These are kept from pass 2 (a few bytes each), so no third read is needed, and the cutoff is
  exact while holding only the pixels that can be below it: the E-th lowest is at most the E-th
  lowest of the contradicted pixels (there are at least E of them), whose self-confidence is at most
  1/2 (another class is at least as likely); so every pixel the model does not contradict can be
  dropped unless its self-confidence is at most about 1/2 (:data:`UNSURE`).
- ``"confident"``: the E pixels themselves, each judged by its own probabilities: final after pass 2,
  and it never flags a pixel only because the model is unsure of it. Its suggested class is the
  likeliest, as for the other rule.

An image is an issue when it has at least ``min_pixels`` flagged pixels: with 1, what cleanlab offers
at image level (``segmentation.summary.display_issues`` shows the images with a flagged pixel, most
flagged first; ``rank.get_label_quality_scores(method="num_pixel_issues")`` scores an image
``1 - flagged / pixels``). But every image has a few flagged pixels where its outlines are drawn a
pixel or two off the model's, so on real masks that flags nearly every image. ``tolerance`` counts
only the flagged pixels with more than nine tenths of the square of side ``2 * tolerance + 1`` around
them flagged: a sliver along an outline up to ``tolerance`` pixels thick vanishes, a wrong object or
painted region does not, even where the model's noise leaves a few holes in its flags. The count
(:attr:`ImageIssues.core`) also ranks images: ``bench/analysis_quality/bench_segmentation_issues.py``
measures it beside the soft minimum and cleanlab's flagged share.

Where this differs from cleanlab, on purpose or where cleanlab has no answer:

- Unlabeled pixels: cleanlab has none (every pixel must hold a class).
- Ties at the cutoff: cleanlab keeps the first E of an unstable sort; here every pixel tied with the
  E-th is flagged (equal evidence, equal answer). With float32 probabilities ties are rare; with
  float16 ones they are common, and cleanlab's pick among them is arbitrary.
- Thresholds are means in float64; cleanlab averages each batch in the probabilities' dtype, so its
  thresholds differ by about 1e-7, which can move a pixel at its class's threshold in or out of E.
- A class no pixel is labeled with gets threshold 2e-6, as cleanlab's batched path gives it (its
  in-memory ``count.get_confident_thresholds`` gives 2, "never"): every pixel the model calls that
  class is confidently it.
- ``stride`` subsamples the pixels for the thresholds only (every ``stride``-th row and column: each
  class mean estimated from ``1 / stride**2`` of its pixels); scoring is always at full resolution.
  cleanlab's ``downsample`` averages the probabilities *and the class ids* over blocks (rounded:
  classes 1 and 3 average to class 2), flags whole blocks and then unflags the pixels whose likeliest
  class is their label, so it is not offered.
- ``rank.issues_from_scores(image_scores, threshold=t)`` returns one image more than those scoring
  below ``t`` (its ``ranking[:cutoff + 1]``); use ``score < t`` here.

Probabilities may be float16 (read through a table, not copied to float32), float32, or float64
(rounded to float32 first). The per-pixel loops are compiled with numba: a 512 x 512 image of 8
classes is scored in a few milliseconds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

import numba
import numpy as np
from numba.core import types
from numba.extending import overload

__all__ = [
    "FUZZ",
    "IGNORE",
    "LOWEST_THRESHOLD",
    "TEMPERATURE",
    "UNSURE",
    "Found",
    "ImageIssues",
    "ImageScores",
    "IssueCutoff",
    "ThresholdFit",
    "find",
    "flag_image",
    "score_image",
]

#: the label value of an unlabeled pixel (any value outside 0..K-1 is unlabeled too)
IGNORE = 65535
#: the soft minimum's temperature (cleanlab's default): lower tends to the minimum, higher to the mean
TEMPERATURE = 0.1
#: a probability this close below a threshold reaches it (cleanlab's FLOATING_POINT_COMPARISON)
FUZZ = 1e-6
#: thresholds are at least this (cleanlab's CONFIDENT_THRESHOLDS_LOWER_BOUND)
LOWEST_THRESHOLD = 2e-6
#: uncontradicted pixels with a self-confidence up to this are kept for the cutoff: a contradicted
#: pixel's is at most half its probabilities' sum, which is 1 up to rounding (float16 rounds each
#: probability by at most 2**-11 of itself); the margin takes softmaxes a little off 1 too
UNSURE = 0.5 + 2**-6

Rule = Literal["cleanlab", "confident"]


# ---------------------------------------------------------------------------------------------------
# probabilities of any float dtype, read in the kernels


def _load(probs: np.ndarray, half: np.ndarray, c: int, y: int, x: int) -> float:  # pragma: no cover
    """``probs[c, y, x]`` as a float: numba has no float16, so half-precision probabilities come as
    their uint16 bit patterns and are read through ``half``, the float32 of every pattern."""
    raise NotImplementedError("called only from compiled code")


@overload(_load, jit_options={"cache": True})
def _load_typed(probs, half, c, y, x):  # type: ignore[no-untyped-def]
    if probs.dtype == types.uint16:
        return lambda probs, half, c, y, x: half[probs[c, y, x]]
    return lambda probs, half, c, y, x: probs[c, y, x]


@functools.cache
def _half_table() -> np.ndarray:
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)


_NO_TABLE = np.zeros(1, np.float32)


def _probs(probs: np.ndarray, classes: int | None, name: str = "probs") -> tuple[np.ndarray, np.ndarray]:
    """The (K, H, W) probabilities as the kernels read them, and their table."""
    p = np.asarray(probs)
    if p.ndim != 3:
        raise ValueError(f"{name} must be (K, H, W), one softmax per pixel; got shape {p.shape}")
    if classes is not None and p.shape[0] != classes:
        raise ValueError(f"{name} holds {p.shape[0]} classes, the fit {classes}: score with the fit's classes")
    if p.dtype == np.float16:
        return np.ascontiguousarray(p).view(np.uint16), _half_table()
    if p.dtype == np.float32:
        return np.ascontiguousarray(p), _NO_TABLE
    if np.issubdtype(p.dtype, np.floating):
        return np.ascontiguousarray(p, dtype=np.float32), _NO_TABLE
    raise ValueError(f"{name} must be float16, float32 or float64 probabilities, not {p.dtype}")


def _labels(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    y = np.asarray(labels)
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be an integer class map (uint8, uint16, int32...), not {y.dtype}")
    if y.shape != shape:
        raise ValueError(f"labels have shape {y.shape}, the probabilities' pixels {shape}: one label per pixel")
    return np.ascontiguousarray(y)


# ---------------------------------------------------------------------------------------------------
# pass 1: thresholds


@numba.njit(cache=True, nogil=True)
def _fit(labels, probs, half, ignore, stride, sums, counts):  # type: ignore[no-untyped-def]
    k, h, w = probs.shape
    for y in range(0, h, stride):
        for x in range(0, w, stride):
            c = np.int64(labels[y, x])
            if c < 0 or c >= k or c == ignore:
                continue
            sums[c] += _load(probs, half, c, y, x)
            counts[c] += 1


@dataclass
class ThresholdFit:
    """Pass 1: per class, the sum and count of the self-confidence of the pixels labeled with it.

    ``add`` takes an image, ``labels`` (H, W) and ``probs`` (K, H, W), or a batch of them, (N, H, W)
    and (N, K, H, W), in any order and any batching: the thresholds depend only on which pixels were
    added (up to float64 rounding). ``stride`` reads every ``stride``-th row and column only."""

    classes: int
    ignore: int = IGNORE
    stride: int = 1
    sums: np.ndarray = field(init=False, repr=False)
    counts: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.classes < 1:
            raise ValueError(f"classes must be at least 1, got {self.classes}")
        if self.stride < 1:
            raise ValueError(f"stride must be at least 1 (1 reads every pixel), got {self.stride}")
        self.sums = np.zeros(self.classes, np.float64)
        self.counts = np.zeros(self.classes, np.int64)

    def add(self, *, labels: np.ndarray, probs: np.ndarray) -> None:
        p = np.asarray(probs)
        if p.ndim == 4:
            for i in range(p.shape[0]):
                self.add(labels=labels[i], probs=p[i])
            return
        p, half = _probs(p, self.classes)
        _fit(_labels(labels, p.shape[1:]), p, half, int(self.ignore), int(self.stride), self.sums, self.counts)

    def thresholds(self) -> np.ndarray:
        """(K,) float64: each class's mean self-confidence (:data:`LOWEST_THRESHOLD` for a class no
        added pixel is labeled with, and at least that for every class)."""
        mean = np.divide(self.sums, self.counts, out=np.zeros(self.classes), where=self.counts > 0)
        return np.maximum(mean, LOWEST_THRESHOLD)


# ---------------------------------------------------------------------------------------------------
# pass 2: scores and the pixels the model contradicts


@numba.njit(cache=True, nogil=True)
def _score(labels, probs, half, ignore, floor, temperature, unsure):  # type: ignore[no-untyped-def]
    k, h, w = probs.shape
    quality = np.empty((h, w), np.float32)
    n = h * w
    pixels = np.empty(n, np.int32)
    own = np.empty(n, np.float32)
    given = np.empty(n, np.int32)
    likeliest = np.empty(n, np.int32)
    confident = np.empty(n, np.bool_)
    low = np.empty(n, np.float32)
    m = 0
    u = 0
    labeled = 0
    lowest = np.inf
    for y in range(h):
        for x in range(w):
            c = np.int64(labels[y, x])
            if c < 0 or c >= k or c == ignore:
                quality[y, x] = np.nan
                continue
            labeled += 1
            best = 0
            top = _load(probs, half, 0, y, x)
            for j in range(1, k):  # the first of equal maxima, as numpy's argmax
                v = _load(probs, half, j, y, x)
                if v > top:
                    top = v
                    best = j
            s = _load(probs, half, c, y, x)
            quality[y, x] = s
            if s < lowest:
                lowest = s
            if best != c:
                pixels[m] = y * w + x
                own[m] = s
                given[m] = c
                likeliest[m] = best
                confident[m] = np.float64(top) >= floor[best]
                m += 1
            elif s <= unsure:
                low[u] = s
                u += 1
    score = 1.0
    if labeled:
        # softmax of (1 - s) / T, shifted by its largest value (at the lowest s) so exp cannot overflow
        shift = (1.0 - lowest) / temperature
        total = 0.0
        weighted = 0.0
        for y in range(h):
            for x in range(w):
                s = quality[y, x]
                if not np.isnan(s):
                    e = np.exp((1.0 - np.float64(s)) / temperature - shift)
                    total += e
                    weighted += s * e
        score = weighted / total
    return (quality, score, labeled, pixels[:m].copy(), own[:m].copy(), given[:m].copy(), likeliest[:m].copy(),
            confident[:m].copy(), low[:u].copy())  # fmt: skip


@dataclass(frozen=True)
class ImageScores:
    """What pass 2 finds in one image. Keep :meth:`compact` of it until the cutoff is known."""

    #: (H, W) and K
    shape: tuple[int, int]
    classes: int
    #: the image's label quality in [0, 1], low = likely mislabeled (1 when no pixel is labeled)
    score: float
    #: labeled pixels
    labeled: int
    #: the pixels whose likeliest class is not their label: flat index (row-major), their
    #: self-confidence, label, likeliest class, and whether that class reaches its threshold
    pixels: np.ndarray
    self_confidence: np.ndarray
    given: np.ndarray
    likeliest: np.ndarray
    confident: np.ndarray
    #: (H, W) float32 self-confidence, NaN where unlabeled; None once compacted
    quality: np.ndarray | None = field(default=None, repr=False)
    #: self-confidence of the other pixels up to :data:`UNSURE` (for :class:`IssueCutoff`)
    unsure: np.ndarray | None = field(default=None, repr=False)

    @property
    def confident_count(self) -> int:
        """This image's part of E, confident learning's count of mislabeled pixels."""
        return int(np.count_nonzero(self.confident))

    def compact(self) -> ImageScores:
        """Without the per-pixel map and the unsure pixels: what :func:`flag_image` needs."""
        return replace(self, quality=None, unsure=None)


def score_image(
    *,
    labels: np.ndarray,
    probs: np.ndarray,
    thresholds: np.ndarray,
    ignore: int = IGNORE,
    temperature: float = TEMPERATURE,
) -> ImageScores:
    """Pass 2 for one image: ``labels`` (H, W), ``probs`` (K, H, W), ``thresholds`` (K,) from
    :meth:`ThresholdFit.thresholds`. The score is cleanlab's ``softmin`` of the labeled pixels'
    self-confidence (``rank.get_label_quality_scores``' default)."""
    t = np.asarray(thresholds, dtype=np.float64)
    if t.ndim != 1:
        raise ValueError(f"thresholds must be (K,), one per class; got shape {t.shape}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive (cleanlab's default is {TEMPERATURE}), got {temperature}")
    p, half = _probs(probs, t.size)
    y = _labels(labels, p.shape[1:])
    quality, score, labeled, pixels, own, given, likeliest, confident, low = _score(
        y, p, half, int(ignore), t - FUZZ, float(temperature), np.float32(UNSURE)
    )
    return ImageScores((int(p.shape[1]), int(p.shape[2])), int(t.size), float(score), int(labeled), pixels, own, given,
                       likeliest, confident, quality, low)  # fmt: skip


class IssueCutoff:
    """Pass 2's tally: E, the number of pixels confidently of another class, and the self-confidence
    of the pixels that can be among the E lowest (every contradicted pixel, and the others up to
    :data:`UNSURE`): 4 bytes each."""

    def __init__(self) -> None:
        self.issues = 0
        self._values: list[np.ndarray] = []

    def add(self, image: ImageScores) -> None:
        if image.unsure is None:
            raise ValueError("add the image's scores before compact(): the cutoff needs its unsure pixels")
        self.issues += image.confident_count
        self._values.append(np.concatenate([image.self_confidence, image.unsure]))

    def cutoff(self) -> float:
        """The self-confidence of the E-th lowest labeled pixel: cleanlab's issues are the
        contradicted pixels at or below it (-inf when E is 0: no issue)."""
        if not self.issues:
            return float("-inf")
        values = np.concatenate(self._values)
        c = float(np.partition(values, self.issues - 1)[self.issues - 1])
        if c > UNSURE:
            raise ValueError(
                f"the {self.issues}-th lowest self-confidence is {c:.4f}, above {UNSURE}: the probabilities do "
                "not sum to 1 over the classes; pass the model's softmax"
            )
        return c


# ---------------------------------------------------------------------------------------------------
# flags


@numba.njit(cache=True, nogil=True)
def _core(pixels, h, w, r):  # type: ignore[no-untyped-def]
    """How many of the flagged ``pixels`` (flat indices in an h x w image) have more than nine tenths
    of the (2r + 1) x (2r + 1) square around them flagged (pixels outside the image count as not
    flagged). A sliver up to r pixels thick never has, not even where two slivers meet at a corner
    (at most (2r + 1)^2 - (r + 1)^2 of the square); the inside of a wrong region does, even where the
    model's noise leaves a few holes in its flags (one in ten)."""
    if r == 0:
        return pixels.size
    side = 2 * r + 1
    flagged = np.zeros((h + 1, w + 1), np.int32)  # its prefix sums: flagged[y, x] counts rows < y, columns < x
    for i in pixels:
        flagged[i // w + 1, i % w + 1] = 1
    for y in range(1, h + 1):
        for x in range(1, w + 1):
            flagged[y, x] += flagged[y - 1, x] + flagged[y, x - 1] - flagged[y - 1, x - 1]
    core = 0
    for i in pixels:
        y, x = i // w, i % w
        y0, y1, x0, x1 = max(y - r, 0), min(y + r + 1, h), max(x - r, 0), min(x + r + 1, w)
        inside = flagged[y1, x1] - flagged[y0, x1] - flagged[y1, x0] + flagged[y0, x0]
        if 10 * inside > 9 * side * side:
            core += 1
    return core


@dataclass(frozen=True)
class ImageIssues:
    """One image's flagged pixels under a rule."""

    shape: tuple[int, int]
    #: flat indices (row-major) of the flagged pixels, and the class suggested for each (the likeliest)
    pixels: np.ndarray
    suggested: np.ndarray
    #: (K,) flagged pixels per given class
    per_class: np.ndarray
    #: flagged pixels with more than nine tenths of the square of side ``2 * tolerance + 1`` around
    #: them flagged (all, at tolerance 0)
    core: int
    #: at least ``min_pixels`` of them
    is_issue: bool

    @property
    def flagged(self) -> int:
        return int(self.pixels.size)

    def mask(self) -> np.ndarray:
        """(H, W) bool: the flagged pixels."""
        out = np.zeros(self.shape[0] * self.shape[1], dtype=bool)
        out[self.pixels] = True
        return out.reshape(self.shape)


def flag_image(
    image: ImageScores,
    *,
    rule: Rule = "cleanlab",
    cutoff: float | None = None,
    tolerance: int = 0,
    min_pixels: int = 1,
) -> ImageIssues:
    """The issues of one image: under ``"cleanlab"`` its contradicted pixels with a self-confidence at
    or below ``cutoff`` (:meth:`IssueCutoff.cutoff`), under ``"confident"`` those confidently of
    their likeliest class. The image is an issue when at least ``min_pixels`` flagged pixels have more
    than nine tenths of the square of side ``2 * tolerance + 1`` around them flagged: with the defaults, any
    flagged pixel (cleanlab's image level). Set ``tolerance`` to how far the annotators' outlines may
    stray: a flagged sliver that thin is an outline drawn a little off, a wrong object or region is
    thicker."""
    if rule == "cleanlab":
        if cutoff is None:
            raise ValueError('rule "cleanlab" needs the cutoff of the whole dataset: IssueCutoff.cutoff() after pass 2')
        keep = image.self_confidence <= cutoff
    elif rule == "confident":
        keep = image.confident
    else:
        raise ValueError(f'rule must be "cleanlab" or "confident", not {rule!r}')
    if tolerance < 0:
        raise ValueError(f"tolerance must be 0 (every flagged pixel counts) or more pixels, got {tolerance}")
    if min_pixels < 1:
        raise ValueError(f"min_pixels must be at least 1, got {min_pixels}")
    pixels = image.pixels[keep]
    core = int(_core(pixels, image.shape[0], image.shape[1], int(tolerance)))
    return ImageIssues(
        shape=image.shape,
        pixels=pixels,
        suggested=image.likeliest[keep],
        per_class=np.bincount(image.given[keep], minlength=image.classes).astype(np.int64),
        core=core,
        is_issue=core >= min_pixels,
    )


# ---------------------------------------------------------------------------------------------------
# both passes


@dataclass
class Found:
    """:func:`find`'s answer for a dataset of N images."""

    thresholds: np.ndarray
    #: E, the pixels confidently of another class, and the cleanlab rule's cutoff (NaN under the
    #: confident rule, which needs none)
    confident_pixels: int
    cutoff: float
    #: (N,) softmin scores, and the issues of each image
    scores: np.ndarray
    issues: list[ImageIssues]
    #: what pass 2 kept of each image (:meth:`ImageScores.compact`): flag it again under another rule
    images: list[ImageScores]


def find(
    images: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]],
    *,
    classes: int,
    ignore: int = IGNORE,
    rule: Rule = "cleanlab",
    stride: int = 1,
    temperature: float = TEMPERATURE,
    tolerance: int = 0,
    min_pixels: int = 1,
) -> Found:
    """Both passes over ``images()``, an iterable of (labels, probs) per image, called twice (it must
    give the same images in the same order); holds one image at a time, and of each image only what
    :meth:`ImageScores.compact` keeps."""
    fit = ThresholdFit(classes, ignore=ignore, stride=stride)
    for labels, probs in images():
        fit.add(labels=labels, probs=probs)
    thresholds = fit.thresholds()
    tally = IssueCutoff()
    kept: list[ImageScores] = []
    for labels, probs in images():
        s = score_image(labels=labels, probs=probs, thresholds=thresholds, ignore=ignore, temperature=temperature)
        tally.add(s)
        kept.append(s.compact())
    cutoff = tally.cutoff() if rule == "cleanlab" else float("nan")
    issues = [flag_image(s, rule=rule, cutoff=cutoff, tolerance=tolerance, min_pixels=min_pixels) for s in kept]
    return Found(thresholds, tally.issues, cutoff, np.array([s.score for s in kept]), issues, kept)
