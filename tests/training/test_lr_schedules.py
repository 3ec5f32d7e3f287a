"""Learning-rate schedules, each against its formula (cosine_restarts against transformers' own function,
warm_restarts against MeDiM's scheduler rebuilt from torch's LambdaLR and CosineAnnealingWarmRestarts)."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import get_cosine_with_hard_restarts_schedule_with_warmup

from medim.config import TrainConfig
from medim.errors import ConfigError
from medim.training.schedules import lr_factor

STEPS, WARMUP, FLOOR = 100, 10, 0.1


def config(schedule: str, **extra) -> TrainConfig:
    return TrainConfig(steps=STEPS, warmup_steps=WARMUP, min_lr_ratio=FLOOR, lr_schedule=schedule, **extra)


def progress(step: int) -> float:
    return min(1.0, (step - WARMUP) / (STEPS - WARMUP))


@pytest.mark.parametrize(
    ("schedule", "after_warmup"),
    [
        ("cosine", lambda s: FLOOR + (1 - FLOOR) * 0.5 * (1 + math.cos(math.pi * progress(s)))),
        ("linear", lambda s: FLOOR + (1 - FLOOR) * (1 - progress(s))),
        ("constant", lambda s: 1.0),
    ],
)
def test_warmup_then_the_formula(schedule: str, after_warmup) -> None:
    train = config(schedule)
    for step in range(WARMUP):
        assert lr_factor(step, train) == pytest.approx((step + 1) / WARMUP)
    for step in range(WARMUP, STEPS + 5):
        assert lr_factor(step, train) == pytest.approx(after_warmup(step), abs=1e-12), step


def test_cosine_is_the_default_and_unchanged_to_the_last_bit() -> None:
    """The quickstart's schedule: the expression the trainer used before lr_schedule existed."""
    train = TrainConfig(steps=STEPS, warmup_steps=WARMUP, min_lr_ratio=FLOOR)
    assert train.lr_schedule == "cosine"
    for step in range(STEPS + 3):
        if step < WARMUP:
            before = (step + 1) / WARMUP
        else:
            cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - WARMUP) / max(1, STEPS - WARMUP))))
            before = FLOOR + (1.0 - FLOOR) * cosine
        assert lr_factor(step, train) == before


@pytest.mark.parametrize("cycles", [1, 3])
def test_cosine_restarts_is_transformers_hard_restarts_schedule(cycles: int) -> None:
    train = TrainConfig(
        steps=STEPS, warmup_steps=WARMUP, min_lr_ratio=0.0, lr_schedule="cosine_restarts", lr_cycles=cycles
    )
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    reference = get_cosine_with_hard_restarts_schedule_with_warmup(optimizer, WARMUP, STEPS, num_cycles=cycles)
    for step in range(STEPS + 3):
        assert lr_factor(step, train) == optimizer.param_groups[0]["lr"], step
        optimizer.step()
        reference.step()


def test_cosine_restarts_lifted_to_the_floor() -> None:
    train = config("cosine_restarts", lr_cycles=2)
    plain = TrainConfig(**{**train.model_dump(), "min_lr_ratio": 0.0})
    for step in range(WARMUP, STEPS + 2):
        assert lr_factor(step, train) == pytest.approx(FLOOR + (1 - FLOOR) * lr_factor(step, plain))


def test_lr_cycles_needs_cosine_restarts() -> None:
    from medim.config import load_experiment

    with pytest.raises(ConfigError, match="lr_cycles applies to lr_schedule: cosine_restarts"):
        load_experiment("quickstart", ["train.lr_cycles=2"])


class MeDiMWarmupRestarts:
    """MeDiM's WarmupCosineAnnealingRestarts (model_setup.py) as it composes torch's schedulers: a LambdaLR
    warmup min(1, n / warmup), then CosineAnnealingWarmRestarts stepped once per step after the warmup."""

    def __init__(self, optimizer: torch.optim.Optimizer, warmup: int, first: int, mult: int, eta_min: float) -> None:
        self.warmup, self.calls = warmup, 0
        self.ramp = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda n: min(1.0, n / warmup))
        self.cosine = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, first, mult, eta_min)

    def step(self) -> None:
        (self.ramp if self.calls < self.warmup else self.cosine).step()
        self.calls += 1


@pytest.mark.parametrize(("first", "mult"), [(7, 2), (9, 1), (5, 3)])
def test_warm_restarts_is_the_schedule_medim_runs(first: int, mult: int) -> None:
    peak, eta_min, steps = 1e-3, 1e-7, 120
    train = TrainConfig(
        steps=steps,
        warmup_steps=WARMUP,
        lr=peak,
        min_lr_ratio=eta_min / peak,
        lr_schedule="warm_restarts",
        lr_cycle_steps=first,
        lr_cycle_mult=mult,
    )
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    reference = MeDiMWarmupRestarts(optimizer, WARMUP, first, mult, eta_min)
    seen = []
    for step in range(steps):
        seen.append(optimizer.param_groups[0]["lr"])
        if step == 0:  # MeDiM's quirk: the cosine scheduler's constructor leaves the peak for the first step
            assert seen[0] == peak and lr_factor(0, train) == 1 / WARMUP
        else:
            assert peak * lr_factor(step, train) == pytest.approx(seen[-1], rel=1e-12, abs=1e-15), step
        optimizer.step()
        reference.step()
    restarts = [s for s in range(WARMUP + 1, steps) if seen[s] > seen[s - 1] * 1.5]
    expected, start, length = [], WARMUP + first, first
    while start < steps:
        expected.append(start)
        length *= mult
        start += length
    assert restarts == expected  # the cycles really restart, each mult times longer


def test_warm_restarts_options_need_their_schedule() -> None:
    with pytest.raises(ValueError, match="apply to lr_schedule: warm_restarts, not cosine"):
        TrainConfig(lr_cycle_steps=100)
