"""`eval/report.html`: one self-contained page a person reads to judge a run.

What it holds, top to bottom: the run and how it was evaluated (sampler, steps,
guidance, seed, report-metric protocols, sample counts, package versions); the score
tables of `metrics.json` (`medim.evaluation.metric_tables`, the same tables as
`metrics.md`); generated samples beside the held-out pair they answer, per direction;
per-finding precision/recall/F1; the training curves of `train_log.jsonl`.
The file needs nothing else to be read, not even JavaScript: images are inline base64
PNGs (shrunk to `max_image_side`, enlarged on screen without smoothing), charts inline
SVG. Reports and every other string are user data and are HTML-escaped.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from medim.data.paired import PairedSplit
from medim.evaluation.directions import DIRECTIONS, Direction
from medim.evaluation.metric_tables import (
    GROUPED_METRICS,
    Table,
    interval_note,
    per_finding_tables,
    score_tables,
    skipped,
)
from medim.evaluation.plots import training_curves
from medim.io import atomic_write

#: One direction's generations: (images uint8 [N, H, W, 3] or None, reports or None), as `evaluate` keeps them.
Outputs = tuple[np.ndarray | None, Sequence[str] | None]

REPORT_NAME = "report.html"

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1280px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #ccc; }
h3 { font-size: 14px; margin: 14px 0 6px; }
table { border-collapse: collapse; font-size: 12px; }
th, td { border: 1px solid #ccc; padding: 2px 7px; vertical-align: top; }
th { background: #f3f3f3; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.config { width: 100%; } table.config th { width: 180px; }
div.blocks, div.cards { display: flex; flex-wrap: wrap; gap: 4px 20px; align-items: flex-start; }
div.cards { gap: 10px; }
div.card { width: 276px; border: 1px solid #ddd; padding: 6px; font-size: 12px; }
figure { display: inline-block; margin: 0 6px 4px 0; }
figure img { width: 128px; image-rendering: pixelated; display: block; }
figcaption, p.label { color: #666; font-size: 11px; margin: 2px 0; }
div.report { white-space: pre-wrap; margin-bottom: 4px; }
p.note { color: #555; font-size: 13px; }
svg { margin: 4px 12px 12px 0; border: 1px solid #eee; }
"""


def write_html_report(
    run_dir: str | Path,
    eval_dir: str | Path,
    metrics: Mapping[str, Any],
    outputs: Mapping[Direction, Outputs],
    held_out: PairedSplit,
    *,
    max_samples: int = 8,
    max_image_side: int = 256,
) -> Path:
    """Write `eval_dir/report.html` (module docstring) and return its path.

    `outputs` are each direction's generations in held-out order (sample i answers held-out pair i; the samples
    from nothing answer none), `held_out` the split they were generated for; the first `max_samples` of each
    direction are shown. Versions come from `metrics["versions"]`, else RUN_DIR/versions.json.
    """
    if max_samples < 1 or max_image_side < 8:
        raise ValueError(f"max_samples must be >= 1 and max_image_side >= 8, got {max_samples}, {max_image_side}")
    run_dir, path = Path(run_dir), Path(eval_dir) / REPORT_NAME
    tables, finding_tables = score_tables(metrics), per_finding_tables(metrics)
    charts, curves_note = training_curves(run_dir)
    body = [
        f"<h1>medim evaluation: {escape(run_dir.name)}</h1>",
        _config_table(run_dir, metrics),
        "<h2>Scores</h2>",
        _blocks(_table_html(table) for table in tables),
        *_notes([interval_note(metrics, tables)]),
        _skipped_html(metrics),
        "<h2>Samples: generated beside the held-out pair</h2>",
        *(
            _samples_html(direction, outputs[direction], held_out, max_samples, max_image_side)
            for direction in DIRECTIONS
            if direction in outputs
        ),
        *([] if outputs else ['<p class="note">no samples were passed to the report</p>']),
        "<h2>Per-finding scores</h2>",
        _blocks(_table_html(table) for table in finding_tables),
        *_notes([None if finding_tables else "no per-finding scores in metrics.json (no direction was scored)"]),
        "<h2>Training curves</h2>",
        _blocks(charts),
        *_notes([curves_note]),
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>medim evaluation: {escape(run_dir.name)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(part for part in body if part)
        + "\n</body>\n</html>\n"
    )
    return atomic_write(path, lambda tmp: tmp.write_text(page, encoding="utf-8"))


def png_data_uri(image: np.ndarray, max_side: int, what: str) -> str:
    """`data:image/png;base64,...` of a uint8 [H, W, 3] image, shrunk (never enlarged) to fit `max_side`."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{what} must be a uint8 HxWx3 array, got dtype {image.dtype} shape {image.shape}")
    picture = Image.fromarray(image)
    if max(picture.size) > max_side:
        picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _versions(run_dir: Path, metrics: Mapping[str, Any]) -> Mapping[str, Any] | str:
    """The package versions of `metrics`, else of RUN_DIR/versions.json (what `medim train` wrote), else a note."""
    if "versions" in metrics:
        return metrics["versions"]
    path = run_dir / "versions.json"
    if not path.is_file():
        return ""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{path} is unreadable ({exc})"


def _config_table(run_dir: Path, metrics: Mapping[str, Any]) -> str:
    """How the run was evaluated, as a two-column table (rows with nothing to say are left out)."""
    sampler = dict(metrics.get("sampler") or {})
    decoding = metrics.get("decoding") or {}
    directions = metrics.get("directions", {})
    groups = {
        group: sorted({label for entry in directions.values() for label in entry.get(group, {})})
        for group in GROUPED_METRICS
    }
    versions = _versions(run_dir, metrics)
    rows = [
        ("run directory", str(run_dir)),
        (
            "held-out split",
            f"{metrics['split']}, {metrics.get('num_samples')} pairs scored" if "split" in metrics else None,
        ),
        ("seed", metrics.get("seed")),
        ("sampler", _key_values(sampler)),
        ("decoding", _key_values(decoding)),
        ("report-metric protocols", ", ".join(groups["report_metrics"])),
        ("image-metric features", ", ".join(groups["image_metrics"])),
        ("package versions", versions if isinstance(versions, str) else _key_values(versions)),
    ]
    cells = [f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows if v not in (None, "")]
    return '<table class="config">\n' + "\n".join(cells) + "\n</table>"


def _key_values(values: Mapping[str, Any]) -> str:
    """`maskgit (temperature=1.0, top_k=None)`: a component block's name, then its parameters."""
    values = dict(values)
    name = values.pop("name", None)
    pairs = ", ".join(f"{k}={v}" for k, v in values.items())
    return f"{name} ({pairs})" if name and pairs else str(name or pairs)


def _table_html(table: Table) -> str:
    """The table under its title, in a block that sits beside the next one when the page is wide enough."""
    header = "".join(f"<th>{escape(h)}</th>" for h in (table.row_header, *table.columns))
    rows = [
        f"<tr><th>{escape(name)}</th>"
        + "".join(f'<td class="num">{"—" if c is None else escape(c.text())}</td>' for c in cells)
        + "</tr>"
        for name, cells in table.rows
    ]
    grid = f"<table>\n<tr>{header}</tr>\n" + "\n".join(rows) + "\n</table>"
    return f'<div class="block"><h3>{escape(table.title)}</h3>\n{grid}</div>'


def _blocks(parts: Iterable[str]) -> str:
    """`parts` side by side, wrapping onto new lines (empty when there are none)."""
    inner = "\n".join(parts)
    return f'<div class="blocks">\n{inner}\n</div>' if inner else ""


def _notes(notes: Sequence[str | None]) -> list[str]:
    return [f'<p class="note">{escape(note)}</p>' for note in notes if note]


def _skipped_html(metrics: Mapping[str, Any]) -> str:
    items = [f"<li>{escape(direction)}: {escape(reason)}</li>" for direction, reason in skipped(metrics)]
    return f"<h3>Skipped</h3>\n<ul>\n{''.join(items)}\n</ul>" if items else ""


def _sample_columns(
    direction: Direction, output: Outputs, held_out: PairedSplit, count: int
) -> list[tuple[str, list[np.ndarray] | list[str]]]:
    """(heading, `count` cells) per column: what was generated, then the held-out pair it answers (the given
    modality, and the reference of the generated one)."""
    images, reports = output
    columns: list[tuple[str, list[np.ndarray] | list[str]]] = []
    if images is not None:
        columns.append(("generated image", list(images[:count])))
    if direction.given:
        role = "given" if "image" in direction.given else "reference"
        columns.append((f"{role} image", [held_out.images[i] for i in range(count)]))
    if reports is not None:
        columns.append(("generated report", list(reports[:count])))
    if direction.given:
        role = "given" if "text" in direction.given else "reference"
        columns.append((f"{role} report", list(held_out.reports[:count])))
    return columns


def _samples_html(
    direction: Direction, output: Outputs, held_out: PairedSplit, max_samples: int, max_image_side: int
) -> str:
    """The first samples of `direction`, a card each: its images side by side, then its reports."""
    images, reports = output
    total = len(images) if images is not None else len(reports or [])
    if direction.given and total > len(held_out):
        raise ValueError(
            f"{direction.name}: {total} samples but the held-out split has only {len(held_out)} pairs; "
            f"sample i must answer held-out pair i"
        )
    count = min(max_samples, total)
    columns = _sample_columns(direction, output, held_out, count)
    cards = []
    for i in range(count):
        figures, texts = [], []
        for heading, values in columns:
            value = values[i]
            if isinstance(value, str):
                texts.append(f'<p class="label">{escape(heading)}</p><div class="report">{escape(value)}</div>')
            else:
                uri = png_data_uri(np.asarray(value), max_image_side, f"{direction.name} sample {i}: {heading}")
                figures.append(
                    f'<figure><img src="{uri}" alt="{escape(heading)} {i}"><figcaption>{escape(heading)}</figcaption>'
                    "</figure>"
                )
        cards.append(f'<div class="card"><p class="label">#{i}</p>{"".join(figures)}{"".join(texts)}</div>')
    title = f"{direction.describe()}: the first {count} of {total}"
    return f"<h3>{escape(title)}</h3>\n" + '<div class="cards">\n' + "\n".join(cards) + "\n</div>"
