"""Line charts as inline SVG, and the training curves of a run's `train_log.jsonl` drawn with them.

Hand-written SVG keeps the HTML report self-contained and free of a plotting
dependency: a chart is a few polylines on "nice" ticks (1, 2 or 5 times a power of
ten), with a legend above the plot. The log holds a training line every
`train.log_every` steps (`loss`, `lr`, ...) and a validation line every
`train.eval_every` steps (`val_<task>` and `val_loss`); a resumed run logs the steps
after its checkpoint again, and the later line wins.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

#: Line colours, in series order (Tableau 10).
COLOURS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
WIDTH, HEIGHT = 520, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 30, 40  # plot margins in pixels
LEGEND_ROW = 16
MAX_MARKED_POINTS = 30  # series with at most this many points get a dot at each

Series = Mapping[str, Sequence[tuple[float, float]]]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round tick values (steps of 1, 2 or 5 times a power of ten) covering [low, high]."""
    if high <= low:  # one value: centre it
        pad = abs(low) / 2 or 1.0
        low, high = low - pad, high + pad
    raw_step = (high - low) / count
    power = 10 ** math.floor(math.log10(raw_step))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw_step)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)  # tolerate float error at the ends
    return [k * step for k in range(first, last + 1)]


def _tick_label(value: float) -> str:
    return f"{value:.3g}"


def line_chart(series: Series, title: str, x_label: str, y_label: str) -> str:
    """An SVG chart of each named series of (x, y) points; non-finite points are left out."""
    clean = {
        name: [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)] for name, points in series.items()
    }
    clean = {name: points for name, points in clean.items() if points}
    if not clean:
        raise ValueError(f"chart {title!r} has no finite points to draw")
    xs = [x for points in clean.values() for x, _ in points]
    ys = [y for points in clean.values() for _, y in points]
    x_ticks, y_ticks = nice_ticks(min(xs), max(xs)), nice_ticks(min(ys), max(ys))
    legend_h = LEGEND_ROW * math.ceil(len(clean) / 3)
    top = TOP + legend_h
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - top - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x_ticks[0]) / (x_ticks[-1] - x_ticks[0]) * plot_w

    def py(y: float) -> float:
        return top + plot_h - (y - y_ticks[0]) / (y_ticks[-1] - y_ticks[0]) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" font-family="sans-serif" font-size="11">',
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    for x in x_ticks:
        parts.append(f'<line x1="{px(x):.1f}" y1="{top}" x2="{px(x):.1f}" y2="{top + plot_h}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{px(x):.1f}" y="{top + plot_h + 14}" text-anchor="middle">{_tick_label(x)}</text>')
    for y in y_ticks:
        parts.append(f'<line x1="{LEFT}" y1="{py(y):.1f}" x2="{LEFT + plot_w}" y2="{py(y):.1f}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{_tick_label(y)}</text>')
    parts += [
        f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>',
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 6}" text-anchor="middle">{escape(x_label)}</text>',
        f'<text transform="translate(14 {top + plot_h / 2}) rotate(-90)" text-anchor="middle">{escape(y_label)}</text>',
    ]
    for index, (name, points) in enumerate(clean.items()):
        colour = COLOURS[index % len(COLOURS)]
        legend_x, legend_y = LEFT + (index % 3) * (plot_w / 3), TOP + (index // 3) * LEGEND_ROW
        parts.append(f'<rect x="{legend_x:.1f}" y="{legend_y - 4}" width="14" height="3" fill="{colour}"/>')
        parts.append(f'<text x="{legend_x + 18:.1f}" y="{legend_y}">{escape(name)}</text>')
        coordinates = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in sorted(points))
        parts.append(f'<polyline points="{coordinates}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
        if len(points) <= MAX_MARKED_POINTS:
            parts += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{colour}"/>' for x, y in points]
    parts.append("</svg>")
    return "\n".join(parts)


def read_train_log(path: Path) -> tuple[dict[int, dict[str, float]], int]:
    """The numeric values logged at each step (a later line of the same step wins) and the count of unreadable
    lines (a run killed mid-write leaves a partial last line)."""
    by_step: dict[int, dict[str, float]] = {}
    unreadable = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            unreadable += 1
            continue
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            unreadable += 1
            continue
        values = {k: float(v) for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        by_step.setdefault(record["step"], {}).update(values)
    return by_step, unreadable


def training_curves(run_dir: Path) -> tuple[list[str], str | None]:
    """SVG charts of the run's loss (training, and validation over all tasks), validation loss per task and
    learning rate against the step, and a note: why there are none, or which log lines were unreadable."""
    path = Path(run_dir) / "train_log.jsonl"
    if not path.is_file():
        return [], f"no training curves: {path} does not exist (a run evaluated without its training log)"
    by_step, unreadable = read_train_log(path)

    def curve(key: str) -> list[tuple[float, float]]:
        return [(step, values[key]) for step, values in sorted(by_step.items()) if key in values]

    keys = dict.fromkeys(k for values in by_step.values() for k in values)
    tasks = [k for k in keys if k.startswith("val_") and k != "val_loss"]
    wanted = [
        ("loss", {"training": curve("loss"), "validation, all tasks": curve("val_loss")}, "loss"),
        ("validation loss per task", {k.removeprefix("val_"): curve(k) for k in tasks}, "loss"),
        ("learning rate", {"lr": curve("lr")}, "learning rate"),
    ]
    charts = [
        line_chart(series, title, "step", y_label)
        for title, series, y_label in wanted
        if any(math.isfinite(y) for points in series.values() for _, y in points)
    ]
    note = f"{unreadable} unreadable line(s) of {path} left out" if unreadable else None
    if not charts:
        note = f"no training curves: {path} holds no loss or learning-rate values"
    return charts, note
