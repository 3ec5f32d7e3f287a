"""`medim compare RUN_A RUN_B`: two evaluated runs, item by item, on the items both were scored on.

Reads each run's `items.json` (what `medim eval` scored per test item) and, for every direction and system
both have, runs the paired bootstrap (`medim.evaluation.bootstrap.paired_difference`; pairs generated from
nothing are paired by sample seed): A's score, B's, the difference A - B with its 95 % interval, and the
share of resamples in which A is higher. Runs scored on different items (another split, sample count or
dataset) are refused: their difference would mean nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medim.errors import DataError
from medim.evaluation.bootstrap import BootstrapSettings, paired_difference
from medim.evaluation.confidence import INTERVAL_METRICS, finding_system_statistic
from medim.evaluation.directions import DIRECTIONS

ITEMS_FILE = "items.json"


def find_items(path: str | Path) -> Path:
    """The items.json of a run directory (RUN/eval/items.json) or of an evaluation folder."""
    path = Path(path)
    for candidate in (path / ITEMS_FILE, path / "eval" / ITEMS_FILE):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"{path} has no {ITEMS_FILE} (looked in {path} and {path / 'eval'}): evaluate the run first with "
        f"`medim eval {path}` (runs evaluated before medim wrote {ITEMS_FILE} need it again)"
    )


def _load(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def compare_runs(run_a: str | Path, run_b: str | Path, settings: BootstrapSettings) -> dict[str, Any]:
    """The paired comparison of two evaluated runs (module docstring), as a JSON-ready dict."""
    file_a, file_b = find_items(run_a), find_items(run_b)
    a, b = _load(file_a), _load(file_b)
    for key in ("split", "num_samples", "labels"):
        if a.get(key) != b.get(key):
            raise DataError(
                f"{file_a} and {file_b} were not scored on the same items: {key} is {a.get(key)!r} vs "
                f"{b.get(key)!r}; evaluate both on the same split with the same sample count"
            )
    # directions given a held-out input score against its true findings; pairs from nothing score against
    # what the judge sees in each run's own images, which differ by design
    fixed_references = {d.name for d in DIRECTIONS if d.given}
    directions: dict[str, Any] = {}
    for direction in sorted(a["directions"].keys() & b["directions"].keys()):
        systems_a, systems_b = a["directions"][direction], b["directions"][direction]
        for system in sorted(systems_a.keys() & systems_b.keys()):
            items_a, items_b = systems_a[system], systems_b[system]
            if direction in fixed_references and items_a["reference"] != items_b["reference"]:
                raise DataError(
                    f"{direction}/{system}: the runs' reference findings differ item by item, so they were not "
                    f"scored on the same test items ({file_a}, {file_b})"
                )
            compared = paired_difference(
                finding_system_statistic(items_a, a["labels"]),
                finding_system_statistic(items_b, b["labels"]),
                len(items_a["reference"]),
                settings,
            )
            directions.setdefault(direction, {})[system] = compared
    if not directions:
        raise DataError(f"{file_a} and {file_b} share no scored direction to compare")
    return {
        "a": str(run_a),
        "b": str(run_b),
        "split": a["split"],
        "num_samples": a["num_samples"],
        "bootstrap": settings.describe(),
        "directions": directions,
    }


def comparison_table(result: dict[str, Any], metrics: tuple[str, ...] = INTERVAL_METRICS) -> str:
    """Rows of direction, system, metric, A, B, A - B [95 % interval], share of resamples with A higher."""
    rows = [("direction", "system", "metric", "A", "B", "A - B", "95 % interval", "A higher")]
    for direction, systems in result["directions"].items():
        for system, compared in systems.items():
            for metric in metrics:
                if metric not in compared:
                    continue
                entry = compared[metric]
                low, high = entry["ci95"]
                rows.append((
                    direction, system, metric, f"{entry['a']:.3f}", f"{entry['b']:.3f}", f"{entry['difference']:+.3f}",
                    f"[{low:+.3f}, {high:+.3f}]", f"{entry['a_higher']:.0%}",
                ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows]
    boot = result["bootstrap"]
    lines.append(
        f"A = {result['a']}, B = {result['b']}; {result['num_samples']} {result['split']} items, paired "
        f"{boot['method']}, {boot['resamples']} resamples, seed {boot['seed']}"
    )
    return "\n".join(lines)
