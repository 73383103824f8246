"""sed_eval's sound-event metrics on event lists given as plain lists, run in sed_eval's own venv.

sed_eval 0.2.1 imports dcase_util, which imports ``pkg_resources`` (gone from the setuptools of the project's
venv), so it lives in ``.cache/sed-eval-venv`` (made by ``scripts/ensure-sed-eval.sh``). :func:`run` writes the
clips as JSON and runs this file with that venv's Python; there :func:`reference_results` feeds every clip,
in order, to one ``SegmentBasedMetrics`` and one ``EventBasedMetrics`` per configuration asked for and
returns their ``results()``.

The payload: ``labels`` (class names, in class order), ``clips`` (each ``{"reference": [[onset, offset,
class], ...], "estimated": [...], "duration": seconds or null}``), ``segment`` (keyword arguments of
``SegmentBasedMetrics``, one dict per configuration) and ``event`` (those of ``EventBasedMetrics``).

This module needs only the standard library, so that both venvs can import it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def ensure(install: bool = True) -> Path | None:
    """The sed_eval venv's Python: installed by the script when ``install`` and missing or stale (about 10 s
    with uv, from PyPI); None when it is not there and cannot be made."""
    from tests.harness import reference_venv  # here: this module also runs as a script in the reference's venv

    return reference_venv.ensure("ensure-sed-eval.sh", "sed-eval-venv", install=install)


def run(payload: dict[str, Any], *, python: Path, timeout: float = 3600) -> dict[str, Any]:
    """:func:`reference_results` of ``payload`` in the sed_eval venv (``python``), in a process of its own."""
    with tempfile.TemporaryDirectory(prefix="sed-eval-") as work:
        source, answer = Path(work) / "in.json", Path(work) / "out.json"
        source.write_text(json.dumps(payload))
        cmd = [str(python), "-W", "ignore", str(Path(__file__).resolve()), str(source), str(answer)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"sed_eval failed ({done.returncode}):\n{done.stderr[-5000:]}")
        return json.loads(answer.read_text())  # type: ignore[no-any-return]


def reference_results(payload: dict[str, Any]) -> dict[str, Any]:
    """sed_eval's ``results()`` of every configuration in ``payload`` (in the sed_eval venv), with the seconds
    each took (building the event lists included, importing sed_eval not)."""
    import sed_eval

    labels = payload["labels"]

    def events(rows: list[list[Any]]) -> list[dict[str, Any]]:
        return [{"event_label": labels[c], "onset": on, "offset": off} for on, off, c in rows]

    clips = [(events(c["reference"]), events(c["estimated"]), c.get("duration")) for c in payload["clips"]]
    out: dict[str, Any] = {"segment": [], "event": [], "segment_seconds": [], "event_seconds": []}
    for kwargs in payload.get("segment", []):
        started = time.perf_counter()
        metrics = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=labels, **kwargs)
        for reference, estimated, duration in clips:
            metrics.evaluate(reference, estimated, evaluated_length_seconds=duration)
        out["segment"].append(metrics.results())
        out["segment_seconds"].append(time.perf_counter() - started)
    for kwargs in payload.get("event", []):
        started = time.perf_counter()
        metrics = sed_eval.sound_event.EventBasedMetrics(event_label_list=labels, **kwargs)
        for reference, estimated, _ in clips:
            metrics.evaluate(reference, estimated)
        out["event"].append(metrics.results())
        out["event_seconds"].append(time.perf_counter() - started)
    return out


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str]) -> None:
    source, answer = Path(argv[0]), Path(argv[1])
    out = reference_results(json.loads(source.read_text()))
    out["peak_rss_mib"] = round(_peak_rss_mib())
    answer.write_text(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
