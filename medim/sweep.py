"""`medim sweep`: train and evaluate several experiments, then write one table comparing their scores.

A sweep is a YAML file (bundled ones live in `experiments/sweeps/`):

    name: samplers                      # results go to <output_dir>/sweeps/samplers/
    overrides: [train.steps=600]        # applied to every run (optional)
    runs:
      maskgit: {experiment: quickstart}
      ancestral: {experiment: quickstart, overrides: [sampler=ancestral]}

or a list of experiments on the command line. Runs that differ only in how they
decode (`sampler`, `eval`) share one trained model: it is trained once and each
run is evaluated on it, so a sampler ablation costs one training. Everything is
resumable: a finished training is reused while what it trains is unchanged (a run
whose training config changed is refused by name, before anything runs), an
interrupted training resumes, and an evaluation is reused while its config, the
weights' files and its `metrics.json` are the ones it wrote. The table (`results.md`, `results.csv`)
has each run's changes against the first run, its held-out scores (and the share of
joint reports stating no finding, which exposes a sampler collapsing to the mode),
its final validation loss (in its own objective's units) and held-out negative ELBO
with its standard error (the same yardstick, on the same corruptions, for every run) and its
difference from the first run's with the paired standard error (the shared corruptions cancel,
so this is what tells two runs apart), and its generation cost (network evaluations and seconds
per sample).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medim.config import (
    COMPONENT_BLOCKS,
    ExperimentConfig,
    load_experiment,
    validate_experiment,
)
from medim.config.loading import (
    changed_keys,
    find_experiment,
    read_yaml,
)
from medim.config.policy import LABEL_KEYS, training_identity, weight_changes
from medim.errors import ConfigError
from medim.evaluation.directions import DIRECTIONS
from medim.evaluation.evaluate import evaluate
from medim.evaluation.likelihood import paired_difference
from medim.io import atomic_write_json, atomic_write_text, file_digest, stable_hash
from medim.runs import open_run, run_config
from medim.training.checkpoints import latest_checkpoint, trained_steps
from medim.training.trainer import train

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepRun:
    """One row of a sweep: its label and its validated config."""

    label: str
    config: ExperimentConfig


def load_sweep(
    sources: Sequence[str], extra: Sequence[str] = (), name: str | None = None
) -> tuple[str, list[SweepRun]]:
    """(sweep name, runs) from one sweep file or from experiments, with `extra` overrides applied to every run."""
    path = find_experiment(sources[0])
    data = read_yaml(path)
    if "runs" not in data:
        return sweep_of_experiments(sources, extra, name or "sweep")
    if len(sources) > 1:
        raise ConfigError(f"{path} is a sweep file; give it alone, or give several experiments instead")
    unknown = set(data) - {"name", "description", "overrides", "runs"}
    if unknown:
        raise ConfigError(f"{path}: unknown sweep keys {sorted(unknown)}; valid: name, description, overrides, runs")
    runs = data["runs"]
    if not isinstance(runs, dict) or not runs:
        raise ConfigError(f"{path}: `runs:` must map at least one label to {{experiment: NAME, overrides: [...]}}")
    shared = [*_override_list(data, path, "overrides"), *extra]
    entries = []
    for label, entry in runs.items():
        if not isinstance(entry, dict) or "experiment" not in entry or set(entry) - {"experiment", "overrides"}:
            raise ConfigError(f"{path}: runs.{label} must be {{experiment: NAME, overrides: [...]}}, got {entry!r}")
        entries.append(
            (str(label), str(entry["experiment"]), [*_override_list(entry, path, f"runs.{label}.overrides"), *shared])
        )
    return name or str(data.get("name") or path.stem), [_sweep_run(label, exp, ov) for label, exp, ov in entries]


def _override_list(data: dict[str, Any], path: Path, where: str) -> list[str]:
    overrides = data.get("overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"{path}: {where} must be a list of KEY=VALUE strings, got {overrides!r}")
    return overrides


def sweep_of_experiments(
    experiments: Sequence[str], extra: Sequence[str] = (), name: str = "sweep"
) -> tuple[str, list[SweepRun]]:
    """(name, runs) for experiments named on the command line, each labelled by its file name."""
    labels = [Path(e).stem for e in experiments]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ConfigError(f"two experiments share the label {duplicates[0]!r}; write a sweep file to name them apart")
    return name, [_sweep_run(label, experiment, list(extra)) for label, experiment in zip(labels, experiments)]


def _sweep_run(label: str, experiment: str, overrides: list[str]) -> SweepRun:
    return SweepRun(label, load_experiment(experiment, overrides))


def run_sweep(name: str, runs: list[SweepRun], *, fresh: bool = False, progress: bool = True) -> list[dict[str, Any]]:
    """Train what is not trained, evaluate what is not evaluated, write and return the comparison rows."""
    root = Path(runs[0].config.output_dir) / "sweeps" / name
    if fresh and root.exists():
        shutil.rmtree(root)
    placed = [
        SweepRun(
            run.label, validate_experiment({**run.config.model_dump(mode="json"), "name": f"sweeps/{name}/{run.label}"})
        )
        for run in runs
    ]
    trainers: dict[str, SweepRun] = {}  # each distinct training, run by the first run that needs it
    for run in placed:
        trainers.setdefault(training_identity(run.config), run)
    _refuse_changed_trainings(list(trainers.values()))
    rows: list[dict[str, Any]] = []
    reference: dict[str, Any] | None = None  # the first run's metrics, which every bound is compared with
    for index, run in enumerate(placed, 1):
        config = run.config
        trainer = trainers[training_identity(config)]
        if trainer.label != run.label:
            logger.info(
                "[%d/%d] %s: decoding change only, evaluated on %s's model", index, len(runs), run.label, trainer.label
            )
        elif trained_steps(config.run_dir) >= config.train.steps:
            logger.info("[%d/%d] %s: already trained (%s)", index, len(runs), run.label, config.run_dir)
        else:
            logger.info("[%d/%d] %s: training %s", index, len(runs), run.label, config.run_dir)
            result = train(config, resume=latest_checkpoint(config.run_dir) is not None, progress=progress)
            if not result.finished:
                logger.warning(
                    "%s stopped at step %d of %d (train.max_minutes); evaluated as it is, run the sweep again "
                    "to continue (or add --set '~train.max_minutes')",
                    run.label, result.steps_done, config.train.steps,
                )  # fmt: skip
        metrics = _evaluated(config, trainer.config.run_dir, progress)
        reference = reference or metrics
        rows.append(_row(run, placed[0], trainer, metrics, reference))
    _write_tables(root, rows)
    return rows


def _refuse_changed_trainings(trainers: list[SweepRun]) -> None:
    """Stop before any work when a run to train already holds weights trained with another config."""
    for run in trainers:
        if not (run.config.run_dir / "resolved.yaml").is_file():
            continue
        changed = weight_changes(run_config(run.config.run_dir), run.config)
        if changed:
            raise ConfigError(
                f"sweep run {run.label}: {run.config.run_dir} was trained with other settings at {', '.join(changed)}; "
                f"delete that directory to retrain it, or run the sweep with --fresh"
            )


def _evaluated(config: ExperimentConfig, weights_dir: Path, progress: bool) -> dict[str, Any]:
    """The run's metrics: reused when this config was evaluated on these weights and its metrics file is untouched."""
    out = config.run_dir / "eval"
    metrics_file = out / "metrics.json"
    key = stable_hash(
        {"config": config.model_dump(mode="json"), "weights": _checkpoint_identity(latest_checkpoint(weights_dir))}
    )
    marker = config.run_dir / "sweep_eval.json"
    recorded = json.loads(marker.read_text()) if marker.is_file() else {}
    if recorded.get("key") == key and metrics_file.is_file() and recorded.get("metrics") == file_digest(metrics_file):
        metrics = json.loads(metrics_file.read_text())
        if "directions" in metrics:  # else written by an older version, in another layout: evaluated again
            return metrics
    experiment, backbone = open_run(weights_dir, config, progress)
    metrics = evaluate(experiment, backbone, out, config.eval, progress)
    if weights_dir != config.run_dir:  # an evaluation-only run: say what it decoded with, and on whose weights
        atomic_write_text(config.run_dir / "config.yaml", config.to_yaml())
    atomic_write_json(marker, {"key": key, "weights": str(weights_dir), "metrics": file_digest(metrics_file)})
    return metrics


def _checkpoint_identity(checkpoint: Path | None) -> list[Any]:
    """The checkpoint's path and each file's size and modification time: a retrained model is another model."""
    if checkpoint is None:
        return []
    files = sorted(p for p in checkpoint.rglob("*") if p.is_file())
    return [str(checkpoint), *[(str(p.relative_to(checkpoint)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]]


def describe_changes(reference: ExperimentConfig, config: ExperimentConfig) -> str:
    """What `config` changes against `reference`: `block=name` (with its non-default params) for a swapped
    component, `key.path=value` for anything else."""
    before, after = reference.model_dump(mode="json"), config.model_dump(mode="json")
    parts, covered = [], []
    for path, registry in COMPONENT_BLOCKS.items():
        old, new = _lookup(before, path), _lookup(after, path)
        if old["name"] != new["name"]:
            defaults = registry.validate({"name": new["name"]}).model_dump(mode="json")
            own = [f"{k}={v}" for k, v in new.items() if k != "name" and defaults.get(k) != v]
            parts.append(f"{path}={new['name']}" + (f" ({', '.join(own)})" if own else ""))
            covered.append(path + ".")
    changed = changed_keys(before, after)
    for key in changed:
        nested = any(other.startswith(key + ".") for other in changed)  # an empty mapping that gained keys
        if key.split(".")[0] not in LABEL_KEYS and not nested and not any(key.startswith(prefix) for prefix in covered):
            parts.append(f"{key}={_lookup(after, key)}")
    return "; ".join(parts) or "(reference)"


def _row(
    run: SweepRun, first: SweepRun, trainer: SweepRun, metrics: dict[str, Any], reference: dict[str, Any]
) -> dict[str, Any]:
    """One table row: the run, its changes, its bounds (the headline direction's against the first run's),
    each direction's summary scores (the model's micro F1 with its bootstrap 95 % interval), and the generation
    cost."""
    row: dict[str, Any] = {
        "run": run.label,
        "changes": describe_changes(first.config, run.config),
        "trained_as": trainer.label,
        "final_val_loss": _final_val_loss(trainer.config.run_dir),
    }
    headline = headline_direction(metrics)
    for name, value in metrics["nelbo"].items():
        row[f"nelbo_{name}"] = value
        if name == headline:
            row[f"nelbo_{name}_stderr"] = metrics["nelbo_stderr"][name]
            theirs = reference["nelbo_per_pair"].get(name)
            paired = None if theirs is None else paired_difference(metrics["nelbo_per_pair"][name], theirs)
            row[f"nelbo_{name}_vs_first"] = None if paired is None else paired[0]
            row[f"nelbo_{name}_vs_first_stderr"] = None if paired is None else paired[1]
    for name, entry in metrics["directions"].items():
        row.update({f"{name}_{key}": value for key, value in entry.get("summary", {}).items()})
        if "scores" in entry:  # finding scores (datasets with finding labels)
            model = next(iter(entry["scores"]))  # the model's own system comes first, before the baselines
            interval = entry.get("intervals", {}).get(model, {}).get("micro_f1")
            if interval is not None:
                row[f"{name}_f1_ci95_low"], row[f"{name}_f1_ci95_high"] = interval
        if "consistency" in entry:
            row[f"{name}_self_inconsistent"] = entry["consistency"]["scores"]["model"]["self_inconsistent"]
    for name, cost in metrics["cost"].items():
        row[f"nfe_per_sample_{name}"] = cost["network_evaluations_per_sample"]
        row[f"seconds_per_sample_{name}"] = cost["seconds_per_sample"]
    return row


def headline_direction(metrics: dict[str, Any]) -> str | None:
    """The direction whose bound a sweep compares across runs: the one generating the most modalities that the
    run was evaluated on (the whole pair, when the model learned it)."""
    evaluated = [d for d in DIRECTIONS if d.name in metrics["nelbo"]]
    return max(evaluated, key=lambda d: len(d.generated)).name if evaluated else None


def _lookup(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _final_val_loss(run_dir: Path) -> float | None:
    log = run_dir / "train_log.jsonl"
    if not log.is_file():
        return None
    losses = [json.loads(line).get("val_loss") for line in log.read_text().splitlines() if line]
    losses = [loss for loss in losses if loss is not None]
    return losses[-1] if losses else None


def _write_tables(root: Path, rows: list[dict[str, Any]]) -> None:
    columns = _columns(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(root / "results.csv", buffer.getvalue())
    atomic_write_text(root / "results.md", markdown_table(rows))


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The sweep's rows as a markdown table (numbers to 3 decimals, missing as —)."""
    columns = _columns(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """Every column of any row, in the order they first appear (runs of other tasks have other columns)."""
    return list(dict.fromkeys(column for row in rows for column in row))


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
