"""`medim compare RUN_A RUN_B`: two evaluated runs, item by item, on the items both were scored on.

Reads each run's `items.json` (what `medim eval` scored per test item) and, for every direction and system
both have, runs the paired bootstrap (`medim.evaluation.bootstrap.paired_difference`; pairs generated from
nothing are paired by sample seed): A's score, B's, the difference A - B with its 95 % interval, and the
share of resamples in which A is higher. The models' report metrics are rescored from each run's
`samples.json` under every protocol both evaluations used with the same parameters, and their image
metrics recomputed from the saved features (`image_features.model.npz`) of every feature block both have
with the same weights file. Runs scored on different items (another split, sample count, dataset or
held-out reports) are refused: their difference would mean nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from medim.config.components import ReportMetricSpec
from medim.errors import DataError
from medim.evaluation.bootstrap import BootstrapSettings, paired_difference
from medim.evaluation.confidence import INTERVAL_METRICS, finding_system_statistic
from medim.evaluation.directions import DIRECTIONS, IMAGE_GIVEN_TEXT, TEXT_GIVEN_IMAGE
from medim.evaluation.image_scoring import block_and_metric, load_features

ITEMS_FILE = "items.json"
METRICS_FILE = "metrics.json"
SAMPLES_FILE = "samples.json"


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
    eval_a, eval_b = file_a.parent, file_b.parent
    metrics_a, metrics_b = _load(eval_a / METRICS_FILE), _load(eval_b / METRICS_FILE)
    for group, compare in (("report_metrics", _compare_report_metrics), ("image_metrics", _compare_image_metrics)):
        for name, compared in compare(eval_a, eval_b, metrics_a, metrics_b, settings).items():
            direction = TEXT_GIVEN_IMAGE.name if group == "report_metrics" else IMAGE_GIVEN_TEXT.name
            directions.setdefault(direction, {})[f"model, {group.replace('_', ' ')} ({name})"] = compared
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


def _blocks(metrics: dict[str, Any], direction: str, group: str) -> dict[str, Any]:
    return metrics.get("directions", {}).get(direction, {}).get(group, {})


def _compare_report_metrics(
    eval_a: Path, eval_b: Path, metrics_a: dict[str, Any], metrics_b: dict[str, Any], settings: BootstrapSettings
) -> dict[str, Any]:
    """{protocol: paired comparison} of the models' reports under each protocol both evaluations used alike."""
    blocks_a, blocks_b = (_blocks(m, TEXT_GIVEN_IMAGE.name, "report_metrics") for m in (metrics_a, metrics_b))
    shared = [p for p in sorted(blocks_a.keys() & blocks_b.keys()) if blocks_a[p]["params"] == blocks_b[p]["params"]]
    if not shared:
        return {}
    samples = []
    for folder in (eval_a, eval_b):
        pairs = _load(folder / SAMPLES_FILE).get(TEXT_GIVEN_IMAGE.name, [])
        samples.append(([p["generated"] for p in pairs], [p["reference"] for p in pairs]))
    (candidates_a, references), (candidates_b, references_b) = samples
    if references != references_b:
        raise DataError(
            f"{eval_a / SAMPLES_FILE} and {eval_b / SAMPLES_FILE} hold other held-out reports, so their report "
            "metrics cannot be compared item by item"
        )
    compared = {}
    for protocol_name in shared:
        protocol = ReportMetricSpec.model_validate(blocks_a[protocol_name]["params"]).build()
        if protocol.missing_requirements():
            continue  # `medim eval` says why in its own output; nothing to rescore with here
        scores_a, scores_b = protocol.score(candidates_a, references), protocol.score(candidates_b, references)
        compared[protocol_name] = paired_difference(scores_a.resampled, scores_b.resampled, len(references), settings)
    return compared


def _compare_image_metrics(
    eval_a: Path, eval_b: Path, metrics_a: dict[str, Any], metrics_b: dict[str, Any], settings: BootstrapSettings
) -> dict[str, Any]:
    """{feature block: paired comparison} of the models' images, from the features each evaluation saved."""
    blocks_a, blocks_b = (_blocks(m, IMAGE_GIVEN_TEXT.name, "image_metrics") for m in (metrics_a, metrics_b))
    shared = [b for b in sorted(blocks_a.keys() & blocks_b.keys()) if _same_weights(blocks_a[b], blocks_b[b])]
    if not shared:
        return {}
    scores_a, scores_b = load_features(eval_a, "model"), load_features(eval_b, "model")
    for extractor in scores_a.features.keys() & scores_b.features.keys():
        if not np.array_equal(scores_a.features[extractor][1], scores_b.features[extractor][1]):
            raise DataError(
                f"the held-out images of {eval_a} and {eval_b} have other {extractor} features, so they are not the "
                "same images: their image metrics cannot be compared item by item"
            )
    compared: dict[str, Any] = {}
    for key, entry in paired_difference(scores_a.resampled, scores_b.resampled, scores_a.n, settings).items():
        block, metric = block_and_metric(key, scores_a.settings)
        if block in shared:
            compared.setdefault(block, {})[metric] = entry
    return compared


def _same_weights(block_a: dict[str, Any], block_b: dict[str, Any]) -> bool:
    hashes = [
        {name: e.get("sha256") for name, e in block.get("extractors", {}).items()} for block in (block_a, block_b)
    ]
    return hashes[0] == hashes[1] and bool(hashes[0])


def comparison_table(result: dict[str, Any], metrics: tuple[str, ...] = INTERVAL_METRICS) -> str:
    """Rows of direction, system, metric, A, B, A - B [95 % interval], share of resamples with A higher."""
    rows = [("direction", "system", "metric", "A", "B", "A - B", "95 % interval", "A higher")]
    for direction, systems in result["directions"].items():
        for system, compared in systems.items():
            for metric in [m for m in metrics if m in compared] or list(compared):  # report/image metrics: all
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
