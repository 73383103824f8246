"""The demo's report page, rendered from a fixed summary: what a reader sees in it."""

from __future__ import annotations

import base64
import fnmatch
import tomllib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from shoal.demo.report import Figures, render_report
from tests.conftest import REPO

EVIL = "<script>alert(1)</script>"
#: the smallest PNG: one transparent pixel
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGBgAAAABQABpfZFQAAAAABJRU5ErkJggg=="
)


class _Page(HTMLParser):
    """The text a reader sees: headings, tables (rows of cell texts), images and map points."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[tuple[str, str]] = []
        self.tables: list[list[list[str]]] = []
        self.images: list[dict[str, str | None]] = []
        self.svgs: dict[str, list[str]] = {}  # svg id -> the tooltips of its points
        self.text: list[str] = []
        self._open: list[str] = []
        self._svg: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("h1", "h2", "h3"):
            self.headings.append((tag, ""))
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.tables[-1][-1].append("")
        elif tag == "img":
            self.images.append(a)
            return
        elif tag == "svg" and a.get("id"):
            self._svg = str(a["id"])
            self.svgs[self._svg] = []
        self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        while self._open and self._open.pop() != tag:
            pass
        if tag == "svg" and "svg" not in self._open:
            self._svg = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if not self._open:
            return
        if {"h1", "h2", "h3"} & set(self._open):
            tag, text = self.headings[-1]
            self.headings[-1] = (tag, text + data)
        if {"td", "th"} & set(self._open) and "table" in self._open:
            self.tables[-1][-1][-1] += data
        if self._svg and self._open[-1] == "title":
            self.svgs[self._svg].append(data)


def _summary() -> dict[str, Any]:
    """A small summary as ``summary.json`` holds it: three classes, one of them named to be escaped."""
    return {
        "generated_at": "2026-01-02T03:04:05+00:00",
        "services": {"ingest": "SERVING", "analysis": "SERVING", "sampler": "NOT_SERVING",
                     "labeling_bridge": "SERVING"},
        "reflection": ["grpc.health.v1.Health", "shoal.ingest.v1.IngestService"],
        "ingest": {
            "frames": 12, "labels": 9, "inferences": 10, "embeddings": 12, "pixel_embeddings": 12,
            "expected": {"frames": 12, "labels": 10, "inferences": 10, "embeddings": 12, "pixel_embeddings": 12},
            "flipped_labels": 2, "planted_outliers": 2, "model_accuracy_vs_truth": 0.8, "upload_id": "u1",
            "upload_state": "COMPLETED", "planted_upload_state": "COMPLETED", "upload_seconds": 1.25,
            "pool": {"frames": 5, "expected_frames": 5, "pixel_embeddings": 5, "upload_state": "COMPLETED"},
        },
        "metrics": {
            "inference_set": "mlp-oof", "frames": 10, "accuracy": 0.7, "macro_f1": 0.6543, "top_k": 2,
            "top_k_accuracy": 0.9, "expected_calibration_error": 0.0421, "classes": ["0", "1", EVIL],
            "confusion_matrix": [[3, 1, 0], [0, 2, 1], [1, 0, 2]],
            "per_class": {}, "worst_classes": [EVIL, "1", "0"],
        },
        "automation": {
            "rule": f"gate-{EVIL}", "trigger": "INFERENCE_SET_COMPLETE", "actions": ["METRICS", "GATES"],
            "dataset": "digits", "segment": f"release-{EVIL}", "segment_frames": 7,
            "gate": {"metric": "recall", "class_id": 2, "minimum": 0.9}, "inference_set": "mlp-v2",
            "degraded": {"class_id": 2, "predicted_as": 1}, "upload_id": "up-2", "run_id": "ar-1",
            "state": "SUCCEEDED", "message": "12 metrics recorded; 0 of 1 gates passed", "attempts": 1,
            "gates_evaluated": 1, "gates_passed": 0, "gates_failed": 1,
            "failing_gates": [{"segment": f"release-{EVIL}", "metric": "recall", "class_id": 2, "minimum": 0.9,
                               "value": 0.25, "frames": 7, "passed": False}],
            "gates": [{"segment": f"release-{EVIL}", "metric": "recall", "class_id": 2, "minimum": 0.9,
                       "value": 0.25, "frames": 7, "passed": False}],
            "accuracy": 0.6, "macro_f1": 0.55, "metrics_recorded": 12,
            "baseline": {"inference_set": "mlp-oof", "value": 0.95, "passed": True},
            "webhook": {"url": "http://127.0.0.1:9/hooks/shoal", "event": "gates.failed",
                        "delivery_id": "ar-1/gates.failed", "status": 200, "signature_verified": True, "received": 1,
                        "attempts": 1, "recorded_status": 200, "reported_gates_failed": 1},
            "seconds": 3.5,
        },
        "label_issues": {"job_id": "label_issues-1", "injected": 2, "found": 3, "correct": 2, "precision": 0.6667,
                         "recall": 1.0, "f1": 0.8},
        "outliers": {"job_id": "neighbors-1", "embedding_space": "pixels", "k": 5, "frames": 12, "planted": 2,
                     "genuine": 10, "auroc": 0.95, "top_k_precision": 0.5, "exact_duplicate_pairs": 1,
                     "near_duplicate_pairs": 4, "cross_split_pairs": 3},
        "failure_clusters": {
            "job_id": "failure_clusters-1", "embedding_space": "mlp-hidden", "errors": 3, "error_rate": 0.3,
            "clustered_errors": 2,
            "clusters": [{"cluster": 0, "errors": 2, "frames": 3, "error_rate": 0.667, "lift": 2.2, "p_value": 0.01,
                          "description": f"labeled {EVIL}, mostly predicted 0", "segment": f"failures-{EVIL}",
                          "segment_size": 2, "examples_with_flipped_labels": 1}],
        },
        "campaign": {
            "pattern": "1 predicted as 2", "seed_segment": f"seeds-{EVIL}", "seeds": 2, "pool": "digits-pool",
            "pool_frames": 5, "pattern_frames_in_pool": 2, "job_id": "campaign-1", "segment": "campaign-1-as-2",
            "strategy": "similar", "budget": 2, "selected": 2, "in_pattern": 1, "precision": 0.5,
            "random_precision": 0.4, "recall": 0.5, "class_precision": 0.5, "class_random_precision": 0.2,
        },
        "standing_campaign": {
            "name": f"standing-{EVIL}", "pool": "digits-stream", "pattern": "1 predicted as 2",
            "seed_segment": f"seeds-{EVIL}", "seeds": 2, "embedding_space": "pixels", "similarity_threshold": 0.88,
            "min_distance": 0.04, "budget": 2, "retention_seconds": 0.0, "state": "FULL", "judged": 9, "kept": 2,
            "filtered": 0, "below_threshold": 6, "near_kept": 1, "vectors_deleted": 7, "uploads_streamed": 3,
            "frames_streamed": 12, "full_after_upload": 2, "pattern_frames_in_stream": 3, "in_pattern": 1,
            "precision": 0.5, "random_precision": 0.25, "class_precision": 1.0, "class_random_precision": 0.5,
            "client_side_batches": 2, "client_side_kept": 2, "client_side_equal": True,
            "offline_twin": "standing_rule.Judge", "offline_twin_kept": 2, "offline_twin_equal": False,
        },
        "map": {"job_id": "embedding_map-1", "frames": 4, "fitted_on": 4, "embedding_space": "pixels"},
        "instance_segmentation": {
            "frames": 6, "labeled_objects": 9, "predicted_objects": 8, "state": "UPLOAD_STATE_COMPLETED",
            "planted": {"missing_label": 1, "class_swap": 1}, "job_id": "detection_label_issues-1", "mask_ap": 0.61,
            "mask_ap50": 0.83, "mask_ar100": 0.7, "per_class_ap": {"disc": 0.5, EVIL: 0.72},
            "label_issues": {"missing_label": {"planted": 1, "flagged": 2, "planted_flagged": 1, "precision": 0.5,
                                               "recall": 1.0, "planted_in_first": 1},
                             "class_swap": {"planted": 1, "flagged": 1, "planted_flagged": 0, "precision": 0.0,
                                            "recall": 0.0, "planted_in_first": 0}},
        },
        "semantic_segmentation": {
            "frames": 8, "state": "UPLOAD_STATE_COMPLETED", "planted": {"class_swap": 1, "painted_region": 1},
            "job_id": "segmentation_label_issues-1", "mean_iou": 0.81, "pixel_accuracy": 0.93,
            "frequency_weighted_iou": 0.88, "per_class_iou": {"road": 0.9, EVIL: 0.7},
            "label_issues": {"planted": 2, "flagged": 3, "planted_flagged": 2, "precision": 0.6667, "recall": 1.0,
                             "planted_in_first": 2, "by_kind": {"class_swap": 1, "painted_region": 1}},
        },
        "cuboids_3d": {
            "frames": 4, "labeled_objects": 11, "predicted_objects": 10, "points": 9000,
            "state": "UPLOAD_STATE_COMPLETED", "planted": {"missing_label": 1, "mislocalized_size": 1},
            "job_id": "detection_label_issues-2",
            "nuscenes": {"map": 0.8123, "nds": 0.6012, "mate": 0.11, "mase": 0.07, "maoe": 0.05,
                         "per_class_ap": {"car": 0.9, EVIL: 0.7}},
            "bev_ap": {"iou_thresholds": [0.5, 0.7], "map": 0.75, "map_at": [0.85, 0.65],
                       "per_class_ap": {"car": 0.8, EVIL: 0.7}},
            "iou_3d_map": 0.7,
            "label_issues": {"planted": 2, "flagged": 3, "planted_flagged": 2, "precision": 0.6667, "by_kind": {
                "missing_label": {"planted": 1, "found": 1, "found_as_planted": 1, "planted_in_first": 1},
                "mislocalized_size": {"planted": 1, "found": 1, "found_as_planted": 0, "planted_in_first": 1}}},
        },
        "sound_events": {
            "clips": 3, "seconds": 15.0, "labeled_events": 7, "predicted_events": 8,
            "state": "UPLOAD_STATE_COMPLETED", "planted": {"missing": 1, "wrong_class": 1},
            "job_id": "sound_event_label_issues-1",
            "segment_based": {"f1": 0.9, "precision": 0.92, "recall": 0.88, "error_rate": 0.2},
            "event_based": {"f1": 0.8, "precision": 0.8, "recall": 0.8, "error_rate": 0.4},
            "per_class_event_f1": {"beep": 0.8, EVIL: 0.75},
            "label_issues": {"planted": 2, "flagged": 2, "planted_flagged": 1, "precision": 0.5, "by_kind": {
                "missing": {"planted": 1, "flagged": 1, "found": 1, "found_as_any_type": 1, "planted_in_first": 1},
                "wrong_class": {"planted": 1, "flagged": 1, "found": 0, "found_as_any_type": 0,
                                "planted_in_first": 0}}},
        },
        "server": {"port": 1234, "startup_seconds": 2.5, "exit_code": 0, "admin_key_id": "k1"},
    }  # fmt: skip


@pytest.fixture
def page(tmp_path: Path) -> _Page:
    png = tmp_path / "f1.png"
    png.write_bytes(PNG)
    uri = png.as_uri()
    figures = Figures(
        label_issues=[
            {"frame_id": "f1", "media_uri": uri, "given": 1, "suggested": 2, "self_confidence": 0.05,
             "suggested_probability": 0.9, "injected": True},
            {"frame_id": EVIL, "media_uri": "file:///no/such/file.png", "given": 0, "suggested": 1,
             "self_confidence": 0.1, "suggested_probability": 0.8, "injected": False},
        ],
        outliers=[{"frame_id": "p1", "media_uri": uri, "rank": 1, "score": 0.9, "label": None,
                   "neighbor_label": None, "planted": "noise"}],
        points=[("f1", 0.0, 0.0, 1), ("f2", 1.0, 1.0, 2), ("p1", 2.0, 0.5, None), (EVIL, 0.5, 2.0, 0)],
        issue_ids=["f1", EVIL],
        planted_ids={"p1"},
        cluster_examples=[[("f1", uri, 1, 0)]],
        campaign=[{"frame_id": "q1", "media_uri": uri, "rank": 1, "true": 1, "predicted": 2, "in_pattern": True},
                  {"frame_id": "q2", "media_uri": uri, "rank": 2, "true": 7, "predicted": 2, "in_pattern": False}],
        standing=[{"frame_id": "w1", "media_uri": uri, "rank": 1, "true": 1, "predicted": 2, "in_pattern": True}],
        shapes=[{"frame_id": "s1", "object_id": "p0", "kind": "missing_label", "score": 0.1, "planted": True,
                 "image": uri}],
        streets=[{"frame_id": "st1", "planted": True, "flagged_pixels": 120, "given": 1, "suggested": 2, "image": uri}],
        cuboids=[{"frame_id": "lidar-1", "range": 40.0, "points": [(1.0, 2.0, True), (-3.0, 5.0, False)],
                  "labels": [{"object_id": "obj-0", "class": EVIL, "corners": [[1, 1], [-1, 1], [-1, -1], [1, -1]]}],
                  "predictions": [{"object_id": "det-0", "class": "car", "score": 0.9,
                                   "corners": [[5, 1], [3, 1], [3, -1], [5, -1]]}],
                  "flagged": [{"object_id": "det-0", "predicted": True, "kind": "missing_label", "mislocalization": "",
                               "score": 0.1, "planted": True},
                              {"object_id": "obj-0", "predicted": False, "kind": "mislocalized",
                               "mislocalization": "size", "score": 0.3, "planted": False}]}],
        sound_events=[{"frame_id": "clip-1.wav", "image": uri,
                       "issues": [{"kind": "missing", "score": 0.05, "planted": True}],
                       "legend": [("beep", "#1f77b4"), (EVIL, "#d62728")]}],
    )  # fmt: skip
    html = render_report(_summary(), figures)
    assert EVIL not in html, "a name from the data reached the page unescaped"
    parsed = _Page()
    parsed.feed(html)
    return parsed


def test_the_report_has_every_section_in_order(page: _Page) -> None:
    assert page.headings == [
        ("h1", "Shoal demo report"),
        ("h2", "Services"),
        ("h2", "Ingest"),
        ("h2", "Model performance"),
        ("h2", "Automation"),
        ("h2", "Label issues"),
        ("h2", "Outliers"),
        ("h2", "Embedding map"),
        ("h2", "Failure clusters"),
        ("h3", f"Cluster 0: segment failures-{EVIL}"),
        ("h2", "Collection campaign"),
        ("h2", "Standing campaign"),
        ("h2", "Instance segmentation"),
        ("h2", "Semantic segmentation"),
        ("h2", "3-D cuboids"),
        ("h2", "Sound events"),
        ("h2", "Reflection"),
    ]


def test_the_tables_hold_the_summary(page: _Page) -> None:
    services, ingest, heat, automation, shapes, cuboids, sounds = page.tables
    assert automation == [
        ["segment", "gate", "minimum", "value", "frames", "result"],
        [f"release-{EVIL}", "recall of class 2", "0.9", "0.25", "7", "FAIL"],
    ]
    assert cuboids == [
        ["kind", "planted", "flagged as its issue type", "as what is off", "planted first"],
        ["missing label", "1", "1", "1", "1"],
        ["mislocalized size", "1", "1", "0", "1"],
    ]
    assert sounds == [
        ["kind", "planted", "flagged", "planted among them", "planted first"],
        ["missing", "1", "1", "1", "1 of the first 1"],
        ["wrong class", "1", "1", "0", "0 of the first 1"],
    ]
    assert shapes == [
        ["kind", "planted", "flagged", "planted among them", "planted first"],
        ["missing label", "1", "2", "1", "1 of the first 1"],
        ["class swap", "1", "1", "0", "0 of the first 1"],
    ]
    assert services == [
        ["service", "gRPC name", "health"],
        ["ingest", "shoal.ingest.v1.IngestService", "SERVING"],
        ["analysis", "shoal.analysis.v1.AnalysisService", "SERVING"],
        ["sampler", "shoal.sampler.v1.SamplerService", "NOT_SERVING"],
        ["labeling_bridge", "shoal.labeling_bridge.v1.LabelingBridgeService", "SERVING"],
    ]
    assert ingest == [
        ["", "expected", "read back"],
        ["frames", "12", "12"],
        ["labels", "10", "9"],
        ["inferences", "10", "10"],
        ["embeddings", "12", "12"],
        ["pixel_embeddings", "12", "12"],
    ]
    # the confusion matrix, rows the labeled class and columns the predicted one; the escaped class
    # name reads as it was given
    assert heat == [
        ["label ↓ predicted →", "0", "1", EVIL],
        ["0", "3", "1", "0"],
        ["1", "0", "2", "1"],
        [EVIL, "1", "0", "2"],
    ]


def test_the_text_gives_the_figures(page: _Page) -> None:
    text = " ".join("".join(page.text).split())
    for phrase in (
        "Generated 2026-01-02T03:04:05+00:00.",
        "started in 2.5 s",
        "exit code 0.",
        "accuracy 0.7, macro F1 0.6543, top-2 accuracy 0.9, expected calibration error 0.0421.",
        f"Worst classes by F1: {EVIL}, 1, 0.",
        f"A regression-test segment, release-{EVIL} (the 7 frames of the test split), carries the gate recall of"
        " class 2 ≥ 0.9, which the current model (mlp-oof) passes at 0.95.",
        f"The rule gate-{EVIL} runs METRICS, GATES whenever an upload of an inference set of digits completes",
        "A new model that takes every 2 for a 1 was uploaded as mlp-v2; the rule fired by itself: run ar-1 SUCCEEDED",
        "accuracy 0.6, macro F1 0.55 (12 figures recorded), 0 of 1 gates passed:",
        "The webhook receiver got gates.failed (delivery ar-1/gates.failed, 1 failing gate in its body), checked its"
        " HMAC-SHA256 signature: verified, and answered 200; the run recorded 1 delivery attempt(s), the last"
        " answered 200.",
        "flagged 3 frames; 2 of them are among the 2 labels flipped",
        "(precision 0.6667, recall 1.0)",
        "mean 5-nearest-neighbour cosine distance",
        "AUROC of 0.95; 50% of the top 2 frames are planted",
        "found 1 exact and 4 near-duplicate pairs (3 across the train and test splits)",
        "fitted on 4 of the 4 frames",
        "The model's 3 errors (error rate 0.3,",
        "1 passed, holding 2 errors.",
        f"labeled {EVIL}, mostly predicted 0",
        f"seed segment seeds-{EVIL} of 2 frames",
        "1 of them truly are a 1 predicted as 2 (precision 0.5, and 1 of the 2 such frames in the pool)",
        "would hold 0.4 of them; 50% of the chosen frames are of the seeds' class (random: 20%)",
        f"started the standing campaign standing-{EVIL} on a second unlabeled pool, digits-stream,",
        "cosine similarity of at least 0.88 to a seed and lies at least 0.04 from every frame kept before, until 2"
        " are kept, and deletes the vectors of the frames it drops once its retention, 0 s, has passed. 12 new noisy"
        " redraws",
        "FULL after upload 2 of 3: 9 judged, 2 kept, 0 filtered out, 6 below the threshold, 1 near a kept frame;"
        " 7 dropped frames' vectors deleted.",
        "1 of the kept frames truly are a 1 predicted as 2 (precision 0.5,",
        "Before each of the 2 uploads sent while the campaign was filling, the client chose the frames it would keep"
        " on its own side (score_for_campaign, 2 in all): the frames the server then kept, in the same order.",
        "The offline twin, the campaign's rule run over the same vectors in upload order from an empty sample, kept"
        " 2: not the same frames.",
        f"mask AP 0.61, AP50 0.83, AR@100 0.7 (per class: disc 0.5, {EVIL} 0.72)",
        f"mAP 0.8123, NDS 0.6012 (mATE 0.11 m, mASE 0.07, mAOE 0.05 rad; per class AP: car 0.9, {EVIL} 0.7;",
        "AP over IoU seen from above, at 0.5 and 0.7: 0.75 (0.85 at 0.5, 0.65 at 0.7); over 3-D IoU: 0.7.",
        "Of the 3 flagged objects, 2 are planted errors (precision 0.6667).",
        "Segment-based (1 s): F1 0.9, error rate 0.2; event-based (200 ms collar): F1 0.8, error rate 0.4",
        f"(per class event F1: beep 0.8, {EVIL} 0.75)",
        "Of the 2 flagged intervals, 1 are planted errors (precision 0.5).",
        "det-0: missing label, score 0.1 planted",
        "obj-0: mislocalized (size), score 0.3 not planted",
        f"beep {EVIL}",  # the clips' class colours
    ):
        assert phrase in text, phrase


def test_the_galleries_inline_their_images(page: _Page) -> None:
    inlined = "data:image/png;base64," + base64.b64encode(PNG).decode()
    by_alt = {}
    for img in page.images:
        by_alt.setdefault(img["alt"], []).append(img["src"])
    # the label issue, the outlier, the cluster's example and the campaign's two frames
    assert (
        by_alt["f1"] == [inlined, inlined] and by_alt["p1"] == [inlined] and by_alt["q1"] == by_alt["q2"] == [inlined]
    )
    assert by_alt["w1"] == [inlined]  # the standing campaign's kept frame
    assert by_alt["s1 p0"] == [inlined]  # the mask label issue, drawn over its frame
    assert by_alt["st1"] == [inlined]  # the segmentation label issue, its flagged pixels tinted
    assert by_alt["clip-1.wav"] == [inlined]  # the clip's picture: waveform, spectrogram and intervals
    # a file that cannot be read leaves its figure without an image, not the page without a report
    assert by_alt[EVIL] == [""]
    assert not any(str(src).startswith(("http:", "https:", "file:")) for img in page.images for src in [img["src"]])


def test_the_map_shows_every_point_twice(page: _Page) -> None:
    assert sorted(page.svgs["map-by-class"]) == sorted(
        ["f1: label 1", "f2: label 2", "p1: no label", f"{EVIL}: label 0"]
    )
    # by issue, the normal frames first and the issues drawn over them
    assert page.svgs["map-by-issue"] == ["f2: normal", "f1: label issue", f"{EVIL}: label issue", "p1: planted outlier"]


def test_a_flagged_point_cloud_is_drawn_from_above(page: _Page) -> None:
    # the labeled and predicted footprints, and the flagged objects over them, each named on hover
    assert page.svgs["bev-0"] == [
        f"label obj-0: {EVIL}",
        "prediction det-0: car 0.9",
        "flagged det-0: missing label, score 0.1",
        "flagged obj-0: mislocalized (size), score 0.3",
    ]


def test_the_template_is_package_data() -> None:
    """Every file of the demo besides its modules, the page's template among them, ships in the
    wheel: a package-data pattern of ``shoal.demo`` matches it."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "shoal.demo" in config["packages"]
    patterns = config["package-data"].get("shoal.demo", [])
    root = REPO / "services" / "demo"
    files = [p.name for p in root.iterdir() if p.is_file() and p.suffix != ".py"]
    assert "report.html" in files and all(any(fnmatch.fnmatch(f, pat) for pat in patterns) for f in files), (
        files,
        patterns,
    )
