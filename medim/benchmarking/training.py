"""The training arms of `medim bench`: medim's step and the two plain-transformers references (`plain`).

Every arm takes the same corrupted global batch per step (the case's task corrupts it once)
and takes one optimizer step on it; arms are timed in interleaved rounds in one process, so
a machine that slows down slows them all alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from medim.benchmarking.machine import peak_step_memory
from medim.benchmarking.plain import PlainModel, subs_loss
from medim.experiment import Experiment
from medim.objectives.base import TrainingBatch
from medim.registry import BACKBONES
from medim.training.batches import slice_batch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class TrainArm:
    """One way of taking an optimizer step: its model, optimizer and `step(batch) -> loss`."""

    name: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    step: Callable[[TrainingBatch], float]
    #: samples per forward: a step over one micro-batch reaches the step's peak memory (accumulation adds none)
    micro_batch: int


def medim_arm(
    experiment: Experiment,
    spec: dict,
    name: str,
    micro_batch: int,
    dtype: str,
    device: torch.device,
    compile_model: bool,
) -> TrainArm:
    """medim's real path: the `hf_decoder` denoiser with MeDiM's switches, the task's loss, fused AdamW."""
    layout = experiment.layout
    backbone = BACKBONES.build(
        {**spec, "dtype": dtype}, vocab_size=layout.vocab_size, max_seq_len=layout.seq_len, layout=layout
    ).to(device)
    optimizer = torch.optim.AdamW(backbone.parameters(), lr=1e-5, fused=True)
    if compile_model:
        backbone.compile()

    def step(batch: TrainingBatch) -> float:
        total = batch.x0.shape[0]
        loss_sum = torch.zeros((), device=device)
        for start in range(0, total, micro_batch):
            part = slice_batch(batch, slice(start, start + micro_batch))
            loss = experiment.task.loss(backbone, part).loss * (part.x0.shape[0] / total)
            loss.backward()
            loss_sum += loss.detach()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss_sum)

    return TrainArm(name, backbone, optimizer, step, micro_batch)


def plain_arm(
    experiment: Experiment,
    spec: dict,
    recipe: str,
    micro_batch: int,
    dtype: str,
    autocast: str,
    device: torch.device,
) -> TrainArm:
    """The released recipe or the tuned reference (`medim.benchmarking.plain`)."""
    layout, objective = experiment.layout, experiment.objective
    plain = PlainModel.build(spec, layout, recipe, DTYPES[dtype], device)
    plain.model.train()
    optimizer = torch.optim.AdamW(plain.model.parameters(), lr=1e-5, fused=recipe == "tuned")
    half = autocast != "none"
    scaler = torch.amp.GradScaler(device.type) if half and autocast == "float16" else None

    def step(batch: TrainingBatch) -> float:
        total = batch.x0.shape[0]
        loss_sum = torch.zeros((), device=device)
        for start in range(0, total, micro_batch):
            part = slice_batch(batch, slice(start, start + micro_batch))
            context = torch.autocast(device.type, dtype=DTYPES[autocast]) if half else nullcontext()
            with context:
                logits = plain.logits(part.xt, layout.attention_mask(part.xt))
            weight = objective.weight(part.times.clamp(min=1e-6))
            loss = subs_loss(logits, layout, part, weight) * (part.x0.shape[0] / total)
            (scaler.scale(loss) if scaler is not None else loss).backward()
            loss_sum += loss.detach()
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss_sum)

    return TrainArm(recipe, plain.model, optimizer, step, micro_batch)


def fit_recomputation(arm: TrainArm, budget: int, probe: TrainingBatch) -> int | None:
    """Recompute the fewest of the medim arm's layers that keep its peak memory on `probe` (one micro-batch) within
    `budget` bytes; the number recomputed (None where peak memory cannot be measured: then all of them)."""
    backbone = arm.model
    layers = len(backbone.model.layers)

    def peak(recomputed: int) -> int | None:
        update = {"gradient_checkpointing": True, "recomputed_layers": recomputed}
        backbone.params = backbone.params.model_copy(update=update)
        return peak_step_memory(backbone, arm.optimizer, lambda: arm.step(probe))

    none, every = peak(0), peak(layers)
    if none is None or every is None:
        peak(layers)
        return None
    per_layer = max(1.0, (none - every) / layers)
    recomputed = min(layers, max(0, math.ceil((none - budget) / per_layer)))
    while recomputed < layers and (peak(recomputed) or 0) > budget:
        recomputed += 1
    peak(recomputed)  # leaves the arm set to it
    return recomputed
