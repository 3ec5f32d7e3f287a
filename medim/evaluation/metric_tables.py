"""The score tables of a `metrics.json`, as data (for the HTML report) and as markdown (`eval/metrics.md`).

Every table has metrics (or directions) as rows and the systems scored (the model and
its baselines) as columns; a report-metric table names the protocol that produced it
("report metrics (protocol: r2gen)") and an image-metric table the feature extractor,
since numbers under different protocols do not compare. The `metrics.json` shape read,
where a *score block* is `{"scores": {system: {metric: number}}, "intervals":
{system: {metric: [low, high]}}}` (intervals optional, any subset of the scores):

    directions.<direction>                          a score block of finding scores (finding_metrics.FindingScores)
    directions.<direction>.report_metrics.<protocol> a score block (bleu_1..4, meteor, rouge_l, cider, ...)
    directions.<direction>.image_metrics.<features>  a score block (fid, kid, is, ...)
    directions.<direction>.consistency               a score block (self_inconsistent, repeated_sentence, ...)
    bootstrap                                        how the intervals were made: {method, resamples, seed, level}
    judge                                            {system: finding scores}
    nelbo, nelbo_stderr                              {direction: number}; nelbo_kind: bound or exact likelihood
    cost                                             {direction: {statistic: number}}
    skipped                                          {direction: reason}

Every section may be absent. A score with an interval is printed `value [low, high]`,
and a note under the tables says how the intervals were made.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medim.io import atomic_write

#: The finding scores shown in the tables, in order (`per_label` gets its own tables in the HTML report).
FINDING_METRICS = ("micro_f1", "macro_f1", "micro_precision", "micro_recall", "label_accuracy", "exact_match")
#: The columns of the HTML report's per-finding tables.
LABEL_METRICS = ("precision", "recall", "f1", "support")
#: The score blocks grouped under a direction: key -> what names a block in the table title.
GROUPED_METRICS = {"report_metrics": "protocol", "image_metrics": "features"}
#: Display names of metric keys; others are shown with spaces for underscores.
METRIC_NAMES = {
    **{f"bleu_{n}": f"BLEU-{n}" for n in range(1, 5)},
    **{f"rouge_{n}": f"ROUGE-{n}" for n in (1, 2)},
    "rouge_l": "ROUGE-L",
    "meteor": "METEOR",
    "cider": "CIDEr",
    "fid": "FID",
    "kid": "KID",
    "is": "Inception Score",
    "micro_f1": "micro F1",
    "macro_f1": "macro F1",
    "f1": "F1",
}


def display_name(key: str) -> str:
    """`bleu_4` -> `BLEU-4`, `baseline_majority` -> `baseline majority`."""
    return METRIC_NAMES.get(key, key.replace("_", " "))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_number(value: int | float) -> str:
    """Three decimals, or three significant digits below 0.01 (a KID of 0.00123 keeps its digits); ints as such."""
    if isinstance(value, int) or not math.isfinite(value):
        return str(value)
    decimals = 3 if value == 0 or abs(value) >= 0.01 else min(8, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


@dataclass(frozen=True)
class Score:
    """One number of `metrics.json`, with its interval when one was computed."""

    value: int | float  # an int (a count) is printed as one
    interval: tuple[float, float] | None = None

    @classmethod
    def read(cls, value: Any, interval: Any, where: str) -> Score:
        """The score stored at `where` (a dotted path into metrics.json, for the error) and its interval or None."""
        if not _is_number(value):
            raise ValueError(f"metrics.json {where}: expected a number, got {value!r}")
        if interval is None:
            return cls(value)
        if not (isinstance(interval, (list, tuple)) and len(interval) == 2 and all(map(_is_number, interval))):
            raise ValueError(f"metrics.json intervals of {where}: expected [low, high], got {interval!r}")
        return cls(value, (float(interval[0]), float(interval[1])))

    def text(self) -> str:
        """`0.353`, or `0.353 [0.331, 0.376]` with an interval."""
        if self.interval is None:
            return format_number(self.value)
        low, high = self.interval
        return f"{format_number(self.value)} [{format_number(low)}, {format_number(high)}]"


@dataclass(frozen=True)
class Table:
    """A titled grid of scores: `rows` are (row name, one score or None per column)."""

    title: str
    row_header: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[Score | None, ...]], ...]

    def scores(self) -> list[Score]:
        """Every score of the table, row by row."""
        return [cell for _, cells in self.rows for cell in cells if cell is not None]


def _mapping(value: Any, where: str, expected: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"metrics.json {where}: expected {expected}, got {value!r}")
    return value


def _block_table(title: str, block: Mapping[str, Any], metric_keys: tuple[str, ...] | None, where: str) -> Table:
    """A score block (module docstring) as rows = metrics (`metric_keys`, or every metric any system has, in
    first-seen order), columns = systems."""
    systems = _mapping(block.get("scores"), f"{where}.scores", "{system: {metric: number}}")
    intervals = _mapping(block.get("intervals", {}), f"{where}.intervals", "{system: {metric: [low, high]}}")
    for system, scores in systems.items():
        _mapping(scores, f"{where}.scores.{system}", "{metric: number}")
    keys = metric_keys or tuple(dict.fromkeys(k for scores in systems.values() for k in scores))

    def cell(system: str, key: str) -> Score | None:
        if key not in systems[system]:
            return None
        interval = intervals.get(system, {}).get(key)
        return Score.read(systems[system][key], interval, f"{where}.scores.{system}.{key}")

    rows = tuple((display_name(key), tuple(cell(system, key) for system in systems)) for key in keys)
    return Table(title, "metric", tuple(display_name(s) for s in systems), rows)


def _by_direction_table(title: str, columns: list[tuple[str, str, Mapping[str, Any]]]) -> Table:
    """Rows = directions; `columns` are (name, where in metrics.json with * for the direction, {direction: number})."""
    directions = tuple(dict.fromkeys(d for _, _, values in columns for d in values))
    rows = tuple(
        (
            display_name(direction),
            tuple(
                Score.read(values[direction], None, where.replace("*", direction)) if direction in values else None
                for _, where, values in columns
            ),
        )
        for direction in directions
    )
    return Table(title, "direction", tuple(name for name, _, _ in columns), rows)


def _sample_count(systems: Mapping[str, Any]) -> str:
    counts = {scores.get("n") for scores in systems.values() if isinstance(scores, Mapping)}
    return f" ({counts.pop()} samples)" if len(counts) == 1 and None not in counts else ""


def score_tables(metrics: Mapping[str, Any]) -> list[Table]:
    """Every score table of `metrics` (module docstring), per direction then the judge, the bounds and the costs."""
    tables = []
    for direction, entry in metrics.get("directions", {}).items():
        name, where = display_name(direction), f"directions.{direction}"
        if "scores" in entry:
            title = f"{name}: finding scores{_sample_count(entry['scores'])}"
            tables.append(_block_table(title, entry, FINDING_METRICS, where))
        if "consistency" in entry:
            title = f"{name}: self-inconsistent reports (share: a finding stated and denied, or a sentence repeated)"
            tables.append(_block_table(title, entry["consistency"], None, f"{where}.consistency"))
        for group, named_by in GROUPED_METRICS.items():
            for label, block in entry.get(group, {}).items():
                title = f"{name}: {display_name(group)} ({named_by}: {label})"
                tables.append(_block_table(title, block, None, f"{where}.{group}.{label}"))
    if "judge" in metrics:
        title = f"the finding judge on held-out images{_sample_count(metrics['judge'])}"
        tables.append(_block_table(title, {"scores": metrics["judge"]}, FINDING_METRICS, "judge"))
    if metrics.get("nelbo"):
        bounds = [("nats per token", "nelbo.*", metrics["nelbo"])]
        if "nelbo_stderr" in metrics:
            bounds.append(("standard error", "nelbo_stderr.*", metrics["nelbo_stderr"]))
        tables.append(_by_direction_table(f"held-out {metrics.get('nelbo_kind', 'negative ELBO')}", bounds))
    if metrics.get("cost"):
        cost = metrics["cost"]
        statistics = dict.fromkeys(k for stats in cost.values() for k in stats)
        columns = [(display_name(k), f"cost.*.{k}", {d: s[k] for d, s in cost.items() if k in s}) for k in statistics]
        tables.append(_by_direction_table("generation cost", columns))
    return tables


def per_finding_tables(metrics: Mapping[str, Any]) -> list[Table]:
    """Per direction and system with finding scores: each finding's precision, recall, F1 and support."""
    tables = []
    for direction, entry in metrics.get("directions", {}).items():
        for system, scores in entry.get("scores", {}).items():
            where = f"directions.{direction}.scores.{system}.per_label"
            rows = tuple(
                (
                    label,
                    tuple(Score.read(v[m], None, f"{where}.{label}.{m}") if m in v else None for m in LABEL_METRICS),
                )
                for label, v in scores.get("per_label", {}).items()
            )
            if rows:
                title = f"{display_name(direction)}: per-finding scores of {display_name(system)}"
                tables.append(Table(title, "finding", tuple(display_name(m) for m in LABEL_METRICS), rows))
    return tables


def interval_note(metrics: Mapping[str, Any], tables: list[Table]) -> str | None:
    """How the intervals shown were made (`metrics["bootstrap"]`), or None when no score has one."""
    if not any(score.interval is not None for table in tables for score in table.scores()):
        return None
    how = metrics.get("bootstrap")
    if not isinstance(how, Mapping):
        return "[low, high]: confidence interval (metrics.json does not say how it was made)."
    level = f"{how['level'] * 100:g} % " if _is_number(how.get("level")) else ""
    details = [
        f"{how['resamples']:,} resamples" if _is_number(how.get("resamples")) else None,
        f"seed {how['seed']}" if "seed" in how else None,
    ]
    method = how.get("method", "bootstrap")
    return f"[low, high]: {level}interval, {method} ({', '.join(d for d in details if d)})."


def skipped(metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(direction, reason) of everything `medim eval` did not score."""
    return [(display_name(direction), str(reason)) for direction, reason in metrics.get("skipped", {}).items()]


def markdown(metrics: Mapping[str, Any]) -> str:
    """The score tables of `metrics` in markdown, with the interval note and the skipped directions."""
    tables = score_tables(metrics)
    lines = ["# Evaluation scores", ""]
    split, count = metrics.get("split"), metrics.get("num_samples")
    if split is not None and count is not None:
        lines += [f"Held-out split `{split}`, {count} pairs scored.", ""]
    for table in tables:
        lines += [f"## {_md(table.title)}", "", _markdown_grid(table), ""]
    note = interval_note(metrics, tables)
    if note:
        lines += [note, ""]
    for direction, reason in skipped(metrics):
        lines.append(f"- {_md(direction)}: skipped ({_md(reason)})")
    return "\n".join(lines).rstrip() + "\n"


def write_markdown_table(metrics: Mapping[str, Any], path: str | Path) -> str:
    """Write the markdown of `metrics` (`markdown`) to `path` atomically; returns the text."""
    text = markdown(metrics)
    atomic_write(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return text


def _markdown_grid(table: Table) -> str:
    header = [table.row_header, *table.columns]
    lines = ["| " + " | ".join(_md(h) for h in header) + " |", "|" + "---|" * len(header)]
    for name, cells in table.rows:
        lines.append("| " + " | ".join([_md(name)] + ["—" if c is None else c.text() for c in cells]) + " |")
    return "\n".join(lines)


def _md(text: str) -> str:
    """Text safe inside a markdown table cell or heading: pipes escaped, line breaks as spaces."""
    return " ".join(text.split()).replace("|", "\\|")
