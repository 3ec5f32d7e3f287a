"""Learning-rate schedules: the factor of the peak `train.lr` at each step (`train.lr_schedule`).

    warmup (all but cosine_restarts)  (step + 1) / warmup_steps for step < warmup_steps
    cosine            min + (1 - min) * (1 + cos(pi * p)) / 2        p = (step - warmup) / (steps - warmup), capped at 1
    linear            min + (1 - min) * (1 - p)
    constant          1
    cosine_restarts   transformers' get_cosine_with_hard_restarts_schedule_with_warmup (MeDiM's), step for step:
                      step / warmup during warmup, then (1 + cos(pi * ((cycles * p) mod 1))) / 2, 0 from p = 1;
                      with min_lr_ratio > 0 that curve is lifted to min + (1 - min) * curve
    warm_restarts     the scheduler MeDiM's code runs (its WarmupCosineAnnealingRestarts, whatever its config says):
                      step / warmup during warmup, then torch's CosineAnnealingWarmRestarts, step for step:
                      min + (1 - min) * (1 + cos(pi * T_cur / T_i)) / 2 with T_cur the steps into the current
                      cycle, the first cycle T_0 = lr_cycle_steps long and each next one lr_cycle_mult times longer.
                      MeDiM's composition runs its very first step at the full peak (its cosine scheduler's
                      constructor overwrites the warmup's first value); medim runs it at 1 / warmup.
min is `train.min_lr_ratio`, cycles `train.lr_cycles`.
"""

from __future__ import annotations

import math

from medim.config import TrainConfig


def lr_factor(step: int, train: TrainConfig) -> float:
    """The learning rate of optimizer step `step` (0-based) as a fraction of `train.lr` (module docstring)."""
    if train.lr_schedule == "cosine_restarts":
        return _hard_restarts(step, train)
    if train.lr_schedule == "warm_restarts":
        return _warm_restarts(step, train)
    if step < train.warmup_steps:
        return (step + 1) / train.warmup_steps
    if train.lr_schedule == "constant":
        return 1.0
    progress = (step - train.warmup_steps) / max(1, train.steps - train.warmup_steps)
    if train.lr_schedule == "linear":
        decay = 1.0 - min(1.0, progress)
    else:
        decay = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return train.min_lr_ratio + (1.0 - train.min_lr_ratio) * decay


def _hard_restarts(step: int, train: TrainConfig) -> float:
    """transformers' `_get_cosine_with_hard_restarts_schedule_with_warmup_lr_lambda`, lifted to min_lr_ratio."""
    if step < train.warmup_steps:
        return float(step) / float(max(1, train.warmup_steps))
    progress = float(step - train.warmup_steps) / float(max(1, train.steps - train.warmup_steps))
    curve = (
        0.0
        if progress >= 1.0
        else max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((float(train.lr_cycles) * progress) % 1.0))))
    )
    return train.min_lr_ratio + (1.0 - train.min_lr_ratio) * curve


def _warm_restarts(step: int, train: TrainConfig) -> float:
    """Linear warmup, then cosine cycles restarting at the peak (SGDR), each `lr_cycle_mult` times longer."""
    if step < train.warmup_steps:
        return max(step, 1) / train.warmup_steps
    into, length = step - train.warmup_steps, train.lr_cycle_steps or max(1, train.steps - train.warmup_steps)
    while into >= length:  # whole cycles already run, counted as torch counts them (integers, no logarithms)
        into -= length
        length *= train.lr_cycle_mult
    return train.min_lr_ratio + (1.0 - train.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * into / length))
