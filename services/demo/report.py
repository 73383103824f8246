"""The demo's report: ``summary.json`` and the frames behind it as one self-contained HTML page
(images inlined as data: URIs, the embedding map as inline SVG, nothing fetched from elsewhere).

The page is the template ``report.html`` beside this module (package data), filled with
:class:`string.Template`; the repeated parts (tables, galleries, maps) are built here. Every
name that comes from the data (classes, segments, frame ids, strategies) is escaped.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Collection
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import unquote, urlparse

from shoal.demo.names import SERVICES

#: one colour per class (0-9), and the colours of the map by issue
CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")  # fmt: skip
UNLABELED = "#1d2733"
ISSUE_COLOURS = {"normal": "#c9d1db", "label issue": "#e8590c", "planted outlier": "#6f1ab1"}


@dataclass(frozen=True)
class Figures:
    """What the report shows beyond ``summary.json``: the frames of each gallery and the map's points."""

    #: the label issues, least self-confident first: frame_id, media_uri, given, suggested,
    #: self_confidence, suggested_probability, injected
    label_issues: list[dict[str, Any]]
    #: the highest outlier scores first: frame_id, media_uri, rank, score, label, neighbor_label, planted
    outliers: list[dict[str, Any]]
    #: every frame of the embedding map: (frame id, x, y, label class or None)
    points: list[tuple[str, float, float, int | None]]
    #: the frames the label-issue job flagged, and the planted images
    issue_ids: Collection[str]
    planted_ids: Collection[str]
    #: per failure cluster, its examples read back through its segment: (frame id, media uri, label, prediction)
    cluster_examples: list[list[tuple[str, str, int, int]]]
    #: the campaign's frames in rank order: frame_id, media_uri, rank, true, predicted, in_pattern
    campaign: list[dict[str, Any]]
    #: the mask label issues shown, each kind's first three: frame_id, object_id, kind, score, planted, image
    shapes: list[dict[str, Any]]
    #: the first segmentation label issues: frame_id, planted, flagged_pixels, given, suggested, image
    streets: list[dict[str, Any]]


def render_report(summary: dict[str, Any], figures: Figures) -> str:
    """The report page for ``summary`` (as written to ``summary.json``) and its ``figures``."""
    ing, m, li = summary["ingest"], summary["metrics"], summary["label_issues"]
    ol, fc, cp = summary["outliers"], summary["failure_clusters"], summary["campaign"]
    seg, sem = summary["instance_segmentation"], summary["semantic_segmentation"]
    page = Template(resources.files(__package__).joinpath("report.html").read_text(encoding="utf-8"))
    return page.substitute(
        generated_at=html.escape(summary["generated_at"]),
        startup_seconds=summary["server"]["startup_seconds"],
        exit_code=summary["server"]["exit_code"],
        service_rows=_service_rows(summary["services"]),
        labeled_frames=ing["expected"]["labels"],
        flipped_labels=ing["flipped_labels"],
        planted_outliers=ing["planted_outliers"],
        upload_seconds=ing["upload_seconds"],
        ingest_rows=_ingest_rows(ing),
        accuracy=m["accuracy"],
        macro_f1=m["macro_f1"],
        top_k=m["top_k"],
        top_k_accuracy=m["top_k_accuracy"],
        expected_calibration_error=m["expected_calibration_error"],
        worst_classes=html.escape(", ".join(m["worst_classes"])),
        heat_map=_heat_map(m),
        issues_found=li["found"],
        issues_correct=li["correct"],
        issues_injected=li["injected"],
        issues_precision=li["precision"],
        issues_recall=li["recall"],
        label_issue_gallery=_label_issue_gallery(figures.label_issues),
        outlier_k=html.escape(str(ol["k"])),
        outliers_planted=ol["planted"],
        outliers_genuine=ol["genuine"],
        outlier_auroc=ol["auroc"],
        outlier_top_k_precision=f"{ol['top_k_precision']:.0%}",
        exact_duplicate_pairs=ol["exact_duplicate_pairs"],
        near_duplicate_pairs=ol["near_duplicate_pairs"],
        cross_split_pairs=ol["cross_split_pairs"],
        outlier_gallery=_outlier_gallery(figures.outliers),
        map_fitted_on=summary["map"]["fitted_on"],
        map_frames=summary["map"]["frames"],
        maps=_maps(figures.points, figures.issue_ids, figures.planted_ids),
        model_errors=fc["errors"],
        error_rate=fc["error_rate"],
        clusters_found=_clusters_found(fc),
        cluster_gallery=_cluster_gallery(fc["clusters"], figures.cluster_examples),
        pattern=html.escape(cp["pattern"]),
        seed_segment=html.escape(cp["seed_segment"]),
        seeds=cp["seeds"],
        strategy=html.escape(cp["strategy"]),
        selected=cp["selected"],
        pool_frames=cp["pool_frames"],
        campaign_segment=html.escape(cp["segment"]),
        in_pattern=cp["in_pattern"],
        campaign_precision=cp["precision"],
        pattern_frames_in_pool=cp["pattern_frames_in_pool"],
        random_precision=cp["random_precision"],
        class_precision=f"{cp['class_precision']:.0%}",
        class_random_precision=f"{cp['class_random_precision']:.0%}",
        campaign_gallery=_campaign_gallery(figures.campaign),
        shape_frames=seg["frames"],
        mask_ap=seg["mask_ap"],
        mask_ap50=seg["mask_ap50"],
        mask_ar100=seg["mask_ar100"],
        mask_per_class=html.escape(", ".join(f"{k} {v}" for k, v in seg["per_class_ap"].items())),
        shape_planted=max(seg["planted"].values(), default=0),
        shape_issue_rows=_shape_issue_rows(seg["label_issues"]),
        shape_gallery=_shape_gallery(figures.shapes),
        street_frames=sem["frames"],
        street_miou=sem["mean_iou"],
        street_pixel_accuracy=sem["pixel_accuracy"],
        street_fwiou=sem["frequency_weighted_iou"],
        street_per_class=html.escape(", ".join(f"{k} {v}" for k, v in sem["per_class_iou"].items())),
        street_planted=html.escape(", ".join(f"{v} {k.replace('_', ' ')}" for k, v in sem["planted"].items())),
        street_flagged=sem["label_issues"]["flagged"],
        street_hits=sem["label_issues"]["planted_flagged"],
        street_planted_total=sem["label_issues"]["planted"],
        street_precision=sem["label_issues"]["precision"],
        street_recall=sem["label_issues"]["recall"],
        street_first=sem["label_issues"]["planted_in_first"],
        street_gallery=_street_gallery(figures.streets),
        reflection="".join(f"<li><code>{html.escape(s)}</code></li>" for s in summary["reflection"]),
    )


def _shape_issue_rows(kinds: dict[str, dict[str, Any]]) -> str:
    head = "<tr><th>kind</th><th>planted</th><th>flagged</th><th>planted among them</th><th>planted first</th></tr>"
    rows = "".join(
        f"<tr><td>{html.escape(name.replace('_', ' '))}</td><td>{k['planted']}</td><td>{k['flagged']}</td>"
        f"<td>{k['planted_flagged']}</td><td>{k['planted_in_first']} of the first {k['planted']}</td></tr>"
        for name, k in kinds.items()
    )
    return f"<table id='shape-issues'>{head}{rows}</table>"


def _shape_gallery(items: list[dict[str, Any]]) -> str:
    cells = []
    for it in items:
        mark = "ok" if it["planted"] else "bad"
        caption = (
            f"{html.escape(it['kind'].replace('_', ' '))}, score {it['score']}<br>"
            f"<span class='{mark}'>{'planted' if it['planted'] else 'not planted'}</span>"
        )
        cells.append(_figure(it["image"], f"{it['frame_id']} {it['object_id']}", caption, size=96))
    return f"<div class='gallery' id='shape-gallery'>{''.join(cells)}</div>"


def _street_gallery(items: list[dict[str, Any]]) -> str:
    cells = []
    for it in items:
        mark = "ok" if it["planted"] else "bad"
        caption = (
            f"{it['flagged_pixels']} pixels flagged<br>"
            f"<span class='{mark}'>{'planted' if it['planted'] else 'not planted'}</span>"
        )
        cells.append(_figure(it["image"], it["frame_id"], caption, size=96))
    return f"<div class='gallery' id='street-gallery'>{''.join(cells)}</div>"


def _service_rows(services: dict[str, str]) -> str:
    return "\n".join(
        f"<tr><td>{html.escape(name)}</td><td><code>{html.escape(SERVICES[name])}</code></td>"
        f"<td class='{'ok' if status == 'SERVING' else 'bad'}'>{html.escape(status)}</td></tr>"
        for name, status in services.items()
    )


def _ingest_rows(ing: dict[str, Any]) -> str:
    return "\n".join(
        f"<tr><td>{k}</td><td>{ing['expected'][k]}</td>"
        f"<td class='{'ok' if ing[k] == ing['expected'][k] else 'bad'}'>{ing[k]}</td></tr>"
        for k in ing["expected"]
    )


def _heat_map(metrics: dict[str, Any]) -> str:
    names = metrics["classes"]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = []
    for name, row in zip(names, metrics["confusion_matrix"], strict=True):
        total = sum(row) or 1
        cells = []
        for j, v in enumerate(row):
            share = v / total
            hue = 140 if names[j] == name else 0  # green diagonal, red confusions
            cells.append(f"<td style='background: hsla({hue}, 70%, 45%, {share:.3f})' title='{share:.1%}'>{v}</td>")
        body.append(f"<tr><th>{html.escape(name)}</th>{''.join(cells)}</tr>")
    return f"<table class='heat'><tr><th>label ↓ predicted →</th>{head}</tr>{''.join(body)}</table>"


def _inline_image(uri: str) -> str:
    """The image as a data: URI, so the report stands alone (empty when the file cannot be read)."""
    path = Path(unquote(urlparse(uri).path))
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _figure(uri: str, frame_id: str, caption: str, size: int = 64) -> str:
    """One frame of a gallery: its image, inlined, over ``caption`` (HTML)."""
    return (
        f"<figure><img src='{_inline_image(uri)}' width='{size}' height='{size}' alt='{html.escape(frame_id)}'>"
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _label_issue_gallery(items: list[dict[str, Any]]) -> str:
    cells = []
    for it in items:
        mark = "ok" if it["injected"] else "bad"
        caption = (
            f"given <b>{it['given']}</b> → suggested <b>{it['suggested']}</b><br>"
            f"p(given) {it['self_confidence']}, p(suggested) {it['suggested_probability']}<br>"
            f"<span class='{mark}'>{'injected flip' if it['injected'] else 'not injected'}</span>"
        )
        cells.append(_figure(it["media_uri"], it["frame_id"], caption))
    return f"<div class='gallery' id='label-issue-gallery'>{''.join(cells)}</div>"


def _outlier_gallery(items: list[dict[str, Any]]) -> str:
    cells = []
    for it in items:
        if it["planted"]:
            what = f"<span class='ok'>planted: {html.escape(it['planted'])}</span>"
        else:
            label = "unlabeled" if it["label"] is None else f"labeled {it['label']}"
            what = f"<span class='muted'>a digit, {label}</span>"
        near = "" if it["neighbor_label"] is None else f"<br>neighbours labeled {it['neighbor_label']}"
        caption = f"#{it['rank']} score <b>{it['score']}</b><br>{what}{near}"
        cells.append(_figure(it["media_uri"], it["frame_id"], caption))
    return f"<div class='gallery' id='outlier-gallery'>{''.join(cells)}</div>"


def _clusters_found(fc: dict[str, Any]) -> str:
    if not fc["clusters"]:
        return (
            "None passed: the flipped labels are spread at random over every class, and the model's own errors are"
            " few and scattered, so no region of the space holds more errors than chance."
        )
    return (
        f"{len(fc['clusters'])} passed, holding {fc['clustered_errors']} errors. Each is saved as a segment;"
        " examples read back through it:"
    )


def _cluster_gallery(clusters: list[dict[str, Any]], examples: list[list[tuple[str, str, int, int]]]) -> str:
    if not clusters:
        return "<p class='muted'>No cluster of errors stood out from chance.</p>"
    parts = []
    for c, rows in zip(clusters, examples, strict=True):
        cells = "".join(_figure(uri, fid, f"labeled {label}, predicted {pred}") for fid, uri, label, pred in rows)
        parts.append(
            f"<h3>Cluster {c['cluster']}: segment <code>{html.escape(c['segment'])}</code></h3>"
            f"<p>{html.escape(c['description'])}</p><div class='gallery'>{cells}</div>"
        )
    return f"<div id='failure-clusters'>{''.join(parts)}</div>"


def _campaign_gallery(items: list[dict[str, Any]]) -> str:
    cells = []
    for it in items:
        mark, what = ("ok", "in the pattern") if it["in_pattern"] else ("muted", "not in the pattern")
        caption = (
            f"#{it['rank']} truly <b>{it['true']}</b>, predicted <b>{it['predicted']}</b><br>"
            f"<span class='{mark}'>{what}</span>"
        )
        cells.append(_figure(it["media_uri"], it["frame_id"], caption))
    return f"<div class='gallery' id='campaign-gallery'>{''.join(cells)}</div>"


def _scatter(svg_id: str, title: str, dots: list[tuple[float, float, str, str]], legend: list[tuple[str, str]]) -> str:
    """An inline SVG scatter plot of (x, y, colour, tooltip) in the given order (later on top)."""
    size, pad = 420.0, 12.0
    xs = [d[0] for d in dots] or [0.0]
    ys = [d[1] for d in dots] or [0.0]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (size - 2 * pad) / ((x1 - x0) or 1.0)
    sy = (size - 2 * pad) / ((y1 - y0) or 1.0)
    circles = "".join(
        f"<circle cx='{pad + (x - x0) * sx:.1f}' cy='{size - pad - (y - y0) * sy:.1f}' r='2.4' fill='{colour}'>"
        f"<title>{html.escape(tip)}</title></circle>"
        for x, y, colour, tip in dots
    )
    keys = "".join(
        f"<span><svg width='10' height='10'><circle cx='5' cy='5' r='4' fill='{colour}'/></svg> {html.escape(name)}"
        "</span>"
        for name, colour in legend
    )
    return (
        f"<figure class='map'><figcaption>{html.escape(title)}</figcaption>"
        f"<svg id='{svg_id}' class='map' xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {size:.0f} {size:.0f}'"
        f" width='{size:.0f}' height='{size:.0f}' role='img' aria-label='{html.escape(title)}'>"
        f"<rect width='100%' height='100%' fill='#fbfcfd' stroke='#dde3ea'/>{circles}</svg>"
        f"<div class='legend'>{keys}</div></figure>"
    )


def _maps(
    points: list[tuple[str, float, float, int | None]], issue_ids: Collection[str], planted_ids: Collection[str]
) -> str:
    """The embedding map twice: coloured by class label, and by issue (label issue, planted
    outlier, normal)."""
    planted, issues = set(planted_ids), set(issue_ids)
    by_class = [
        (x, y, UNLABELED if c is None else CLASS_COLOURS[c % 10], f"{f}: {'no label' if c is None else f'label {c}'}")
        for f, x, y, c in points
    ]

    def issue(frame_id: str) -> str:
        return "planted outlier" if frame_id in planted else "label issue" if frame_id in issues else "normal"

    rank = {"normal": 0, "label issue": 1, "planted outlier": 2}  # issues drawn over the normal frames
    by_issue = sorted(((x, y, issue(f), f) for f, x, y, _ in points), key=lambda d: rank[d[2]])
    class_legend = [(str(c), CLASS_COLOURS[c]) for c in range(10)] + [("no label (planted)", UNLABELED)]
    counts = {k: sum(1 for d in by_issue if d[2] == k) for k in rank}
    return (
        "<div class='maps'>"
        + _scatter("map-by-class", "coloured by class label", by_class, class_legend)
        + _scatter(
            "map-by-issue",
            "coloured by issue",
            [(x, y, ISSUE_COLOURS[k], f"{f}: {k}") for x, y, k, f in by_issue],
            [(f"{k} ({counts[k]})", ISSUE_COLOURS[k]) for k in rank],
        )
        + "</div>"
    )
