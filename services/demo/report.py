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
from dataclasses import dataclass, field
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
    #: frames of cuboid label issues seen from above: frame_id, range (metres), points (x, y, above the
    #: ground), labels and predictions (object_id, class, [score], corners) and the flagged objects
    #: (object_id, predicted, kind, mislocalization, score, planted)
    cuboids: list[dict[str, Any]]
    #: clips with sound-event label issues: frame_id, image, issues (kind, score, planted), legend
    #: (class name, colour)
    sound_events: list[dict[str, Any]]
    #: the standing campaign's kept frames in the order kept, as ``campaign``
    standing: list[dict[str, Any]] = field(default_factory=list)


def render_report(summary: dict[str, Any], figures: Figures) -> str:
    """The report page for ``summary`` (as written to ``summary.json``) and its ``figures``."""
    ing, m, li = summary["ingest"], summary["metrics"], summary["label_issues"]
    ol, fc, cp = summary["outliers"], summary["failure_clusters"], summary["campaign"]
    seg, sem = summary["instance_segmentation"], summary["semantic_segmentation"]
    cub, snd = summary["cuboids_3d"], summary["sound_events"]
    nu, bev = cub["nuscenes"], cub["bev_ap"]
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
        automation=_automation(summary["automation"]),
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
        standing_campaign=_standing(summary["standing_campaign"], figures.standing),
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
        cuboid_frames=cub["frames"],
        cuboid_labeled=cub["labeled_objects"],
        cuboid_predicted=cub["predicted_objects"],
        cuboid_map=nu["map"],
        cuboid_nds=nu["nds"],
        cuboid_mate=nu["mate"],
        cuboid_mase=nu["mase"],
        cuboid_maoe=nu["maoe"],
        cuboid_per_class=html.escape(", ".join(f"{k} {v}" for k, v in nu["per_class_ap"].items())),
        bev_thresholds=" and ".join(f"{t:g}" for t in bev["iou_thresholds"]),
        bev_map=bev["map"],
        bev_map_at=", ".join(f"{v} at {t:g}" for t, v in zip(bev["iou_thresholds"], bev["map_at"], strict=True)),
        iou_3d_map=cub["iou_3d_map"],
        cuboid_issue_rows=_cuboid_issue_rows(cub["label_issues"]["by_kind"]),
        cuboid_flagged=cub["label_issues"]["flagged"],
        cuboid_hits=cub["label_issues"]["planted_flagged"],
        cuboid_precision=cub["label_issues"]["precision"],
        cuboid_gallery=_cuboid_gallery(figures.cuboids),
        clip_count=snd["clips"],
        clip_seconds=snd["seconds"],
        clip_labeled=snd["labeled_events"],
        clip_predicted=snd["predicted_events"],
        segment_f1=snd["segment_based"]["f1"],
        segment_er=snd["segment_based"]["error_rate"],
        event_f1=snd["event_based"]["f1"],
        event_er=snd["event_based"]["error_rate"],
        event_per_class=html.escape(", ".join(f"{k} {v}" for k, v in snd["per_class_event_f1"].items())),
        sound_issue_rows=_sound_issue_rows(snd["label_issues"]["by_kind"]),
        sound_flagged=snd["label_issues"]["flagged"],
        sound_hits=snd["label_issues"]["planted_flagged"],
        sound_precision=snd["label_issues"]["precision"],
        sound_gallery=_sound_gallery(figures.sound_events),
        reflection="".join(f"<li><code>{html.escape(s)}</code></li>" for s in summary["reflection"]),
    )


def _automation(au: dict[str, Any]) -> str:
    """The rule, the run it made for the new model, its gates and the webhook delivery as the receiver saw it."""
    e = html.escape
    gate, base, hook = au["gate"], au["baseline"], au["webhook"]
    state = "ok" if au["state"] == "SUCCEEDED" else "bad"
    verdict = "passes" if base["passed"] else "fails"
    bad = au["degraded"]
    intro = (
        f"<p>A regression-test segment, <code>{e(au['segment'])}</code> (the {au['segment_frames']} frames of the "
        f"test split), carries the gate {e(gate['metric'])} of class {gate['class_id']} &ge; {gate['minimum']}, "
        f"which the current model ({e(base['inference_set'])}) {verdict} at {base['value']}. The rule "
        f"<code>{e(au['rule'])}</code> runs {e(', '.join(au['actions']))} whenever an upload of an inference set of "
        f"<code>{e(au['dataset'])}</code> completes, and calls a webhook when a gate fails. A new model that takes "
        f"every {bad['class_id']} for a {bad['predicted_as']} was uploaded as <code>{e(au['inference_set'])}</code>; "
        f"the rule fired by itself: run <code>{e(au['run_id'])}</code> <span class='{state}'>{e(au['state'])}</span> "
        f"(attempt {au['attempts']}; the whole step, upload included, took {au['seconds']} s), accuracy "
        f"{au['accuracy']}, macro F1 {au['macro_f1']} ({au['metrics_recorded']} figures recorded), "
        f"{au['gates_passed']} of {au['gates_evaluated']} gates passed:</p>"
    )
    head = "<tr><th>segment</th><th>gate</th><th>minimum</th><th>value</th><th>frames</th><th>result</th></tr>"
    rows = "".join(
        f"<tr><td>{e(g['segment'])}</td><td>{e(g['metric'])}"
        + (f" of class {g['class_id']}" if g["class_id"] is not None else "")
        + f"</td><td>{g['minimum']}</td><td>{g['value']}</td><td>{g['frames']}</td>"
        f"<td class='{'ok' if g['passed'] else 'bad'}'>{'pass' if g['passed'] else 'FAIL'}</td></tr>"
        for g in au["gates"]
    )
    signed = "ok" if hook["signature_verified"] else "bad"
    delivery = (
        f"<p>The webhook receiver got <code>{e(hook['event'])}</code> (delivery <code>{e(hook['delivery_id'])}</code>, "
        f"{hook['reported_gates_failed']} failing gate in its body), checked its HMAC-SHA256 signature: "
        f"<span class='{signed}'>{'verified' if hook['signature_verified'] else 'not verified'}</span>, and answered "
        f"{hook['status']}; the run recorded {hook['attempts']} delivery attempt(s), the last answered "
        f"{hook['recorded_status']}.</p>"
        if hook["received"]
        else "<p class='bad'>The webhook was not called.</p>"
    )
    return f"{intro}<table id='automation-gates'>{head}{rows}</table>{delivery}"


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


def _cuboid_issue_rows(kinds: dict[str, dict[str, Any]]) -> str:
    head = (
        "<tr><th>kind</th><th>planted</th><th>flagged as its issue type</th><th>as what is off</th>"
        "<th>planted first</th></tr>"
    )
    rows = "".join(
        f"<tr><td>{html.escape(name.replace('_', ' '))}</td><td>{k['planted']}</td><td>{k['found']}</td>"
        f"<td>{k['found_as_planted']}</td><td>{k['planted_in_first']}</td></tr>"
        for name, k in kinds.items()
    )
    return f"<table id='cuboid-issues'>{head}{rows}</table>"


#: the colours of the bird's-eye views: points above the ground and the ground, labels, predictions, flags
BEV_COLOURS = {"object": "#1d2733", "ground": "#c9d1db", "label": "#1a7f37", "prediction": "#e8590c",
               "flag": "#cf222e"}  # fmt: skip


def _bev(svg_id: str, fig: dict[str, Any], centre: tuple[float, float], half: float, size: float) -> str:
    """A frame seen from above as inline SVG, ``half`` metres around ``centre`` each way: x (forward)
    up, y (left) to the left; points, labeled footprints (solid), predicted ones (dashed), flagged
    objects outlined, the vehicle as a grey arrow."""
    scale = size / (2 * half)
    cx, cy = centre

    def at(x: float, y: float) -> str:
        return f"{size / 2 - (y - cy) * scale:.1f},{size / 2 - (x - cx) * scale:.1f}"

    def polygon(corners: list[list[float]], colour: str, tip: str, extra: str = "") -> str:
        return (
            f"<polygon points='{' '.join(at(x, y) for x, y in corners)}' fill='none' stroke='{colour}' {extra}>"
            f"<title>{html.escape(tip)}</title></polygon>"
        )

    dot = 1.1 if half > 15 else 1.8
    dots = "".join(
        f"<circle cx='{size / 2 - (y - cy) * scale:.1f}' cy='{size / 2 - (x - cx) * scale:.1f}'"
        f" r='{dot if up else dot * 0.6:.1f}' fill='{BEV_COLOURS['object' if up else 'ground']}'/>"
        for x, y, up in fig["points"]
        if abs(x - cx) <= half and abs(y - cy) <= half
    )
    shapes = {(False, o["object_id"]): o for o in fig["labels"]} | {
        (True, o["object_id"]): o for o in fig["predictions"]
    }
    parts = [dots]
    parts += [polygon(o["corners"], BEV_COLOURS["label"], f"label {o['object_id']}: {o['class']}", "stroke-width='1.5'")
              for o in fig["labels"]]  # fmt: skip
    parts += [
        polygon(o["corners"], BEV_COLOURS["prediction"], f"prediction {o['object_id']}: {o['class']} {o['score']}",
                "stroke-width='1.5' stroke-dasharray='3 2'")
        for o in fig["predictions"]
    ]  # fmt: skip
    for f in fig["flagged"]:
        shape = shapes.get((f["predicted"], f["object_id"]))
        if shape is not None:
            what = f["kind"].replace("_", " ") + (f" ({f['mislocalization']})" if f.get("mislocalization") else "")
            tip = f"flagged {f['object_id']}: {what}, score {f['score']}"
            parts.append(polygon(shape["corners"], BEV_COLOURS["flag"], tip, "stroke-width='3' stroke-opacity='0.8'"))
    ego = f"<polygon points='{at(2, 0)} {at(-1.5, 1.2)} {at(-1.5, -1.2)}' fill='#57606a'/>"
    return (
        f"<svg id='{svg_id}' class='bev' xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {size:.0f} {size:.0f}'"
        f" width='{size:.0f}' height='{size:.0f}' role='img' aria-label='{html.escape(fig['frame_id'])} from above'>"
        f"<rect width='100%' height='100%' fill='#fbfcfd' stroke='#dde3ea'/>{''.join(parts)}{ego}</svg>"
    )


def _cuboid_gallery(figures: list[dict[str, Any]]) -> str:
    keys = "".join(
        f"<span><svg width='14' height='10'><rect x='1' y='1' width='12' height='8' fill='none' stroke='{c}'"
        f" stroke-width='2'/></svg> {name}</span>"
        for name, c in (("label", BEV_COLOURS["label"]), ("prediction", BEV_COLOURS["prediction"]),
                        ("flagged", BEV_COLOURS["flag"]))
    )  # fmt: skip
    cells = []
    for i, fig in enumerate(figures):
        whole = float(fig["range"])
        focus = tuple(fig.get("focus") or (0.0, 0.0))
        views = _bev(f"bev-{i}", fig, (0.0, 0.0), whole, 300.0) + _bev(f"bev-{i}-zoom", fig, focus, 8.0, 300.0)
        flags = "".join(
            f"<li>{html.escape(f['object_id'])}: {html.escape(f['kind'].replace('_', ' '))}"
            + (f" ({html.escape(f['mislocalization'])})" if f.get("mislocalization") else "")
            + f", score {f['score']} <span class='{'ok' if f['planted'] else 'bad'}'>"
            + ("planted" if f["planted"] else "not planted")
            + "</span></li>"
            for f in fig["flagged"]
        )
        cells.append(
            f"<figure><figcaption>{html.escape(fig['frame_id'])} from above: the whole cloud ({whole:g} m each way)"
            f" and 8 m around its first flag</figcaption><div class='maps'>{views}</div><ul>{flags}</ul></figure>"
        )
    return f"<div class='maps' id='cuboid-gallery'>{''.join(cells)}</div><div class='legend'>{keys}</div>"


def _sound_issue_rows(kinds: dict[str, dict[str, Any]]) -> str:
    head = "<tr><th>kind</th><th>planted</th><th>flagged</th><th>planted among them</th><th>planted first</th></tr>"
    rows = "".join(
        f"<tr><td>{html.escape(name.replace('_', ' '))}</td><td>{k['planted']}</td><td>{k['flagged']}</td>"
        f"<td>{k['found']}</td><td>{k['planted_in_first']} of the first {k['planted']}</td></tr>"
        for name, k in kinds.items()
    )
    return f"<table id='sound-issues'>{head}{rows}</table>"


def _sound_gallery(items: list[dict[str, Any]]) -> str:
    cells = []
    for it in items:
        lines = "<br>".join(
            f"{html.escape(x['kind'].replace('_', ' '))}, score {x['score']}:"
            f" <span class='{'ok' if x['planted'] else 'bad'}'>{'planted' if x['planted'] else 'not planted'}</span>"
            for x in it["issues"]
        )
        cells.append(
            f"<figure class='wide'><img src='{_inline_image(it['image'])}' width='480'"
            f" alt='{html.escape(it['frame_id'])}'>"
            f"<figcaption>{html.escape(it['frame_id'])}<br>{lines}</figcaption></figure>"
        )
    keys = "".join(
        f"<span><svg width='14' height='10'><rect width='14' height='10' fill='{html.escape(colour)}'/></svg>"
        f" {html.escape(name)}</span>"
        for name, colour in (items[0].get("legend", []) if items else [])
    )
    return f"<div class='gallery' id='sound-gallery'>{''.join(cells)}</div><div class='legend'>{keys}</div>"


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


def _standing(sc: dict[str, Any], kept: list[dict[str, Any]]) -> str:
    """What the standing campaign sought, its counts, the two equalities and its kept frames."""
    e = html.escape

    def same(equal: bool, what: str) -> str:
        return f"<span class='ok'>{what}</span>" if equal else "<span class='bad'>not the same frames</span>"

    full = f" after upload {sc['full_after_upload']} of {sc['uploads_streamed']}" if sc["full_after_upload"] else ""
    intro = (
        f"<p>The same seed segment <code>{e(sc['seed_segment'])}</code> ({sc['seeds']} digits labeled "
        f"{e(sc['pattern'])}) started the standing campaign <code>{e(sc['name'])}</code> on a second unlabeled "
        f"pool, <code>{e(sc['pool'])}</code>, before any frame was sent to it. It keeps a frame whose "
        f"{e(sc['embedding_space'])} vector has a cosine similarity of at least {sc['similarity_threshold']} to a "
        f"seed and lies at least {sc['min_distance']} from every frame kept before, until {sc['budget']} are kept, "
        f"and deletes the vectors of the frames it drops once its retention, {sc['retention_seconds']:g} s, has "
        "passed. "
        f"{sc['frames_streamed']} new noisy redraws of the test split's digits then streamed into the pool in "
        f"{sc['uploads_streamed']} uploads, each sent once the one before was judged.</p>"
    )
    state = "ok" if sc["state"] == "FULL" else "bad"
    counts = (
        f"<p id='standing-counts'><span class='{state}'>{e(sc['state'])}</span>{full}: {sc['judged']} judged, "
        f"{sc['kept']} kept, {sc['filtered']} filtered out, {sc['below_threshold']} below the threshold, "
        f"{sc['near_kept']} near a kept frame; {sc['vectors_deleted']} dropped frames' vectors deleted. "
        f"{sc['in_pattern']} of the kept frames truly are a {e(sc['pattern'])} (precision {sc['precision']}, and "
        f"{sc['in_pattern']} of the {sc['pattern_frames_in_stream']} such frames in the stream; random "
        f"{sc['random_precision']}); {sc['class_precision']:.0%} are of the seeds' class (random: "
        f"{sc['class_random_precision']:.0%}).</p>"
    )
    checks = (
        f"<p>Before each of the {sc['client_side_batches']} uploads sent while the campaign was filling, the client "
        f"chose the frames it would keep on its own side (<code>score_for_campaign</code>, {sc['client_side_kept']} in "
        f"all): {same(sc['client_side_equal'], 'the frames the server then kept, in the same order')}. The offline "
        f"twin, the campaign's rule run over the same vectors in upload order from an empty sample, kept "
        f"{sc['offline_twin_kept']}: {same(sc['offline_twin_equal'], 'the same frames, in the same order')}. The "
        f"kept frames, in the order kept:</p>"
    )
    return intro + counts + checks + _campaign_gallery(kept, gallery_id="standing-gallery")


def _campaign_gallery(items: list[dict[str, Any]], gallery_id: str = "campaign-gallery") -> str:
    cells = []
    for it in items:
        mark, what = ("ok", "in the pattern") if it["in_pattern"] else ("muted", "not in the pattern")
        caption = (
            f"#{it['rank']} truly <b>{it['true']}</b>, predicted <b>{it['predicted']}</b><br>"
            f"<span class='{mark}'>{what}</span>"
        )
        cells.append(_figure(it["media_uri"], it["frame_id"], caption))
    return f"<div class='gallery' id='{gallery_id}'>{''.join(cells)}</div>"


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
