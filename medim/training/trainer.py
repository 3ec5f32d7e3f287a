"""`medim train`: the accelerate-based training loop with validation, checkpoints and resume.

Reproducibility: the batch for step k and all noise drawn at step k come from
generators seeded by (seed, k), so a resumed run continues exactly as an
uninterrupted one would (same next batch, same next loss).
"""

from __future__ import annotations

import json
import logging
import math
import platform
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch import Tensor
from tqdm.auto import tqdm

from medim.config import ExperimentConfig, TrainConfig, load_resolved
from medim.config.policy import DECODING_SECTIONS, RESUMABLE_TRAIN_KEYS, weight_changes
from medim.data.token_shards import TokenShards
from medim.errors import ConfigError
from medim.experiment import Experiment, build_experiment
from medim.io import atomic_write_json, atomic_write_text
from medim.objectives.base import LossOutput
from medim.training.checkpoints import (
    TrainerState,
    latest_checkpoint,
    load_model_weights,
    load_training_state,
    save_checkpoint,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """Where the run lives and how it ended."""

    run_dir: Path
    steps_done: int
    finished: bool


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """A generator that depends only on (seed, step, stream), the basis of exact resume."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 7 + stream)


def batch_indices(num_examples: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """Indices of step `step`'s batch: consecutive slices of per-epoch permutations (no repeats in an epoch)."""
    start = step * batch_size
    indices = []
    while len(indices) < batch_size:
        epoch, offset = divmod(start + len(indices), num_examples)
        order = torch.randperm(num_examples, generator=step_generator(seed, epoch, stream=1))
        indices.extend(order[offset : offset + batch_size - len(indices)].tolist())
    return torch.tensor(indices)


def lr_factor(step: int, train: TrainConfig) -> float:
    """Linear warmup to 1, then cosine decay to `min_lr_ratio` at the last step."""
    if step < train.warmup_steps:
        return (step + 1) / train.warmup_steps
    progress = (step - train.warmup_steps) / max(1, train.steps - train.warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return train.min_lr_ratio + (1.0 - train.min_lr_ratio) * cosine


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages a run depends on, recorded in each run directory."""
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in ("medim", "torch", "transformers", "accelerate", "pydantic", "sentencepiece", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def prepare_run_dir(config: ExperimentConfig, resume: bool) -> Path:
    """Check the run directory against `resume`; a resumed run must have the same config."""
    run_dir = config.run_dir
    resolved = run_dir / "resolved.yaml"
    if not resume:
        if latest_checkpoint(run_dir) is not None:
            raise ConfigError(
                f"run directory {run_dir} already holds a trained run; pass --resume to continue it, "
                f"or choose another name (name=...) or output_dir"
            )
        return run_dir
    if not resolved.is_file():
        raise ConfigError(f"--resume: {run_dir} holds no run (no resolved.yaml); train without --resume first")
    not_allowed = weight_changes(load_resolved(resolved), config)
    if not_allowed:
        raise ConfigError(
            f"--resume: the config differs from the run in {run_dir} at {', '.join(not_allowed)}; "
            f"only train.{{{', '.join(sorted(RESUMABLE_TRAIN_KEYS))}}} and the decoding sections "
            f"({', '.join(s + '.*' for s in DECODING_SECTIONS)}) may change when resuming"
        )
    return run_dir


def train(config: ExperimentConfig, *, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train `config`'s task, writing the run directory; returns where it went and how far it got."""
    run_dir = prepare_run_dir(config, resume)
    if config.train.num_threads:
        torch.set_num_threads(config.train.num_threads)
    session = _Session.open(config, run_dir, resume, progress)
    step, stopped_early = session.run(progress)
    return TrainResult(run_dir=run_dir, steps_done=step, finished=not stopped_early and step >= config.train.steps)


@dataclass
class _Session:
    """One invocation of `medim train`: the built experiment, model, optimiser and where training stands."""

    config: ExperimentConfig
    run_dir: Path
    experiment: Experiment
    train_tokens: TokenShards
    val_tokens: TokenShards
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    accelerator: Accelerator
    state: TrainerState
    log: _TrainLog

    @classmethod
    def open(cls, config: ExperimentConfig, run_dir: Path, resume: bool, progress: bool) -> _Session:
        """Build everything, restore the latest checkpoint when resuming, and write the run's config files."""
        train_cfg = config.train
        experiment = build_experiment(config, progress=progress)
        train_tokens, val_tokens = experiment.tokens("train"), experiment.tokens("val")
        model = experiment.build_backbone()
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=train_cfg.lr, betas=train_cfg.betas, weight_decay=train_cfg.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, train_cfg))
        state = TrainerState(step=0, elapsed_seconds=0.0)
        checkpoint = latest_checkpoint(run_dir) if resume else None
        if checkpoint is not None:
            load_model_weights(model, checkpoint)
            state = load_training_state(checkpoint, optimizer, scheduler)
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "resolved.yaml", config.to_yaml())
        atomic_write_json(run_dir / "versions.json", package_versions())
        log = _TrainLog(run_dir / "train_log.jsonl", keep_until=state.step)
        accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=train_cfg.mixed_precision)
        model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
        return cls(
            config, run_dir, experiment, train_tokens, val_tokens, model, optimizer, scheduler, accelerator, state, log
        )

    def run(self, progress: bool) -> tuple[int, bool]:
        """Train until train.steps or train.max_minutes; returns (steps done, whether it stopped early)."""
        train_cfg = self.config.train
        session_start = time.monotonic()  # train.max_minutes limits each invocation, so a resume gets a full budget
        step = self.state.step
        bar = tqdm(
            total=train_cfg.steps,
            initial=step,
            desc=f"train {self.config.name}",
            disable=not progress,
            dynamic_ncols=True,
        )
        window_tokens, window_start = 0, time.monotonic()
        while step < train_cfg.steps:
            output, grad_norm = self.step(step)
            step += 1
            window_tokens += train_cfg.batch_size * self.train_tokens.shape[1]
            bar.update(1)
            if step % train_cfg.log_every == 0 or step == train_cfg.steps:
                speed = window_tokens / max(1e-9, time.monotonic() - window_start)
                window_tokens, window_start = 0, time.monotonic()
                self.log.write(self.record(step, output, grad_norm, speed))
                bar.set_postfix(loss=f"{output.loss.item():.3f}", acc=f"{output.accuracy:.2f}", tok_s=f"{speed:,.0f}")
            if step % train_cfg.eval_every == 0 or step == train_cfg.steps:
                self.validate(step)
            session = time.monotonic() - session_start
            timed_out = train_cfg.max_minutes is not None and session > 60 * train_cfg.max_minutes
            if step % train_cfg.checkpoint_every == 0 or step == train_cfg.steps or timed_out:
                self.checkpoint(step, session)
            if timed_out and step < train_cfg.steps:
                logger.info("stopping at step %d: train.max_minutes=%s reached (resume with --resume)", step,
                            train_cfg.max_minutes)  # fmt: skip
                bar.close()
                return step, True
        bar.close()
        return step, False

    def step(self, step: int) -> tuple[LossOutput, Tensor | None]:
        """One optimizer step on step `step`'s batch and noise; returns its loss and the gradient norm."""
        train_cfg, accelerator = self.config.train, self.accelerator
        self.model.train()
        indices = batch_indices(len(self.train_tokens), train_cfg.batch_size, self.config.seed, step)
        x0 = self.train_tokens[indices].to(accelerator.device)
        batch = self.experiment.task.training_batch(x0, step_generator(self.config.seed, step))
        output = self.experiment.task.loss(self.model, batch)
        accelerator.backward(output.loss)
        grad_norm = None
        if train_cfg.grad_clip:
            grad_norm = accelerator.clip_grad_norm_(self.model.parameters(), train_cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return output, grad_norm

    def record(self, step: int, output: LossOutput, grad_norm: Tensor | None, speed: float) -> dict[str, Any]:
        """The training log's line for `step`."""
        return {
            "step": step,
            "loss": output.loss.item(),
            "cross_entropy": output.cross_entropy,
            "accuracy": output.accuracy,
            "lr": self.scheduler.get_last_lr()[0],
            "tokens_per_s": round(speed),
            "grad_norm": None if grad_norm is None else float(grad_norm),
            **{f"cross_entropy_{name}": value for name, value in output.modality_cross_entropy.items()},
        }

    def validate(self, step: int) -> None:
        """Log the validation losses at `step`."""
        model = self.accelerator.unwrap_model(self.model)
        val = validation_losses(
            self.experiment, model, self.val_tokens, self.config.train, self.config.seed, self.accelerator.device
        )
        self.log.write({"step": step, **{f"val_{k}": v for k, v in val.items()}})
        logger.info("step %d: %s", step, ", ".join(f"val {k} {v:.4f}" for k, v in val.items()))

    def checkpoint(self, step: int, session_seconds: float) -> None:
        """Save a checkpoint of `step` (the time spent in earlier sessions included)."""
        train_cfg = self.config.train
        elapsed = self.state.elapsed_seconds + session_seconds
        state = TrainerState(step=step, elapsed_seconds=elapsed, finished=step == train_cfg.steps)
        model = self.accelerator.unwrap_model(self.model)
        save_checkpoint(self.run_dir, model, self.optimizer, self.scheduler, state, train_cfg.keep_checkpoints)


@torch.no_grad()
def validation_losses(
    experiment: Experiment,
    model: torch.nn.Module,
    val_tokens: torch.Tensor,
    train_cfg: TrainConfig,
    seed: int,
    device: torch.device,
) -> dict[str, float]:
    """Mean validation loss per task over fixed batches and fixed noise (comparable across steps)."""
    model.eval()
    totals: dict[str, float] = {}
    for index in range(train_cfg.val_batches):
        rows = torch.arange(index * train_cfg.batch_size, (index + 1) * train_cfg.batch_size) % len(val_tokens)
        losses = experiment.task.validation_losses(
            model, val_tokens[rows].to(device), step_generator(seed, index, stream=2)
        )
        for key, value in losses.items():
            totals[key] = totals.get(key, 0.0) + value / train_cfg.val_batches
    return totals


class _TrainLog:
    """Append-only JSON-lines log; on resume, lines past the checkpoint's step are dropped."""

    def __init__(self, path: Path, keep_until: int) -> None:
        self.path = path
        if path.is_file():
            kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= keep_until]
            atomic_write_text(path, "".join(line + "\n" for line in kept))

    def write(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
