"""The demo's point-cloud and audio sets, built as `shoal demo` builds them (fixed seeds): the files a
lidar or audio tool reads, labels that are the generating objects but for the planted errors, and
detectors that never see the labels yet find the objects, so that the planted errors can be found."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import pytest

from shoal.common.cuboids import similarity_matrix
from shoal.demo import audio, scenes


@pytest.fixture(scope="module")
def clouds(tmp_path_factory: pytest.TempPathFactory) -> scenes.CuboidScenes:
    return scenes.build_cuboid_scenes(tmp_path_factory.mktemp("scenes3d"))


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> audio.Clips:
    return audio.build_clips(tmp_path_factory.mktemp("beeps"))


def test_point_clouds_are_raw_float32_bins_of_the_objects(clouds: scenes.CuboidScenes) -> None:
    assert len(clouds.frame_ids) == 40
    for uri, labels, truth in zip(clouds.media_uris, clouds.labels, clouds.truth, strict=True):
        cloud = np.fromfile(Path(uri.removeprefix("file://")), dtype=np.float32).reshape(-1, 4)
        assert len(cloud) > 3000 and np.all((cloud[:, 3] >= 0) & (cloud[:, 3] <= 1))
        # a label's point count is the cloud's points inside its cuboid; every real object has points
        for _, _, row, points in labels:
            assert points == int(scenes.inside(row, cloud).sum())
        assert all(scenes.inside(row, cloud).sum() >= 10 for _, row in truth)


def test_the_labels_are_the_objects_but_for_the_planted_errors(clouds: scenes.CuboidScenes) -> None:
    assert {k: len(v) for k, v in clouds.planted.items()} == {k: scenes.PER_KIND for k in scenes.KINDS}
    planted = {x for kind, items in clouds.planted.items() if kind != "missing_label" for x in items}
    for fid, labels, truth in zip(clouds.frame_ids, clouds.labels, clouds.truth, strict=True):
        true_rows = [(cls, row) for cls, row in truth]
        for oid, cls, row, _ in labels:
            if (fid, oid) not in planted:
                assert (cls, row) in true_rows, (fid, oid)
    # a mislocalized label still overlaps its object, enough to be judged against it
    for kind in ("mislocalized_centre", "mislocalized_size", "mislocalized_heading"):
        for fid, oid in clouds.planted[kind]:
            i = clouds.frame_ids.index(fid)
            row = next(r for o, _, r, _ in clouds.labels[i] if o == oid)
            truth = np.array([r for _, r in clouds.truth[i]])
            iou = similarity_matrix(dt=np.array([row]), gt=truth, kind="bev_iou").max()
            assert 0.2 < iou < 0.6, (kind, fid, iou)


def test_the_detector_finds_the_objects_without_the_labels(clouds: scenes.CuboidScenes) -> None:
    found = total = 0
    for truth, predictions in zip(clouds.truth, clouds.predictions, strict=True):
        assert predictions, "a frame without a detection"
        boxes = np.array([row for _, _, _, row in predictions])
        iou = similarity_matrix(dt=boxes, gt=np.array([row for _, row in truth]), kind="bev_iou")
        for j, (cls, _) in enumerate(truth):
            best = int(iou[:, j].argmax())
            total += 1
            found += iou[best, j] >= 0.5 and predictions[best][1] == cls
        assert all(0 < s <= 1 for _, _, s, _ in predictions)
    assert found / total >= 0.95, (found, total)


def test_audio_clips_are_16_khz_wav_files_of_their_events(clips: audio.Clips) -> None:
    assert len(clips.frame_ids) == 30
    for uri, duration in zip(clips.media_uris, clips.durations, strict=True):
        with wave.open(str(Path(uri.removeprefix("file://"))), "rb") as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16_000, 1, 2)
            assert w.getnframes() == int(duration * 16_000)
    assert {k: len(v) for k, v in clips.planted.items()} == {k: audio.PER_KIND for k in audio.KINDS}
    for labels, duration in zip(clips.labels, clips.durations, strict=True):
        assert all(0 <= on < off <= duration for on, off, _ in labels)
    # a badly bounded label shares less than half of its length with its sound
    for fid, (on, off, cls) in clips.planted["badly_bounded"]:
        truth = clips.truth[clips.frame_ids.index(fid)]
        assert max(audio._tiou((on, off), e) for e in truth if e[2] == cls) < 0.5


def test_the_band_detector_hears_the_events_without_the_labels(clips: audio.Clips) -> None:
    found = total = false = 0
    for truth, predictions in zip(clips.truth, clips.predictions, strict=True):
        for event in truth:
            total += 1
            found += any(p[2] == event[2] and audio._tiou(p, event) >= 0.5 for p in predictions)
        false += sum(not any(p[2] == e[2] and audio._tiou(p, e) > 0 for e in truth) for p in predictions)
    assert found / total >= 0.95 and false <= 2, (found, total, false)
    # a tone in its own band only: a detector of the other classes stays silent
    tone = 0.2 * np.sin(2 * math.pi * audio.PITCH[audio.BEEP_HIGH] * np.arange(32_000) / 16_000)
    quiet = np.random.default_rng(0).normal(0, 0.006, 64_000)
    quiet[16_000:48_000] += tone
    ((onset, offset, cls, score),) = audio.detect(quiet)
    assert cls == audio.BEEP_HIGH and abs(onset - 1.0) < 0.05 and abs(offset - 3.0) < 0.05 and score > 0.9
