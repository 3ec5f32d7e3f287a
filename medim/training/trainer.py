"""`medim train`: the accelerate-based training loop with validation, checkpoints, resume and fault handling.

Reproducibility: the global batch of step k and all noise drawn at step k come from generators
seeded by (seed, k), so a resumed run continues exactly as an uninterrupted one would (same next
batch, same next loss). The whole global batch is corrupted at once and then cut over processes and
micro-batches (`medim.training.batches`), so 2 processes x 32, or 4 micro-batches of 16, train on the
same samples with the same noise as 1 process x 64, up to float summation order.

Scale: launched with `accelerate launch --config_file experiments/paper/accelerate/ddp_8gpu.yml -m medim
train ...` (or fsdp_8gpu.yml), each process runs this loop on its slice of the global batch
`train.batch_size`; `train.micro_batch_size` sets the rows per forward and so the gradient accumulation.
Precision is `train.mixed_precision` exactly (fp16 with accelerate's loss scaler; refused where it
cannot run, never switched). Faults (`medim.training.faults`): SIGTERM/SIGINT save a checkpoint of the
step reached and stop; a non-finite step is skipped (counted) or stops the run, as `train.nonfinite` says.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch import nn
from tqdm.auto import tqdm

from medim.backbones.base import Backbone
from medim.config import ExperimentConfig, TrainConfig, load_resolved
from medim.config.policy import DECODING_SECTIONS, RESUMABLE_TRAIN_KEYS, weight_changes
from medim.data.token_shards import TokenShards
from medim.errors import ConfigError, DataError
from medim.experiment import Experiment, build_experiment
from medim.io import atomic_write_json, atomic_write_text
from medim.objectives.base import LossOutput, TrainingBatch
from medim.tasks.base import MaskedDiffusionTask
from medim.training.accelerator import LossModule, describe_precision, is_fsdp, make_accelerator
from medim.training.batches import (
    BatchSplit,
    MixtureBatches,
    batch_indices,
    normaliser_shares,
    slice_batch,
    step_generator,
)
from medim.training.checkpoints import (
    TrainerState,
    begin_checkpoint,
    checkpoint_name,
    commit_checkpoint,
    latest_checkpoint,
    load_model_weights,
    pending_checkpoint,
    read_trainer_state,
    read_training_state,
    read_weights,
    write_checkpoint_files,
)
from medim.training.ema import WeightEMA
from medim.training.faults import (
    NONFINITE_GIVE_UP,
    NonFiniteLossError,
    StopRequests,
    TrainingInterrupted,
    describe_rows,
    signal_name,
)
from medim.training.gallery import write_training_gallery
from medim.training.loggers import MetricLogger, check_loggers, open_loggers
from medim.training.schedules import lr_factor
from medim.training.step_metrics import MicroStats, combine, micro_stats
from medim.versions import package_versions

__all__ = ["TrainResult", "batch_indices", "lr_factor", "step_generator", "train", "validation_losses"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """Where the run lives and how it ended."""

    run_dir: Path
    steps_done: int
    finished: bool


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
    """Train `config`'s task, writing the run directory; returns where it went and how far it got.

    Raises `TrainingInterrupted` (a KeyboardInterrupt) after saving a checkpoint when SIGTERM or SIGINT
    arrives, and `NonFiniteLossError` for a non-finite step under `train.nonfinite: stop`.
    """
    check_loggers(config.train.loggers)
    run_dir = prepare_run_dir(config, resume)
    accelerator = make_accelerator(config.train)
    split = BatchSplit.of(config.train.batch_size, config.train.micro_batch_size, accelerator.num_processes)
    if is_fsdp(accelerator) and config.train.ema_decay is not None:
        raise ConfigError(
            "train.ema_decay is not supported with FSDP (the average would have to be sharded like the weights); "
            "launch with the DDP config (experiments/paper/accelerate/ddp_8gpu.yml) or set train.ema_decay=null"
        )
    if config.train.num_threads:
        torch.set_num_threads(config.train.num_threads)
    session = _Session.open(config, run_dir, resume, progress, accelerator, split)
    try:
        step, stopped_early = session.run(progress)
    finally:
        session.close()
    return TrainResult(run_dir=run_dir, steps_done=step, finished=not stopped_early and step >= config.train.steps)


@dataclass
class StepOutput:
    """What one optimizer step did (this process's micro-batches, and the decision taken for all)."""

    micro: list[MicroStats]
    grad_norm: float | None
    applied: bool
    nonfinite: str | None = None
    mixture_counts: dict[str, int] | None = None
    stop_signal: int | None = None
    rows: list[int] = field(default_factory=list)


@dataclass
class _Session:
    """One invocation of `medim train`: the built experiment, model, optimiser and where training stands."""

    config: ExperimentConfig
    run_dir: Path
    experiment: Experiment
    train_tokens: TokenShards
    val_tokens: TokenShards
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    accelerator: Accelerator
    split: BatchSplit
    state: TrainerState
    loggers: list[MetricLogger]
    ema: WeightEMA | None
    mixture: MixtureBatches | None
    stops: StopRequests = field(default_factory=StopRequests)
    consecutive_skips: int = 0

    @classmethod
    def open(
        cls,
        config: ExperimentConfig,
        run_dir: Path,
        resume: bool,
        progress: bool,
        accelerator: Accelerator,
        split: BatchSplit,
    ) -> _Session:
        """Build everything, restore the latest checkpoint when resuming, and write the run's config files."""
        train_cfg = config.train
        main = accelerator.is_main_process
        with accelerator.main_process_first():  # tokenizers and token shards are made once, then read
            experiment = build_experiment(config, progress=progress and main)
            train_tokens, val_tokens = experiment.tokens("train"), experiment.tokens("val")
        model = experiment.build_backbone()
        optimizer = torch.optim.AdamW(
            model.parameters(),
            lr=train_cfg.lr,
            betas=train_cfg.betas,
            weight_decay=train_cfg.weight_decay,
            fused=train_cfg.fused_optimizer or None,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, train_cfg))
        state = TrainerState(step=0, elapsed_seconds=0.0)
        checkpoint = latest_checkpoint(run_dir) if resume else None
        if checkpoint is not None:
            load_model_weights(model, checkpoint)
            state = read_trainer_state(checkpoint)
        loggers: list[MetricLogger] = []
        if main:
            run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(run_dir / "resolved.yaml", config.to_yaml())
            atomic_write_json(run_dir / "versions.json", package_versions())
            loggers = open_loggers(train_cfg.loggers, run_dir, state.step, config.name, config.model_dump(mode="json"))
        if train_cfg.compile:
            model.compile()  # in place: parameter names, checkpoints and generation are unchanged
        wrapped, optimizer, scheduler = accelerator.prepare(LossModule(model), optimizer, scheduler)
        ema = None
        if train_cfg.ema_decay is not None:
            ema = WeightEMA(model, train_cfg.ema_decay)
        if checkpoint is not None:
            _restore_training_state(checkpoint, accelerator, wrapped, optimizer, scheduler, ema, model)
            logger.info("resuming %s from %s (step %d)", config.name, checkpoint, state.step)
        mixture = None
        assert experiment.dataset is not None
        members = experiment.dataset.mixture("train")
        if members is not None:
            mixture = MixtureBatches(members, len(train_tokens), train_cfg.batch_size, config.seed)
            if main:
                total = sum(m.weight for m in members)
                logger.info(
                    "training mixture: %s",
                    ", ".join(f"{m.name} ({m.size} rows, weight {m.weight / total:.1%})" for m in members),
                )
        if main:
            logger.info("training: %s; precision: %s", split.describe(), describe_precision(accelerator, model))
        return cls(
            config, run_dir, experiment, train_tokens, val_tokens, wrapped, optimizer, scheduler, accelerator,
            split, state, loggers, ema, mixture,
        )  # fmt: skip

    def close(self) -> None:
        for sink in self.loggers:
            sink.close()

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    def run(self, progress: bool) -> tuple[int, bool]:
        """Train until train.steps or train.max_minutes; returns (steps done, whether it stopped early)."""
        train_cfg = self.config.train
        session_start = time.monotonic()  # train.max_minutes limits each invocation, so a resume gets a full budget
        step = self.state.step
        bar = tqdm(
            total=train_cfg.steps,
            initial=step,
            desc=f"train {self.config.name}",
            disable=not (progress and self.main),
            dynamic_ncols=True,
        )
        window_tokens, window_start = 0, time.monotonic()
        window_members: dict[str, int] = {}
        with self.stops:
            while step < train_cfg.steps:
                output = self.step(step)
                step += 1
                window_tokens += train_cfg.batch_size * self.train_tokens.shape[1]
                for name, count in (output.mixture_counts or {}).items():
                    window_members[name] = window_members.get(name, 0) + count
                bar.update(1)
                if step % train_cfg.log_every == 0 or step == train_cfg.steps:
                    speed = window_tokens / max(1e-9, time.monotonic() - window_start)
                    window_tokens, window_start = 0, time.monotonic()
                    record = self.record(step, output, speed, window_members)
                    self.log(record)
                    if window_members:
                        self.log_mixture(step, window_members)
                        window_members = {}
                    bar.set_postfix(
                        loss=f"{record['loss']:.3f}", acc=f"{record['accuracy']:.2f}", tok_s=f"{speed:,.0f}"
                    )
                paused = time.monotonic()
                if step % train_cfg.eval_every == 0 or step == train_cfg.steps:
                    self.validate(step)
                    self.gallery(step)
                session = time.monotonic() - session_start
                timed_out = self._time_is_up(session)
                stopping = output.stop_signal is not None and step < train_cfg.steps
                if step % train_cfg.checkpoint_every == 0 or step == train_cfg.steps or timed_out or stopping:
                    saved = self.checkpoint(step, session)
                window_start += time.monotonic() - paused  # tokens/s counts training, not validation or saving
                if stopping:
                    bar.close()
                    if self.main:
                        logger.warning(
                            "%s: stopped at step %d with a checkpoint (%s); resume with --resume",
                            signal_name(output.stop_signal), step, saved,  # type: ignore[arg-type]
                        )  # fmt: skip
                    raise TrainingInterrupted(output.stop_signal, step, self.run_dir, saved)  # type: ignore[arg-type]
                if timed_out and step < train_cfg.steps:
                    if self.main:
                        logger.info("stopping at step %d: train.max_minutes=%s reached (resume with --resume)", step,
                                    train_cfg.max_minutes)  # fmt: skip
                    bar.close()
                    return step, True
        bar.close()
        return step, False

    def _time_is_up(self, session_seconds: float) -> bool:
        """Whether `train.max_minutes` has run out on any process, agreed by all of them.

        Each process reads its own clock; were they to decide alone, one could stop (and wait in the
        checkpoint) while another went on into the next step's gradient all-reduce, and both would hang.
        """
        limit = self.config.train.max_minutes
        if limit is None:
            return False
        return self._any_process(session_seconds > 60 * limit)

    def _any_process(self, flag: bool) -> bool:
        """Whether `flag` holds on any process (a collective: every process calls it at the same point)."""
        if self.accelerator.num_processes == 1:
            return flag
        flags = torch.tensor([float(flag)], device=self.accelerator.device)
        return bool(self.accelerator.gather(flags).max() > 0)

    # -- one step ------------------------------------------------------------------------------

    def batch_rows(self, step: int) -> tuple[torch.Tensor, dict[str, int] | None]:
        """The global batch's rows of step `step` (and, for a mixture, each member's count)."""
        if self.mixture is not None:
            return self.mixture.indices(step)
        return batch_indices(len(self.train_tokens), self.config.train.batch_size, self.config.seed, step), None

    def step(self, step: int) -> StepOutput:
        """One optimizer step on step `step`'s global batch and noise (this process's share of it)."""
        train_cfg, accelerator = self.config.train, self.accelerator
        task: MaskedDiffusionTask = self.experiment.task
        self.model.train()
        indices, counts = self.batch_rows(step)
        x0 = self.train_tokens[indices].to(accelerator.device)
        batch = task.training_batch(x0, step_generator(self.config.seed, step))
        slices = self.split.micro_slices(accelerator.process_index)
        whole = len(slices) == 1 and accelerator.num_processes == 1
        shares = [1.0] if whole else normaliser_shares(task.objective, batch, slices)
        micro: list[MicroStats] = []
        for index, rows in enumerate(slices):
            part = batch if whole else slice_batch(batch, rows)
            last = index == len(slices) - 1
            with nullcontext() if last else accelerator.no_sync(self.model):
                output: LossOutput = self.model(_loss_of(task, part))
                loss = output.loss if whole else output.loss * (accelerator.num_processes * shares[index])
                accelerator.backward(loss)
            micro.append(micro_stats(output, shares[index]))
        bad_rows = [r for s, m in zip(slices, micro) if not math.isfinite(m.loss) for r in indices[s].tolist()]
        grad_norm = accelerator.clip_grad_norm_(self.model.parameters(), train_cfg.grad_clip or math.inf)
        grad_norm_value = float(grad_norm)
        bad_loss, stop = self._shared_flags(bool(bad_rows), self.stops.requested)
        scaler = accelerator.scaler
        nonfinite = None
        if bad_loss:
            nonfinite = "non-finite loss"
        elif scaler is None and not math.isfinite(grad_norm_value):
            nonfinite = f"non-finite gradient (norm {grad_norm_value})"
        applied = False
        if nonfinite is not None:
            self._handle_nonfinite(step, nonfinite, indices, bad_rows, slices)
            if scaler is not None:
                scaler.update()  # the gradients were unscaled (for the norm): close the scaler's step without one
        else:
            self.consecutive_skips = 0
            self.optimizer.step()
            applied = not (scaler is not None and accelerator.optimizer_step_was_skipped)
            if scaler is not None and not applied:
                self.state = _bump(self.state, overflow_skipped=1)
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if applied and self.ema is not None:
            self.ema.update()
        reported_norm = grad_norm_value if train_cfg.grad_clip or nonfinite else None
        return StepOutput(micro, reported_norm, applied, nonfinite, counts, stop, indices.tolist())

    def _shared_flags(self, bad_loss: bool, requested: int | None) -> tuple[bool, int | None]:
        """(any process saw a non-finite loss, the stop signal any process received), agreed by all processes."""
        if self.accelerator.num_processes == 1:
            return bad_loss, requested
        flags = torch.tensor([[float(bad_loss), float(requested or 0)]], device=self.accelerator.device)
        gathered = self.accelerator.gather(flags).reshape(-1, 2)
        signum = int(gathered[:, 1].max())
        return bool(gathered[:, 0].max() > 0), signum or None

    def _handle_nonfinite(
        self, step: int, what: str, indices: torch.Tensor, bad_rows: list[int], slices: list[slice]
    ) -> None:
        """Apply `train.nonfinite` to a step whose update was not applied."""
        train_cfg, accelerator = self.config.train, self.accelerator
        where = (
            f"training rows {describe_rows(bad_rows)}"
            if bad_rows
            else f"the step's batch (training rows {describe_rows(indices.tolist())})"
        )
        if bad_rows and len(slices) > 1:
            where += f" (process {accelerator.process_index}, of its {len(slices)} micro-batches)"
        elif not bad_rows and what == "non-finite loss":
            where = f"another process's rows of the batch (training rows {describe_rows(indices.tolist())})"
        if train_cfg.nonfinite == "stop":
            raise NonFiniteLossError(
                f"step {step + 1}: {what} on {where}; train.nonfinite is stop, so the update was not applied and "
                f"the run stops here. The rows are those of the tokenized training split. Resume from the last "
                f"checkpoint with --resume (train.nonfinite=skip to skip such steps, or a lower train.lr)"
            )
        self.state = _bump(self.state, nonfinite_skipped=1)
        self.consecutive_skips += 1
        if self.main:
            logger.warning(
                "step %d: %s on %s; update skipped (%d skipped so far; train.nonfinite: skip)",
                step + 1, what, where, self.state.nonfinite_skipped,
            )  # fmt: skip
            self.log(
                {"step": step + 1, "skipped": what, "nonfinite_skipped": self.state.nonfinite_skipped,
                 "rows": bad_rows or indices.tolist()}
            )  # fmt: skip
        if self.consecutive_skips >= NONFINITE_GIVE_UP:
            raise NonFiniteLossError(
                f"step {step + 1}: {NONFINITE_GIVE_UP} steps in a row had a non-finite loss or gradient (the last: "
                f"{what} on {where}); the model has probably diverged. Resume from an earlier checkpoint with a "
                f"lower train.lr"
            )

    # -- logs ----------------------------------------------------------------------------------

    def log(self, record: dict[str, Any]) -> None:
        for sink in self.loggers:
            sink.write(record)

    def record(self, step: int, output: StepOutput, speed: float, window_members: dict[str, int]) -> dict[str, Any]:
        """The training log's line for `step` (the global batch's loss: every process's micro-batches combined)."""
        totals = combine(output.micro, self.accelerator)
        record = {
            "step": step,
            "loss": totals["loss"],
            "cross_entropy": totals["cross_entropy"],
            "accuracy": totals["accuracy"],
            "lr": self.scheduler.get_last_lr()[0],
            "tokens_per_s": round(speed),
            "grad_norm": output.grad_norm,
            **{f"cross_entropy_{name}": value for name, value in totals["modality"].items()},
        }
        if self.state.nonfinite_skipped:
            record["nonfinite_skipped"] = self.state.nonfinite_skipped
        if self.accelerator.scaler is not None:
            record["loss_scale"] = float(self.accelerator.scaler.get_scale())
            record["overflow_skipped"] = self.state.overflow_skipped
        if output.mixture_counts is not None:
            record["mixture_counts"] = output.mixture_counts
            record["mixture_window_counts"] = dict(window_members)
        return record

    def log_mixture(self, step: int, window: dict[str, int]) -> None:
        """State the realised mixture of the steps since the last log line against the weights."""
        if not self.main or self.mixture is None:
            return
        total = sum(window.values()) or 1
        weights = {m.name: m.weight for m in self.mixture.members}
        weight_sum = sum(weights.values())
        logger.info(
            "step %d: mixture since the last log: %s",
            step,
            ", ".join(
                f"{name} {count / total:.1%} (weight {weights[name] / weight_sum:.1%})"
                for name, count in window.items()
            ),
        )

    def validate(self, step: int) -> None:
        """Log the validation losses at `step` (every process computes them; the main one logs)."""
        val = validation_losses(
            self.experiment,
            self.accelerator.unwrap_model(self.model).backbone,
            self.val_tokens,
            self.config.train,
            self.config.seed,
            self.accelerator.device,
            run=self.model,
        )
        if self.main:
            self.log({"step": step, **{f"val_{k}": v for k, v in val.items()}})
            logger.info("step %d: %s", step, ", ".join(f"val {k} {v:.4f}" for k, v in val.items()))

    def gallery(self, step: int) -> None:
        """Write `train.gallery_samples` generations per direction (first process; not under FSDP, whose
        weights are sharded: `medim eval` on a checkpoint shows them there)."""
        count = self.config.train.gallery_samples
        if not self.main or count == 0 or is_fsdp(self.accelerator):
            return
        backbone = self.accelerator.unwrap_model(self.model).backbone
        out = write_training_gallery(self.experiment, backbone, self.run_dir, step, count)
        logger.info("step %d: sample gallery in %s", step, out)

    # -- checkpoints ---------------------------------------------------------------------------

    def checkpoint(self, step: int, session_seconds: float) -> Path:
        """Save a checkpoint of `step` (the time spent in earlier sessions included); every process takes part."""
        train_cfg, accelerator = self.config.train, self.accelerator
        elapsed = self.state.elapsed_seconds + session_seconds
        state = TrainerState(
            step=step,
            elapsed_seconds=elapsed,
            finished=step == train_cfg.steps,
            nonfinite_skipped=self.state.nonfinite_skipped,
            overflow_skipped=self.state.overflow_skipped,
        )
        fsdp = is_fsdp(accelerator)
        if fsdp:
            weights = {k.removeprefix("backbone."): v for k, v in accelerator.get_state_dict(self.model).items()}
        else:
            weights = accelerator.unwrap_model(self.model).backbone.state_dict()
        tmp = pending_checkpoint(self.run_dir, step)
        if self.main:
            begin_checkpoint(self.run_dir, step)
        accelerator.wait_for_everyone()
        if fsdp:
            from accelerate.utils import save_fsdp_optimizer

            save_fsdp_optimizer(accelerator.state.fsdp_plugin, accelerator, self.optimizer, self.model, str(tmp))
        if self.main:
            training_state = {
                "optimizer": None if fsdp else self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                **({"scaler": accelerator.scaler.state_dict()} if accelerator.scaler is not None else {}),
            }
            ema = None
            if self.ema is not None:
                ema = self.ema.state_dict(accelerator.unwrap_model(self.model).backbone)
            write_checkpoint_files(tmp, weights, training_state, ema)
            commit_checkpoint(self.run_dir, tmp, state, train_cfg.keep_checkpoints, train_cfg.keep_every)
        accelerator.wait_for_everyone()
        self.state = state
        return self.run_dir / "checkpoints" / checkpoint_name(step)


def _loss_of(task: MaskedDiffusionTask, batch: TrainingBatch) -> Callable[[Backbone], LossOutput]:
    return lambda backbone: task.loss(backbone, batch)


def _bump(state: TrainerState, **increments: int) -> TrainerState:
    values = dict(state.__dict__)
    for key, amount in increments.items():
        values[key] += amount
    return TrainerState(**values)


def _restore_training_state(
    checkpoint: Path,
    accelerator: Accelerator,
    model: nn.Module,
    optimizer: Any,
    scheduler: Any,
    ema: WeightEMA | None,
    backbone: nn.Module,
) -> None:
    """Optimizer, scheduler, loss scaler and EMA of a checkpoint into the prepared objects."""
    stored = read_training_state(checkpoint)
    if is_fsdp(accelerator):
        from accelerate.utils import load_fsdp_optimizer

        load_fsdp_optimizer(accelerator.state.fsdp_plugin, accelerator, optimizer, model, str(checkpoint))
    elif stored.get("optimizer") is None:
        raise DataError(
            f"checkpoint {checkpoint} was saved under FSDP (its optimizer state is sharded); resume it with FSDP"
        )
    else:
        optimizer.load_state_dict(stored["optimizer"])
    scheduler.load_state_dict(stored["scheduler"])
    if accelerator.scaler is not None and "scaler" in stored:
        accelerator.scaler.load_state_dict(stored["scaler"])
    if ema is not None:
        try:
            ema.load_state_dict(backbone, read_weights(checkpoint, ema=True))
        except KeyError as exc:
            raise DataError(
                f"checkpoint {checkpoint}'s EMA weights lack {exc}; they do not fit this backbone"
            ) from None


@torch.no_grad()
def validation_losses(
    experiment: Experiment,
    model: torch.nn.Module,
    val_tokens: torch.Tensor,
    train_cfg: TrainConfig,
    seed: int,
    device: torch.device,
    run: Callable[[Callable[[Any], dict[str, float]]], dict[str, float]] | None = None,
) -> dict[str, float]:
    """Mean validation loss per task over fixed batches and fixed noise (comparable across steps).

    `run(fn)` calls `fn(model)` inside a wrapping module's forward (the trainer's `LossModule`, for DDP/FSDP).
    """
    model.eval()
    totals: dict[str, float] = {}
    size = train_cfg.val_batch_size or train_cfg.batch_size
    for index in range(train_cfg.val_batches):
        rows = torch.arange(index * size, (index + 1) * size) % len(val_tokens)
        x0 = val_tokens[rows].to(device)

        def losses_of(backbone: Any, x0: torch.Tensor = x0, index: int = index) -> dict[str, float]:
            return experiment.task.validation_losses(backbone, x0, step_generator(seed, index, stream=2))

        losses = run(losses_of) if run is not None else losses_of(model)
        for key, value in losses.items():
            totals[key] = totals.get(key, 0.0) + value / train_cfg.val_batches
    return totals
