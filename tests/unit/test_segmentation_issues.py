"""Semantic-segmentation label issues, streamed image by image, against cleanlab's ``segmentation``
module on the same generated images: the scores, the flags, unlabeled pixels, and planted errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from shoal.analysis import segmentation_issues as si

K, H, W = 4, 24, 32


def _ellipse(rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    cy, cx = rng.uniform(3, H - 3), rng.uniform(3, W - 3)
    a, b = rng.uniform(3, 8, 2)
    return ((yy - cy) / a) ** 2 + ((xx - cx) / b) ** 2 <= 1


def dataset(n: int = 36, seed: int = 0, noise: float = 1.0, shift: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Labels (n, H, W) uint8 of one to three ellipses of classes 1..K-1 over background 0, with
    ``shift`` each image's outlines drawn a pixel off (the image shifted by up to a pixel each way), and a model's
    probabilities (n, K, H, W) float32 of the true shapes: blurred one-hot logits, sharpness drawn per
    image, plus pixel noise. The model disagrees with the labels here and there, most of all along
    the outlines."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((n, H, W), np.uint8)
    for i in range(n):
        for _ in range(rng.integers(1, 4)):
            truth[i][_ellipse(rng)] = rng.integers(1, K)
    moves = rng.integers(-1, 2, (n, 2)) if shift else np.zeros((n, 2), int)
    labels = np.stack([np.roll(t, tuple(m), axis=(0, 1)) for t, m in zip(truth, moves)])
    onehot = (truth[:, None] == np.arange(K)[None, :, None, None]).astype(np.float64)
    logits = gaussian_filter(onehot, (0, 0, 1, 1)) * rng.uniform(3, 7, (n, 1, 1, 1))
    logits += rng.normal(0, noise, logits.shape)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return labels, (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def _find(labels: np.ndarray, probs: np.ndarray, **kwargs: object) -> si.Found:
    return si.find(lambda: zip(labels, probs, strict=True), classes=probs.shape[1], **kwargs)  # type: ignore[arg-type]


def _cleanlab_flags(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    from cleanlab.segmentation.filter import find_label_issues

    return np.asarray(find_label_issues(labels, probs, n_jobs=1, verbose=False))


def test_image_and_pixel_scores_are_cleanlabs_softmin() -> None:
    from cleanlab.segmentation.rank import get_label_quality_scores

    labels, probs = dataset()
    expected, pixel_scores = get_label_quality_scores(labels, probs, n_jobs=1, verbose=False)
    found = _find(labels, probs)
    np.testing.assert_allclose(found.scores, expected, rtol=0, atol=1e-6)
    assert np.ptp(expected) > 0.1  # the images differ: a score that ignored them would fail
    t = si.ThresholdFit(K)
    t.add(labels=labels, probs=probs)
    for i in (0, 7):
        s = si.score_image(labels=labels[i], probs=probs[i], thresholds=t.thresholds())
        np.testing.assert_array_equal(s.quality, pixel_scores[i].astype(np.float32))
    # another temperature is cleanlab's at that temperature
    expected, _ = get_label_quality_scores(labels, probs, n_jobs=1, verbose=False, temperature=0.5)
    np.testing.assert_allclose(_find(labels, probs, temperature=0.5).scores, expected, rtol=0, atol=1e-6)


def test_flags_are_cleanlabs_find_label_issues_pixel_for_pixel() -> None:
    labels, probs = dataset()
    expected = _cleanlab_flags(labels, probs)
    found = _find(labels, probs)
    flags = np.stack([f.mask() for f in found.issues])
    assert 50 < expected.sum() < expected.size / 10  # some flags, not all
    np.testing.assert_array_equal(flags, expected)
    # each flagged pixel's suggestion is the model's likeliest class, never its label
    for i, f in enumerate(found.issues):
        y, x = np.unravel_index(f.pixels, (H, W))
        np.testing.assert_array_equal(f.suggested, probs[i].argmax(axis=0)[y, x])
        assert (f.suggested != labels[i][y, x]).all()
        np.testing.assert_array_equal(f.per_class, np.bincount(labels[i][y, x], minlength=K))
    # cleanlab's image level: the images with a flagged pixel
    assert [f.is_issue for f in found.issues] == expected.any(axis=(1, 2)).tolist()


def test_half_precision_probabilities_are_read_exactly() -> None:
    labels, probs = dataset(seed=1)
    half = probs.astype(np.float16)
    a, b = _find(labels, half), _find(labels, half.astype(np.float32))
    np.testing.assert_array_equal(a.thresholds, b.thresholds)
    np.testing.assert_array_equal(a.scores, b.scores)
    for x, y in zip(a.issues, b.issues, strict=True):
        np.testing.assert_array_equal(x.pixels, y.pixels)


def test_thresholds_do_not_depend_on_how_the_images_are_batched() -> None:
    from cleanlab.count import get_confident_thresholds

    labels, probs = dataset(seed=2)
    one_by_one, batches, at_once = si.ThresholdFit(K), si.ThresholdFit(K), si.ThresholdFit(K)
    for i in range(len(labels)):
        one_by_one.add(labels=labels[i], probs=probs[i])
    for i in range(0, len(labels), 5):
        batches.add(labels=labels[i : i + 5], probs=probs[i : i + 5])
    at_once.add(labels=labels, probs=probs)
    np.testing.assert_allclose(one_by_one.thresholds(), at_once.thresholds(), rtol=1e-12)
    np.testing.assert_allclose(batches.thresholds(), at_once.thresholds(), rtol=1e-12)
    flat_labels = labels.reshape(-1)
    flat_probs = probs.transpose(0, 2, 3, 1).reshape(-1, K)
    np.testing.assert_allclose(at_once.thresholds(), get_confident_thresholds(flat_labels, flat_probs), atol=1e-6)


def test_a_class_nobody_labeled_gets_cleanlabs_floor() -> None:
    """cleanlab's batched fit leaves a class no pixel is labeled with at its lowest threshold: every
    pixel the model calls that class is confidently it. Ours too, and the flags still agree."""
    labels, probs = dataset(seed=3)
    labels[labels == 3] = 1  # nobody labels class 3; the model still sees it
    t = si.ThresholdFit(K)
    t.add(labels=labels, probs=probs)
    assert t.thresholds()[3] == si.LOWEST_THRESHOLD
    flags = np.stack([f.mask() for f in _find(labels, probs).issues])
    np.testing.assert_array_equal(flags, _cleanlab_flags(labels, probs))
    assert flags[labels == 1].sum() > 0


def test_a_stride_estimates_the_thresholds_from_a_subsample() -> None:
    labels, probs = dataset(seed=4)
    full, strided = si.ThresholdFit(K), si.ThresholdFit(K, stride=3)
    full.add(labels=labels, probs=probs)
    strided.add(labels=labels, probs=probs)
    sub = si.ThresholdFit(K)
    sub.add(labels=labels[:, ::3, ::3], probs=probs[:, :, ::3, ::3])
    np.testing.assert_allclose(strided.thresholds(), sub.thresholds(), rtol=1e-12)
    assert strided.counts.sum() == labels[:, ::3, ::3].size
    np.testing.assert_allclose(strided.thresholds(), full.thresholds(), atol=0.03)


@pytest.mark.parametrize(("dtype", "ignore"), [(np.uint16, si.IGNORE), (np.uint8, 255), (np.int32, -1), (np.uint8, 0)])
def test_unlabeled_pixels_are_never_flagged_nor_counted(dtype: type, ignore: int) -> None:
    """Pixels marked ``ignore`` (or outside 0..K-1) count nowhere: the answer equals cleanlab's
    confident learning on the labeled pixels alone, whatever the model says at the others."""
    from cleanlab.experimental.label_issues_batched import find_label_issues_batched
    from cleanlab.internal.multilabel_scorer import softmin

    labels, probs = dataset(seed=5)
    rng = np.random.default_rng(5)
    unlabeled = rng.random(labels.shape) < 0.2
    unlabeled[:, :8, :8] = True  # and whole blocks, some of them on objects
    given = labels.astype(dtype)
    given[unlabeled] = ignore
    kept = ~unlabeled
    # a value inside 0..K-1 named as ignore is skipped like the others, so class 0 then has no pixels
    valid = kept & (labels != ignore) if 0 <= ignore < K else kept
    flat_probs = probs.transpose(0, 2, 3, 1)[valid]
    flat_labels = labels[valid].astype(np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ranked = find_label_issues_batched(flat_labels, flat_probs, n_jobs=1, verbose=False, return_mask=False)
    expected = np.zeros(len(flat_labels), bool)
    expected[ranked] = True
    expected &= flat_probs.argmax(axis=1) != flat_labels  # segmentation's final filter

    found = _find(given, probs, ignore=ignore)
    flags = np.stack([f.mask() for f in found.issues])
    assert not flags[~valid].any()
    np.testing.assert_array_equal(flags[valid], expected)
    assert expected.sum() > 20
    assert sum(int(f.per_class.sum()) for f in found.issues) == int(flags.sum())
    for i, s in enumerate(found.scores):
        own = probs[i][labels[i], np.arange(H)[:, None], np.arange(W)][valid[i]].astype(np.float64)
        assert s == pytest.approx(softmin(own[None], axis=1, temperature=0.1)[0], abs=1e-9)

    # the model's probabilities at unlabeled pixels change nothing
    scrambled = probs.copy()
    noise = rng.dirichlet(np.ones(K), size=int(unlabeled.sum())).astype(np.float32)
    scrambled.transpose(0, 2, 3, 1)[unlabeled] = noise
    again = _find(given, scrambled, ignore=ignore)
    np.testing.assert_array_equal(again.thresholds, found.thresholds)
    np.testing.assert_array_equal(again.scores, found.scores)
    assert again.cutoff == found.cutoff
    # an image without a labeled pixel scores 1 and has no issue
    s = si.score_image(
        labels=np.full((H, W), ignore, dtype), probs=probs[0], thresholds=found.thresholds, ignore=ignore
    )
    assert s.score == 1.0 and s.labeled == 0 and np.isnan(s.quality).all() and s.pixels.size == 0


def _plant(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, dict[int, tuple[np.ndarray, int]]]:
    """Images 5, 17 and 29 with an error each: an object's class swapped, an object erased to the
    background, a region painted with a class it does not have. Returns the labels and, per image,
    the changed pixels and the class they truly are."""
    rng = np.random.default_rng(11)
    given = labels.copy()
    planted = {}
    yy, xx = np.mgrid[0:H, 0:W]
    for image, kind in ((5, "swap"), (17, "erase"), (29, "paint")):
        if kind == "paint":
            region = (np.abs(yy - 12) <= 4) & (np.abs(xx - 16) <= 5)
            truth = int(np.bincount(labels[image][region], minlength=K).argmax())
            given[image][region] = (truth + 1 + rng.integers(0, K - 1)) % K
        else:
            c = int(np.bincount(labels[image].ravel(), minlength=K)[1:].argmax()) + 1  # its largest object's class
            region = labels[image] == c
            truth = c
            given[image][region] = 0 if kind == "erase" else (c % (K - 1)) + 1
        planted[image] = (region & (given[image] != labels[image]), truth)
    return given, planted


def test_planted_errors_rank_first() -> None:
    """A swapped class, an erased object and a painted region on otherwise exact labels: those three
    images score lowest (the soft minimum, the flagged share, the flagged core) and most of their
    changed pixels are flagged with the class they truly are."""
    labels, probs = dataset(noise=0.8, shift=False)
    given, planted = _plant(labels, probs)
    found = _find(given, probs)
    pixels = np.array([f.flagged for f in found.issues])
    assert set(np.argsort(found.scores)[:3].tolist()) == set(planted)
    assert set(np.argsort(-pixels)[:3].tolist()) == set(planted)
    for image, (changed, truth) in planted.items():
        f = found.issues[image]
        hit = np.isin(f.pixels, np.flatnonzero(changed))
        assert hit.sum() > 0.8 * changed.sum()
        assert (f.suggested[hit] == truth).mean() > 0.9
    for rule in ("cleanlab", "confident"):
        issues = [si.flag_image(s, rule=rule, cutoff=found.cutoff, tolerance=1) for s in found.images]
        assert set(np.argsort([-f.core for f in issues])[:3].tolist()) == set(planted)


def test_outlines_drawn_a_pixel_off_are_tolerated() -> None:
    """With every outline a pixel off, cleanlab's image rule (any flagged pixel) flags many images;
    counting only flagged pixels a pixel inside a flagged area leaves the three with planted errors,
    and ranks them first."""
    labels, probs = dataset(noise=0.8)
    given, planted = _plant(labels, probs)
    found = _find(given, probs)
    assert sum(f.is_issue for f in found.issues) > 3 * len(planted)
    tolerant = [si.flag_image(s, cutoff=found.cutoff, tolerance=1) for s in found.images]
    assert [i for i, f in enumerate(tolerant) if f.is_issue] == sorted(planted)
    assert set(np.argsort([-f.core for f in tolerant])[:3].tolist()) == set(planted)


def test_the_confident_rule_flags_exactly_the_pixels_counted_as_errors() -> None:
    labels, probs = dataset(seed=6)
    found = _find(labels, probs, rule="confident")
    assert sum(f.flagged for f in found.issues) == found.confident_pixels > 0
    t = found.thresholds
    for i, f in enumerate(found.issues):
        likeliest = probs[i].argmax(axis=0)
        top = probs[i].max(axis=0).astype(np.float64)
        expected = (likeliest != labels[i]) & (top >= t[likeliest] - si.FUZZ)
        np.testing.assert_array_equal(f.mask(), expected)


def test_inputs_that_cannot_be_scored_are_refused_with_the_fix() -> None:
    labels, probs = dataset(n=2)
    fit = si.ThresholdFit(K)
    with pytest.raises(ValueError, match="integer class map"):
        fit.add(labels=labels.astype(np.float32), probs=probs)
    with pytest.raises(ValueError, match="one label per pixel"):
        fit.add(labels=labels[:, :-1], probs=probs)
    with pytest.raises(ValueError, match="holds 3 classes"):
        fit.add(labels=labels[0], probs=probs[0, :3])
    with pytest.raises(ValueError, match="stride"):
        si.ThresholdFit(K, stride=0)
    fit.add(labels=labels, probs=probs)
    s = si.score_image(labels=labels[0], probs=probs[0], thresholds=fit.thresholds())
    with pytest.raises(ValueError, match="IssueCutoff"):
        si.flag_image(s)
    # probabilities that are not a softmax: the cutoff cannot be exact, and says so
    with pytest.raises(ValueError, match="softmax"):
        _find(labels, np.ones_like(probs))
