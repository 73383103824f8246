"""Sound events made of tones, a simulated detector that listens to them, and label errors planted in
their labels: the data of the interval label-issue tests and benchmark.

Each class is a pure tone of its own frequency. A clip is white noise (its level varies from clip to
clip) with tone events added, each with a random amplitude and 10 ms ramps; events of different classes
may overlap, events of one class do not. The detector measures each class's frequency in 64 ms frames
every 20 ms, turns the energy over the clip's noise floor into a per-frame probability, and cuts the
frames above 0.3 into intervals (gaps of up to 60 ms closed, pieces under 60 ms dropped), each scored
by its mean probability: quiet events in noisy clips come out late, short, split, low-scored or not at
all, as a real detector's would.

The label errors, each on its own event: a **missing** event (a true event left out of the labels), a
**spurious** one (a labeled event of a class not sounding there), a **badly bounded** one (its bounds
moved so that its tIoU with the truth is 0.15 to 0.4) and a **wrong class** (a class not sounding there).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SAMPLE_RATE = 8000
HOP = 160  # 20 ms
WINDOW = 512  # 64 ms
FREQUENCIES = (440.0, 660.0, 990.0, 1480.0, 2220.0, 3330.0)


@dataclass
class Clip:
    duration: float
    #: the truth: (onset, offset, class) rows
    events: np.ndarray
    #: the labels, errors included, and per label row its planted error ("" for none)
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    planted: list[str] = field(default_factory=list)
    #: the true events left out of the labels
    left_out: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    #: the detector's (onset, offset, class, score) rows
    predictions: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))


def _free(events: np.ndarray, cls: int, on: float, off: float) -> bool:
    same = events[events[:, 2] == cls] if len(events) else events
    return not len(same) or bool(((same[:, 1] <= on) | (same[:, 0] >= off)).all())


def _sounding(events: np.ndarray, on: float, off: float, classes: int) -> set[int]:
    if not len(events):
        return set()
    hit = (events[:, 0] < off) & (events[:, 1] > on)
    return {int(c) for c in events[hit, 2]} & set(range(classes))


def events(rng: np.random.Generator, duration: float, classes: int, rate: float) -> np.ndarray:
    """True events of a clip: about ``rate`` per 10 s, 0.3 to 3 s long, some at the clip's edges."""
    rows: list[list[float]] = []
    for _ in range(rng.poisson(rate * duration / 10)):
        cls = int(rng.integers(classes))
        length = float(rng.uniform(0.3, 3.0))
        edge = rng.random()
        on = 0.0 if edge < 0.08 else (duration - length if edge < 0.16 else float(rng.uniform(0, duration - length)))
        on, off = round(on, 3), round(on + length, 3)
        if _free(np.asarray(rows).reshape(-1, 3), cls, on - 0.2, off + 0.2):
            rows.append([on, min(off, duration), cls])
    rows.sort()
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def audio(rng: np.random.Generator, clip: Clip, noise: float, loudness: tuple[float, float]) -> np.ndarray:
    """White noise of standard deviation ``noise`` and the clip's tones, amplitudes log-uniform in ``loudness``."""
    n = int(clip.duration * SAMPLE_RATE)
    x = rng.normal(0.0, noise, n)
    t = np.arange(n) / SAMPLE_RATE
    ramp = int(0.01 * SAMPLE_RATE)
    for on, off, cls in clip.events:
        a, b = int(on * SAMPLE_RATE), int(off * SAMPLE_RATE)
        envelope = np.ones(b - a)
        r = min(ramp, (b - a) // 2)
        envelope[:r] = np.linspace(0, 1, r)
        envelope[b - a - r :] = np.linspace(1, 0, r)
        amplitude = float(np.exp(rng.uniform(*np.log(loudness))))
        x[a:b] += amplitude * envelope * np.sin(2 * np.pi * FREQUENCIES[int(cls)] * t[a:b] + rng.uniform(0, 6.3))
    return x


def detect(x: np.ndarray, classes: int, threshold: float = 0.3) -> np.ndarray:
    """The detector's (onset, offset, class, score) rows for the audio ``x``."""
    frames = np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(x, WINDOW)[::HOP])
    phase = 2 * np.pi * np.outer(np.arange(WINDOW), FREQUENCIES[:classes]) / SAMPLE_RATE
    window = np.hanning(WINDOW)[:, None]
    energy = (frames @ (window * np.cos(phase))) ** 2 + (frames @ (window * np.sin(phase))) ** 2
    floor = np.median(energy) + 1e-12  # white noise: one floor for every frequency, mostly noise at each moment
    snr = 10 * np.log10(energy / floor + 1e-12)
    prob = 1 / (1 + np.exp(-(snr - 9.0) / 2.5))
    rows = []
    for cls in range(classes):
        on = np.r_[False, prob[:, cls] >= threshold, False]
        starts, ends = np.flatnonzero(~on[:-1] & on[1:]), np.flatnonzero(on[:-1] & ~on[1:])
        runs: list[list[int]] = []
        for s, e in zip(starts, ends, strict=True):
            if runs and s - runs[-1][1] <= 3:
                runs[-1][1] = e
            else:
                runs.append([s, e])
        for s, e in runs:
            if e - s < 3:
                continue
            centre = WINDOW / 2 / SAMPLE_RATE
            onset = max(0.0, s * HOP / SAMPLE_RATE + centre - HOP / SAMPLE_RATE / 2)
            offset = min(len(x) / SAMPLE_RATE, (e - 1) * HOP / SAMPLE_RATE + centre + HOP / SAMPLE_RATE / 2)
            rows.append([round(onset, 3), round(offset, 3), cls, float(prob[s:e, cls].mean())])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def _iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    shared = min(a[1], b[1]) - max(a[0], b[0])
    return max(0.0, shared) / (max(a[1], b[1]) - min(a[0], b[0]))


def plant(rng: np.random.Generator, clip: Clip, classes: int, rates: dict[str, float]) -> None:
    """The clip's labels: its events with errors planted at ``rates`` (per true event, per kind)."""
    labels: list[list[float]] = []
    planted: list[str] = []
    left_out: list[list[float]] = []
    touched: list[list[float]] = []  # the spans of the errors planted: the next keep away from them
    truth = clip.events

    def clear(start: float, end: float) -> bool:
        return not any(a < end and b > start for a, b, _ in touched)

    for on, off, cls in truth:
        u = rng.random()
        edges = np.cumsum([rates.get(k, 0.0) for k in ("missing", "badly bounded", "wrong class")])
        if u < edges[0] and clear(on, off):
            left_out.append([on, off, cls])
            touched.append([on, off, 0])
            continue
        if edges[0] <= u < edges[1]:
            length = off - on
            for _ in range(20):  # shift and stretch until the tIoU with the truth is 0.15 to 0.4
                shift = rng.choice([-1, 1]) * rng.uniform(0.5, 1.0) * length
                stretch = rng.uniform(0.6, 1.6)
                a = round(max(0.0, on + shift), 3)
                b = round(min(clip.duration, a + stretch * length), 3)
                others = truth[(truth[:, 0] != on) | (truth[:, 2] != cls)]
                if (
                    b > a
                    and 0.15 <= _iou((a, b), (on, off)) <= 0.4
                    and _free(others, cls, a, b)
                    and clear(min(a, on), max(b, off))
                ):
                    labels.append([a, b, cls])
                    planted.append("badly bounded")
                    touched += [[on, off, 0], [a, b, 0]]
                    break
            else:
                labels.append([on, off, cls])
                planted.append("")
            continue
        if edges[1] <= u < edges[2] and clear(on, off):
            free = sorted(set(range(classes)) - _sounding(truth, on, off, classes))
            if free:
                labels.append([on, off, float(rng.choice(free))])
                planted.append("wrong class")
                touched.append([on, off, 0])
                continue
        labels.append([on, off, cls])
        planted.append("")
    for _ in range(rng.binomial(len(truth) + 1, rates.get("spurious", 0.0))):
        cls = int(rng.integers(classes))
        length = float(rng.uniform(0.5, 2.0))
        on = round(float(rng.uniform(0, clip.duration - length)), 3)
        off = round(on + length, 3)
        # where its class is silent, and away from the other errors (each error stays one of a kind)
        if (cls not in _sounding(truth, on - 0.1, off + 0.1, classes) and clear(on, off)
                and _free(np.asarray(labels).reshape(-1, 3), cls, on, off)):  # fmt: skip
            labels.append([on, off, cls])
            planted.append("spurious")
    order = sorted(range(len(labels)), key=lambda i: labels[i])
    clip.labels = np.asarray([labels[i] for i in order], dtype=np.float64).reshape(-1, 3)
    clip.planted = [planted[i] for i in order]
    clip.left_out = np.asarray(left_out, dtype=np.float64).reshape(-1, 3)


def dataset(
    seed: int, clips: int, *, classes: int = 6, duration: float = 10.0, rate: float = 6.0,
    rates: dict[str, float] | None = None, noise: tuple[float, float] = (0.02, 0.12),
    loudness: tuple[float, float] = (0.05, 0.5),
) -> list[Clip]:  # fmt: skip
    """``clips`` clips with their truth, audio heard by the detector (noise level uniform in ``noise``, tone
    amplitudes log-uniform in ``loudness``), and labels with planted errors at ``rates``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(clips):
        clip = Clip(duration, events(rng, duration, classes, rate))
        clip.predictions = detect(audio(rng, clip, float(rng.uniform(*noise)), loudness), classes)
        plant(rng, clip, classes, rates or {})
        out.append(clip)
    return out


def missing_found(clip: Clip, prediction: np.ndarray) -> bool:
    """Whether a prediction row shows one of the clip's left-out events (its class, tIoU >= 0.3)."""
    return any(int(c) == int(prediction[2]) and _iou((a, b), (prediction[0], prediction[1])) >= 0.3
               for a, b, c in clip.left_out)  # fmt: skip
