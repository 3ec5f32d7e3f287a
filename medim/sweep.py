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
resumable: a finished training or evaluation is reused while its config is
unchanged, an interrupted training resumes. The table (`results.md`, `results.csv`)
has each run's changes against the first run, its held-out scores (and the share of
joint reports stating no finding, which exposes a sampler collapsing to the mode),
its final validation loss (in its own objective's units) and held-out negative ELBO
(the same yardstick for every run), and its generation cost (network evaluations and seconds
per sample).
"""

from __future__ import annotations

import csv
import io
import json
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
    BUNDLED_EXPERIMENTS,
    changed_keys,
    find_experiment,
    read_yaml,
)
from medim.errors import ConfigError
from medim.evaluation.evaluate import evaluate
from medim.evaluation.likelihood import held_out_nelbo
from medim.io import atomic_write_json, atomic_write_text, stable_hash
from medim.runs import DECODING_SECTIONS, open_run
from medim.training.checkpoints import latest_checkpoint, trained_steps
from medim.training.trainer import train

#: Top-level config keys that say nothing about what is trained.
_LABELS = ("name", "description")


@dataclass(frozen=True)
class SweepRun:
    """One row of a sweep: its label and its validated config."""

    label: str
    config: ExperimentConfig


def load_sweep(sources: Sequence[str], extra: Sequence[str] = (), name: str | None = None) -> tuple[str, list[SweepRun]]:
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
    shared = [*(data.get("overrides") or []), *extra]
    entries = []
    for label, entry in runs.items():
        if not isinstance(entry, dict) or "experiment" not in entry or set(entry) - {"experiment", "overrides"}:
            raise ConfigError(f"{path}: runs.{label} must be {{experiment: NAME, overrides: [...]}}, got {entry!r}")
        entries.append((str(label), str(entry["experiment"]), [*(entry.get("overrides") or []), *shared]))
    return name or str(data.get("name") or path.stem), [_sweep_run(label, exp, ov) for label, exp, ov in entries]


def list_sweeps() -> list[str]:
    """Names of the bundled sweep files (`experiments/sweeps/`)."""
    return sorted(str(p.relative_to(BUNDLED_EXPERIMENTS).with_suffix("")) for p in (BUNDLED_EXPERIMENTS / "sweeps").glob("*.yaml"))


def sweep_of_experiments(experiments: Sequence[str], extra: Sequence[str] = (), name: str = "sweep") -> tuple[str, list[SweepRun]]:
    """(name, runs) for experiments named on the command line, each labelled by its file name."""
    labels = [Path(e).stem for e in experiments]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ConfigError(f"two experiments share the label {duplicates[0]!r}; write a sweep file to name them apart")
    return name, [_sweep_run(label, experiment, list(extra)) for label, experiment in zip(labels, experiments)]


def _sweep_run(label: str, experiment: str, overrides: list[str]) -> SweepRun:
    return SweepRun(label, load_experiment(experiment, overrides))


def training_identity(config: ExperimentConfig) -> str:
    """A hash of what a config trains (everything but decoding and labels)."""
    data = config.model_dump(mode="json")
    return stable_hash({k: v for k, v in data.items() if k not in (*DECODING_SECTIONS, *_LABELS)})


def run_sweep(name: str, runs: list[SweepRun], *, fresh: bool = False, progress: bool = True) -> list[dict[str, Any]]:
    """Train what is not trained, evaluate what is not evaluated, write and return the comparison rows."""
    root = Path(runs[0].config.output_dir) / "sweeps" / name
    if fresh and root.exists():
        shutil.rmtree(root)
    trainers: dict[str, SweepRun] = {}
    rows = []
    for index, run in enumerate(runs, 1):
        config = validate_experiment({**run.config.model_dump(mode="json"), "name": f"sweeps/{name}/{run.label}"})
        trainer = trainers.setdefault(training_identity(config), SweepRun(run.label, config))
        if trainer.label != run.label:
            print(f"[{index}/{len(runs)}] {run.label}: decoding change only, evaluated on {trainer.label}'s model")
        elif trained_steps(config.run_dir) >= config.train.steps:
            print(f"[{index}/{len(runs)}] {run.label}: already trained ({config.run_dir})")
        else:
            print(f"[{index}/{len(runs)}] {run.label}: training {config.run_dir}")
            result = train(config, resume=latest_checkpoint(config.run_dir) is not None, progress=progress)
            if not result.finished:
                print(f"  stopped at step {result.steps_done} of {config.train.steps} (train.max_minutes); evaluated as it is, "
                      f"run the sweep again to continue (or add --set '~train.max_minutes')")
        metrics = _evaluated(config, trainer.config.run_dir, progress)
        rows.append(_row(run, runs[0], trainer, metrics))
    _write_tables(root, rows)
    return rows


def _evaluated(config: ExperimentConfig, weights_dir: Path, progress: bool) -> dict[str, Any]:
    """The run's metrics: reused when this exact config was evaluated on these weights, else computed."""
    out = config.run_dir / "eval"
    checkpoint = latest_checkpoint(weights_dir)
    key = stable_hash({"config": config.model_dump(mode="json"), "weights": str(checkpoint)})
    marker = config.run_dir / "sweep_eval.json"
    if marker.is_file() and json.loads(marker.read_text()).get("key") == key and (out / "metrics.json").is_file():
        metrics = json.loads((out / "metrics.json").read_text())
        if "nelbo" not in metrics:  # evaluated by a version without the bound: add it, nothing else is redone
            experiment, backbone = open_run(weights_dir, config, progress)
            metrics["nelbo"] = held_out_nelbo(experiment, backbone, config.eval.split, seed=config.seed)
            atomic_write_json(out / "metrics.json", metrics)
        return metrics
    experiment, backbone = open_run(weights_dir, config, progress)
    metrics = evaluate(experiment, backbone, out, config.eval, progress)
    if weights_dir != config.run_dir:  # an evaluation-only run: say what it decoded with, and on whose weights
        atomic_write_text(config.run_dir / "config.yaml", config.to_yaml())
    atomic_write_json(marker, {"key": key, "weights": str(weights_dir)})
    return metrics


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
        if key.split(".")[0] not in _LABELS and not nested and not any(key.startswith(prefix) for prefix in covered):
            parts.append(f"{key}={_lookup(after, key)}")
    return "; ".join(parts) or "(reference)"


def _row(run: SweepRun, first: SweepRun, trainer: SweepRun, metrics: dict[str, Any]) -> dict[str, Any]:
    cost = metrics.get("cost", {})
    return {
        "run": run.label,
        "changes": describe_changes(first.config, run.config),
        "trained_as": trainer.label,
        "final_val_loss": _final_val_loss(trainer.config.run_dir),
        "nelbo_joint": metrics["nelbo"]["joint"],
        "nelbo_image_to_text": metrics["nelbo"]["image_to_text"],
        "nelbo_text_to_image": metrics["nelbo"]["text_to_image"],
        "image_to_text_f1": metrics["image_to_text"]["model"]["micro_f1"],
        "text_to_image_f1": metrics["text_to_image"]["model"]["micro_f1"],
        "joint_agreement_f1": metrics.get("joint", {}).get("model_agreement", {}).get("micro_f1"),
        "joint_normal_fraction": metrics.get("joint", {}).get("normal_fraction"),
        "nfe_per_sample_i2t": cost.get("image_to_text", {}).get("network_evaluations_per_sample"),
        "nfe_per_sample_t2i": cost.get("text_to_image", {}).get("network_evaluations_per_sample"),
        "seconds_per_sample_i2t": cost.get("image_to_text", {}).get("seconds_per_sample"),
        "seconds_per_sample_t2i": cost.get("text_to_image", {}).get("seconds_per_sample"),
    }


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
    columns = list(rows[0])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(root / "results.csv", buffer.getvalue())
    atomic_write_text(root / "results.md", markdown_table(rows))


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The sweep's rows as a markdown table (numbers to 3 decimals, missing as —)."""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row[c]) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
