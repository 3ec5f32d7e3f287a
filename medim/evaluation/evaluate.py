"""`medim eval`: does the model know the findings? Scores on the held-out split against trivial baselines.

- image -> text: reports generated from held-out images, parsed back to finding
  labels, scored against the true labels (precision / recall / F1).
- text -> image: images generated from held-out reports, judged by a finding
  classifier trained on tokenizer-reconstructed training images (its own
  accuracy on held-out images is reported), scored against the true labels.
- joint: generated pairs, scored by how well the judged image findings agree
  with the findings the generated report states.
- the held-out negative ELBO of each task (`medim.evaluation.likelihood`), the one
  number comparable across schedules and loss weights.
Baselines: the majority label set (usually "normal"), a random training
sample's labels, and for joint a shuffled pairing; learning shows as a gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from medim.backbones.base import Backbone
from medim.config import EvalConfig
from medim.evaluation.finding_classifier import (
    FindingClassifier,
    train_finding_classifier,
)
from medim.evaluation.finding_metrics import finding_scores
from medim.evaluation.gallery import save_gallery
from medim.evaluation.likelihood import nelbo_metrics
from medim.experiment import Experiment
from medim.io import atomic_write_json, cache_root, stable_hash
from medim.runs import load_run
from medim.tasks.generation import DecodeStats


def evaluate_run(
    run_dir: str | Path, overrides: Sequence[str] = (), progress: bool = True, out_dir: str | Path | None = None
) -> dict[str, Any]:
    """Generate and score all three tasks for a trained run; writes `metrics.json` and galleries.

    `overrides` change how the run decodes and what is scored (`sampler=...`, `eval.num_samples=50`,
    never the model); results go to `out_dir`, by default RUN_DIR/eval.
    """
    experiment, backbone = load_run(run_dir, progress=progress, overrides=overrides)
    return evaluate(experiment, backbone, Path(out_dir) if out_dir else Path(run_dir) / "eval", experiment.config.eval, progress)


def evaluate(
    experiment: Experiment, backbone: Backbone, out_dir: Path, cfg: EvalConfig, progress: bool = True
) -> dict[str, Any]:
    """Scores of image->text, text->image and joint generation (see the module docstring)."""
    dataset = experiment.dataset
    labels = dataset.findings
    held_out = dataset.split(cfg.split)
    n = min(cfg.num_samples, len(held_out))
    truth = held_out.labels[:n]
    train = dataset.split("train")
    judge, judge_scores = finding_judge(experiment, cfg, progress)
    sampler = experiment.sampler
    cost = {task: DecodeStats() for task in ("image_to_text", "text_to_image", "joint")}

    def generate(task: str, items: Any, count: int, **extra: Any) -> list[Any]:
        """Generate in batches of eval.batch_size; sample i always draws from the same seed, whatever the batching."""
        generator = experiment.task_named(task)
        outputs = []
        for start in tqdm(range(0, count, cfg.batch_size), desc=task, disable=not progress, leave=False):
            stop = min(start + cfg.batch_size, count)
            chunk = items[start:stop] if items is not None else stop - start
            outputs.append(generator.generate(
                backbone, sampler, chunk, num_steps=cfg.num_steps, modality_steps=cfg.modality_steps,
                seed=[_sample_seed(experiment.config.seed, task, i) for i in range(start, stop)], stats=cost[task], **extra,
            ))
        return outputs

    reports = [r for chunk in generate("image_to_text", held_out.images, n, cfg_scale=cfg.cfg_scale) for r in chunk]
    images = np.concatenate(generate("text_to_image", held_out.reports, n, cfg_scale=cfg.cfg_scale))
    joint_images, joint_reports = np.zeros((0,)), []
    if cfg.joint_samples:
        pairs = generate("joint", None, cfg.joint_samples)
        joint_images, joint_reports = np.concatenate([p[0] for p in pairs]), [r for p in pairs for r in p[1]]

    rng = np.random.default_rng(experiment.config.seed)
    majority = _majority(train.labels)
    random_train = [train.labels[i] for i in rng.integers(0, len(train), n)]
    judged_images = judge_findings(judge, images)
    metrics: dict[str, Any] = {
        "split": cfg.split,
        "num_samples": n,
        "judge": judge_scores,
        "image_to_text": {
            "model": finding_scores([dataset.parse_report(r) for r in reports], truth, labels),
            "baseline_majority": finding_scores([majority] * n, truth, labels),
            "baseline_random_train_report": finding_scores(random_train, truth, labels),
        },
        "text_to_image": {
            "model": finding_scores(judged_images, truth, labels),
            "baseline_majority": finding_scores([majority] * n, truth, labels),
            "baseline_random_train_image": finding_scores(
                judge_findings(judge, train.images[rng.integers(0, len(train), n)]), truth, labels
            ),
        },
    }
    if cfg.joint_samples:
        stated = [dataset.parse_report(r) for r in joint_reports]
        shown = judge_findings(judge, joint_images)
        metrics["joint"] = {
            "model_agreement": finding_scores(stated, shown, labels),
            "baseline_shuffled_pairs": finding_scores(stated, list(rng.permutation(np.array(shown, dtype=object))), labels),
            "normal_fraction": float(np.mean([not s for s in stated])),
        }
    metrics.update(nelbo_metrics(experiment, backbone, cfg.split))
    metrics["cost"] = {task: stats.summary() for task, stats in cost.items() if stats.evaluations}
    metrics["sampler"] = experiment.config.sampler
    metrics["decoding"] = {"num_steps": cfg.num_steps, "modality_steps": cfg.modality_steps, "cfg_scale": cfg.cfg_scale}
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "metrics.json", metrics)
    _write_galleries(out_dir, cfg, held_out, reports, images, joint_images, joint_reports)
    atomic_write_json(out_dir / "samples.json", {
        "image_to_text": [{"reference": r, "generated": g} for r, g in zip(held_out.reports[:n], reports)],
        "joint_reports": joint_reports,
    })
    return metrics


def _sample_seed(seed: int, task: str, index: int) -> int:
    """The seed of held-out sample `index` for `task`: fixed per sample, distinct across tasks."""
    return (seed * 7919 + ("image_to_text", "text_to_image", "joint").index(task)) * 1_000_003 + index


def finding_judge(experiment: Experiment, cfg: EvalConfig, progress: bool) -> tuple[FindingClassifier, dict[str, Any]]:
    """The classifier that reads findings from images, trained once per (data, tokenizer) and cached.

    It learns from training images passed through the image tokenizer (encode then
    decode), since generated images are decoded codes too; its scores on held-out
    reconstructed images tell how far its verdicts can be trusted.
    """
    dataset = experiment.dataset
    tokenizer = experiment.image_tokenizer
    key = stable_hash({"data": dataset.identity(), "tokenizer": tokenizer.identity(), "epochs": cfg.classifier_epochs})
    path = cache_root() / "judges" / f"finding-judge-{key}.pt"
    if path.is_file():
        judge = FindingClassifier.load(path)
    else:
        train = dataset.split("train")
        judge = train_finding_classifier(
            tokenizer.decode(tokenizer.encode(train.images)),
            _multihot(train.labels, dataset.findings),
            label_names=dataset.findings,
            epochs=cfg.classifier_epochs,
            seed=experiment.config.seed,
            progress=progress,
        )
        judge.save(path)
    held_out = dataset.split(cfg.split)
    reconstructed = tokenizer.decode(tokenizer.encode(held_out.images))
    scores = {
        "on_reconstructed_images": finding_scores(judge_findings(judge, reconstructed), held_out.labels, dataset.findings),
        "on_original_images": finding_scores(judge_findings(judge, held_out.images), held_out.labels, dataset.findings),
    }
    return judge, scores


def judge_findings(judge: FindingClassifier, images: np.ndarray) -> list[frozenset[str]]:
    """The findings the classifier sees in each uint8 image [N, H, W, 3]."""
    if len(images) == 0:
        return []
    return [frozenset(np.array(judge.label_names)[row]) for row in judge.predict(images)]


def _multihot(label_sets: list[frozenset[str]], findings: tuple[str, ...]) -> np.ndarray:
    return np.array([[f in labels for f in findings] for labels in label_sets], dtype=bool)


def _majority(label_sets: list[frozenset[str]]) -> frozenset[str]:
    values, counts = np.unique(np.array(["|".join(sorted(s)) for s in label_sets]), return_counts=True)
    return frozenset(values[counts.argmax()].split("|")) - {""}


def _write_galleries(out_dir: Path, cfg: EvalConfig, held_out: Any, reports: list[str], images: np.ndarray, joint_images: np.ndarray, joint_reports: list[str]) -> None:
    k = min(cfg.gallery_size, len(reports))
    if k == 0:
        return
    save_gallery(
        out_dir / "image_to_text.png", list(held_out.images[:k]),
        [f"GENERATED: {g}\nREFERENCE: {r}" for g, r in zip(reports[:k], held_out.reports[:k])],
        title="image -> text: held-out image, generated report (and the reference)", caption_width_chars=44,
    )
    save_gallery(
        out_dir / "text_to_image.png", list(images[:k]), list(held_out.reports[:k]),
        reference_images=list(held_out.images[:k]),
        title="text -> image: generated | real image, for the report below", caption_width_chars=44,
    )
    if len(joint_reports):
        j = min(cfg.gallery_size, len(joint_reports))
        save_gallery(out_dir / "joint.png", list(joint_images[:j]), joint_reports[:j], title="joint: generated image-report pairs")


def summary_table(metrics: dict[str, Any]) -> str:
    """The headline numbers as a small text table."""
    rows = [("task", "system", "micro F1", "label acc", "exact")]
    for task in ("image_to_text", "text_to_image"):
        for system, scores in metrics[task].items():
            rows.append((task, system, f"{scores['micro_f1']:.3f}", f"{scores['label_accuracy']:.3f}", f"{scores['exact_match']:.3f}"))
    if "joint" in metrics:
        for system in ("model_agreement", "baseline_shuffled_pairs"):
            scores = metrics["joint"][system]
            rows.append(("joint", system, f"{scores['micro_f1']:.3f}", f"{scores['label_accuracy']:.3f}", f"{scores['exact_match']:.3f}"))
    judge = metrics["judge"]["on_reconstructed_images"]
    rows.append(("judge", "on held-out images", f"{judge['micro_f1']:.3f}", f"{judge['label_accuracy']:.3f}", f"{judge['exact_match']:.3f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    table = "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows)
    if "nelbo_stderr" not in metrics:
        return table
    bounds = ", ".join(f"{task} {value:.3f} ± {metrics['nelbo_stderr'][task]:.3f}" for task, value in metrics["nelbo"].items())
    return f"{table}\nheld-out negative ELBO (nats per token, ± standard error): {bounds}"

