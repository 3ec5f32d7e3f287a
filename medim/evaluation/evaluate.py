"""`medim eval`: does the model know the findings? Scores on the held-out split against trivial baselines.

For each direction a request can take (`medim.evaluation.directions`: text given
image, image given text, image and text from nothing) that the run's task can answer
(built-in or plugin, whatever it is called), generate for the held-out split (or
`eval.joint_samples` samples from nothing), score what came out
(`medim.evaluation.task_scores`) and add the held-out negative ELBO of the direction
(`medim.evaluation.likelihood`), the one number comparable across schedules and loss
weights. What cannot be done (a direction the model was not trained for, a dataset
without finding labels) is listed under `skipped` with the reason. Writes
`metrics.json`, a gallery per direction and `samples.json`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from medim.backbones.base import Backbone
from medim.config import EvalConfig
from medim.data.paired import PairedSplit
from medim.errors import DataError
from medim.evaluation.bootstrap import BootstrapSettings
from medim.evaluation.confidence import finding_intervals
from medim.evaluation.consistency import consistency_block
from medim.evaluation.directions import DIRECTIONS, IMAGE_GIVEN_TEXT, TEXT_GIVEN_IMAGE, Direction
from medim.evaluation.finding_classifier import FindingClassifier
from medim.evaluation.gallery import save_gallery
from medim.evaluation.image_scoring import FLOOR, check_image_metrics, floor_images, image_metric_blocks
from medim.evaluation.judge import finding_judge
from medim.evaluation.likelihood import nelbo_metrics
from medim.evaluation.metric_tables import GROUPED_METRICS, format_number, write_markdown_table
from medim.evaluation.report_html import write_html_report
from medim.evaluation.report_scoring import random_training_reports, report_metric_blocks
from medim.evaluation.task_scores import SCORERS, ScoringContext
from medim.experiment import Experiment
from medim.io import atomic_write_json
from medim.precision import generation_autocast
from medim.runs import load_run
from medim.samplers.base import Sampler
from medim.tasks.base import MaskedDiffusionTask
from medim.tasks.costs import DecodeStats
from medim.versions import package_versions

Outputs = tuple[np.ndarray | None, list[str] | None]


def evaluate_run(
    run_dir: str | Path, overrides: Sequence[str] = (), progress: bool = True, out_dir: str | Path | None = None
) -> dict[str, Any]:
    """Generate and score every direction of a trained run; writes `metrics.json` and galleries.

    `overrides` change how the run decodes and what is scored (`sampler=...`, `eval.num_samples=50`,
    never the model); results go to `out_dir`, by default RUN_DIR/eval.
    """
    experiment, backbone = load_run(run_dir, progress=progress, overrides=overrides)
    out = Path(out_dir) if out_dir else Path(run_dir) / "eval"
    return evaluate(experiment, backbone, out, experiment.config.eval, progress, run_dir=run_dir)


def evaluate(
    experiment: Experiment,
    backbone: Backbone,
    out_dir: Path,
    cfg: EvalConfig,
    progress: bool = True,
    *,
    run_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Scores of each direction's generations, the held-out bound and the generation costs (module docstring).

    Writes metrics.json, items.json, metrics.md, report.html (with the training curves of `run_dir`, by default
    the experiment's run directory), galleries and samples.json into `out_dir`.
    """
    if cfg.image_metrics is not None:
        check_image_metrics(cfg.image_metrics)  # before any generation: a missing file is found in seconds
    dataset = experiment.dataset
    held_out = dataset.split(cfg.split)
    n = min(cfg.num_samples, len(held_out))
    labels = dataset.finding_labels() if held_out.labels is not None else None
    metrics: dict[str, Any] = {
        "split": cfg.split,
        "num_samples": n,
        "seed": experiment.config.seed,
        "versions": package_versions(),
        "directions": {},
        "skipped": {},
    }

    @functools.cache
    def judge() -> FindingClassifier:
        classifier, metrics["judge"] = finding_judge(experiment, cfg, labels, progress)
        return classifier

    context = None
    if labels is not None:
        rng = np.random.default_rng(experiment.config.seed)
        context = ScoringContext(held_out, n, dataset.split("train"), labels, judge, rng)
    bootstrap = BootstrapSettings(cfg.bootstrap_resamples, experiment.config.seed) if cfg.bootstrap_resamples else None
    items: dict[str, Any] = {}
    answered: dict[Direction, MaskedDiffusionTask] = {}
    outputs: dict[Direction, Outputs] = {}
    cost: dict[str, DecodeStats] = {}
    for direction in DIRECTIONS:
        try:
            answered[direction] = experiment.task.task_for(frozenset(direction.generated))
        except DataError as exc:
            metrics["skipped"][direction.name] = str(exc)
            continue
        count = n if direction.given else cfg.joint_samples
        if count == 0:
            metrics["skipped"][direction.name] = "eval.joint_samples is 0: no samples from nothing were asked for"
            continue
        cost[direction.name] = DecodeStats()
        task = answered[direction]
        with generation_autocast(next(backbone.parameters()).device, cfg.autocast):
            outputs[direction] = generate_held_out(
                experiment, backbone, experiment.sampler, task, direction, count, cfg, cost[direction.name], progress
            )
        seed = experiment.config.seed
        if direction == TEXT_GIVEN_IMAGE and cfg.report_metrics:
            retrieved = context.retrieved_reports() if context is not None else None
            _score_reports(metrics, outputs[direction][1], held_out, dataset, n, cfg, bootstrap, seed, retrieved)
        if direction == IMAGE_GIVEN_TEXT and cfg.image_metrics is not None:
            device = next(backbone.parameters()).device
            train_images = dataset.split("train").images
            _score_images(metrics, outputs[direction][0], held_out, train_images, cfg, bootstrap, seed, out_dir, device)
        if outputs[direction][1] is not None:
            metrics["directions"].setdefault(direction.name, {})["consistency"] = _consistency(
                outputs[direction][1], held_out.reports[:count], labels
            )
        if context is None:
            metrics["skipped"][direction.name] = (
                f"finding scores: {dataset.missing_finding_labels_reason() or 'the dataset has no finding labels'}"
            )
            continue
        result = SCORERS[direction](*outputs[direction], context)
        items[direction.name] = result.pop("items")
        if bootstrap is not None:
            result["intervals"] = finding_intervals(items[direction.name], labels.names, bootstrap)
        metrics["directions"].setdefault(direction.name, {}).update(result)
    metrics.update(nelbo_metrics(experiment, backbone, cfg.split, list(answered)))
    metrics["cost"] = {name: stats.summary() for name, stats in cost.items()}
    metrics["sampler"] = experiment.config.sampler.block()
    metrics["decoding"] = {"num_steps": cfg.num_steps, "modality_steps": cfg.modality_steps, "cfg_scale": cfg.cfg_scale}
    if bootstrap is not None and items:
        metrics["bootstrap"] = bootstrap.describe()
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "metrics.json", metrics)
    atomic_write_json(
        out_dir / "items.json",
        {"split": cfg.split, "num_samples": n, "labels": list(labels.names) if labels else None, "directions": items},
    )
    write_samples(out_dir, cfg, outputs, held_out)
    write_markdown_table(metrics, out_dir / "metrics.md")
    write_html_report(run_dir or experiment.config.run_dir, out_dir, metrics, outputs, held_out)
    return metrics


def _score_reports(
    metrics: dict[str, Any],
    reports: list[str],
    held_out: PairedSplit,
    dataset: Any,
    n: int,
    cfg: EvalConfig,
    bootstrap: BootstrapSettings | None,
    seed: int,
    retrieved: list[str] | None,
) -> None:
    """The report metrics of the reports written for the first n held-out images (`medim.evaluation.report_scoring`),
    beside a random training report and, where the dataset has finding labels, the retrieval baseline."""
    train_reports = dataset.split("train").reports
    systems = {"model": reports, "baseline_random_train_report": random_training_reports(train_reports, n, seed)}
    if retrieved is not None:
        systems["baseline_retrieval_by_judge"] = retrieved
    blocks, skipped = report_metric_blocks(cfg.report_metrics, systems, list(held_out.reports[:n]), bootstrap)
    if blocks:
        metrics["directions"].setdefault(TEXT_GIVEN_IMAGE.name, {})["report_metrics"] = blocks
    for protocol, why in skipped.items():
        metrics["skipped"][f"report_metrics.{protocol}"] = why


def _consistency(reports: list[str], held_out_reports: Sequence[str], labels: Any) -> dict[str, Any]:
    """The consistency block (`medim.evaluation.consistency`) of generated reports beside as many held-out ones."""
    systems = {"model": reports, "held_out_reports": list(held_out_reports)}
    return consistency_block(systems, labels.contradictions if labels is not None else None)


def _score_images(
    metrics: dict[str, Any],
    images: np.ndarray,
    held_out: PairedSplit,
    train_images: Any,
    cfg: EvalConfig,
    bootstrap: BootstrapSettings | None,
    seed: int,
    out_dir: Path,
    device: torch.device,
) -> None:
    """The image metrics of the images drawn for the first n held-out reports (`medim.evaluation.image_scoring`),
    beside the floor of n real training images; their features are saved into `out_dir`."""
    n = len(images)
    systems = {"model": images}
    floor = floor_images(train_images, n, seed)
    if floor is None:
        metrics["skipped"][f"image_metrics.{FLOOR}"] = f"the training split has fewer than {n} images"
    else:
        systems[FLOOR] = floor
    reference = np.asarray(held_out.images[:n])
    blocks = image_metric_blocks(cfg.image_metrics, systems, reference, bootstrap, out_dir, device=device)
    metrics["directions"].setdefault(IMAGE_GIVEN_TEXT.name, {})["image_metrics"] = blocks


def generate_held_out(
    experiment: Experiment,
    backbone: Backbone,
    sampler: Sampler,
    task: MaskedDiffusionTask,
    direction: Direction,
    count: int,
    cfg: EvalConfig,
    stats: DecodeStats,
    progress: bool,
) -> Outputs:
    """(images, reports) `task` generates with `sampler` in `direction` for the first `count` held-out pairs (or
    from nothing), as `cfg` says, in batches of eval.batch_size; sample i always draws from the same seed, whatever
    the batching."""
    held_out = experiment.dataset.split(cfg.split)
    images, reports = [], []
    for start in tqdm(range(0, count, cfg.batch_size), desc=direction.name, disable=not progress, leave=False):
        stop = min(start + cfg.batch_size, count)
        generated = task.generate(
            backbone,
            sampler,
            direction.request(held_out, start, stop),
            num_steps=cfg.num_steps,
            modality_steps=cfg.modality_steps,
            cfg_scale=cfg.cfg_scale if direction.given else 0.0,
            seed=[direction.sample_seed(experiment.config.seed, i) for i in range(start, stop)],
            stats=stats,
        )
        images += [] if generated.images is None else list(generated.images)
        reports += generated.reports or []
    return (np.stack(images) if images else None), (reports or None)


def write_samples(out_dir: Path, cfg: EvalConfig, outputs: dict[Direction, Outputs], held_out: PairedSplit) -> None:
    """A gallery per direction (its first `cfg.gallery_size` samples) and `samples.json` with every generated
    report (beside its reference, if any), into `out_dir`."""
    samples = {}
    for direction, (images, reports) in outputs.items():
        given_image, given_report = "image" in direction.given, "text" in direction.given
        if reports is not None:
            samples[direction.name] = [
                {"generated": g, **({"reference": held_out.reports[i]} if given_image else {})}
                for i, g in enumerate(reports)
            ]
        k = min(cfg.gallery_size, len(reports) if reports is not None else len(images))
        if k == 0:
            continue
        if given_image:
            captions = [f"GENERATED: {g}\nREFERENCE: {r}" for g, r in zip(reports[:k], held_out.reports[:k])]
        else:
            captions = list(held_out.reports[:k] if given_report else reports[:k])
        save_gallery(
            out_dir / f"{direction.name}.png",
            list((held_out.images if given_image else images)[:k]),
            captions,
            reference_images=list(held_out.images[:k]) if given_report else None,
            title=direction.describe() + (": generated | real" if given_report else ""),
            caption_width_chars=44,
        )
    atomic_write_json(out_dir / "samples.json", samples)


def summary_table(metrics: dict[str, Any]) -> str:
    """The headline numbers as a small text table (micro F1 with its 95 % interval when bootstrapped), the
    skipped directions and the held-out bounds."""
    rows = [("direction", "system", "micro F1", "95 % interval", "label acc", "exact")]
    for direction, entry in metrics["directions"].items():
        for system, scores in entry.get("scores", {}).items():
            interval = entry.get("intervals", {}).get(system, {}).get("micro_f1")
            rows.append(_score_row(direction, system, scores, interval))
    if "judge" in metrics:
        rows.append(_score_row("judge", "on held-out images", metrics["judge"]["on_reconstructed_images"], None))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines += _grouped_metric_lines(metrics)
    for direction, entry in metrics["directions"].items():
        if "consistency" in entry:
            shares = {system: scores["self_inconsistent"] for system, scores in entry["consistency"]["scores"].items()}
            shown = ", ".join(f"{system} {share:.1%}" for system, share in shares.items())
            lines.append(f"{direction}, self-inconsistent reports (a finding stated and denied, or repeated): {shown}")
    lines += [f"{direction}: skipped ({reason})" for direction, reason in metrics["skipped"].items()]
    if metrics["nelbo"]:
        bounds = ", ".join(
            f"{name} {value:.3f} ± {metrics['nelbo_stderr'][name]:.3f}" for name, value in metrics["nelbo"].items()
        )
        kind = metrics.get("nelbo_kind", "negative ELBO")
        lines.append(f"held-out {kind} (nats per token, ± standard error): {bounds}")
    return "\n".join(lines)


def _grouped_metric_lines(metrics: dict[str, Any]) -> list[str]:
    """Report and image metrics, a line per system: `text_given_image, report metrics (protocol r2gen), model:
    bleu_1 0.412 [0.398, 0.427], ...`."""
    lines = []
    for direction, entry in metrics["directions"].items():
        for group, named_by in GROUPED_METRICS.items():
            for label, block in entry.get(group, {}).items():
                for system, scores in block["scores"].items():
                    interval = block["intervals"].get(system, {})
                    shown = ", ".join(
                        f"{name} {format_number(value)}"
                        + (f" [{format_number(interval[name][0])}, {format_number(interval[name][1])}]"
                           if name in interval else "")
                        for name, value in scores.items()
                        if value is not None
                    )  # fmt: skip
                    lines.append(f"{direction}, {group.replace('_', ' ')} ({named_by} {label}), {system}: {shown}")
    return lines


def _score_row(direction: str, system: str, scores: dict[str, Any], interval: list[float] | None) -> tuple[str, ...]:
    micro, accuracy, exact = scores["micro_f1"], scores["label_accuracy"], scores["exact_match"]
    shown = f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""
    return direction, system, f"{micro:.3f}", shown, f"{accuracy:.3f}", f"{exact:.3f}"
