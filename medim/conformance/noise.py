"""Noise schedule checks (`medim.noise.base.MaskingSchedule`): m(t), its rate and inverse, times and corruption.

Evaluated in float64 on a grid of 2001 times in [0, 1]: m(t) = 1 - alpha_t must be a probability
below 1 (so sigma(t) = -log alpha_t, the backbone's time input, stays finite), non-decreasing (tokens
only get masked as t grows), with m'(t) its derivative and t(m) its inverse; training times lie in
[0, 1]; `corrupt` masks noisable tokens only, at about rate m(t).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from medim.conformance.checks import Check, Subject, require
from medim.noise.base import MaskingSchedule
from medim.registry import ComponentParams

#: The time grid of the checks.
GRID = torch.linspace(0.0, 1.0, 2001, dtype=torch.float64)
#: Slack for float rounding in m(t) comparisons.
TOLERANCE = 1e-6


class NoiseSubject(Subject):
    """A masking schedule, built from its params alone."""

    noun = "noise schedule"

    def construct(self, params: ComponentParams) -> MaskingSchedule:
        return self.entry.cls(params)

    def masking(self, t: Tensor = GRID) -> Tensor:
        """m(t) as float64."""
        return self.component.masking(t).double()


def _builds(subject: NoiseSubject) -> str:
    schedule = subject.component
    require(
        isinstance(schedule, MaskingSchedule),
        f"{subject.label}: must be a medim.noise.base.MaskingSchedule, got {type(schedule).__name__}",
    )
    return f"noise kind {schedule.noise_kind!r}"


def _probability(subject: NoiseSubject) -> str:
    m = subject.masking()
    require(
        m.shape == GRID.shape and bool(torch.isfinite(m).all()),
        f"{subject.label}: masking(t) must return one finite m(t) per time (MaskingSchedule.masking), got "
        f"shape {list(m.shape)} for {len(GRID)} times" + ("" if torch.isfinite(m).all() else " with NaN or inf"),
    )
    low, high = int(m.argmin()), int(m.argmax())
    require(
        m[low] >= -TOLERANCE and m[high] < 1.0,
        f"{subject.label}: m(t) must lie in [0, 1) for t in [0, 1], so sigma(t) = -log(1 - m(t)) stays finite "
        f"(MaskingSchedule.masking), got m({GRID[low]:.4g}) = {m[low]:.6g} and m({GRID[high]:.4g}) = {m[high]:.6g}",
    )
    sigma = subject.component.sigma(torch.tensor([1.0], dtype=torch.float64))
    require(
        bool(torch.isfinite(sigma).all()) and subject.component.alpha(torch.tensor([1.0])).item() > 0,
        f"{subject.label}: alpha(1) = 1 - m(1) must be > 0 so sigma(1) is finite (generation starts at t = 1), "
        f"got sigma(1) = {sigma.item():.4g}",
    )
    return f"m(0) = {m[0]:.3g}, m(1) = {m[-1]:.6g}, sigma(1) = {sigma.item():.3g}"


def _monotone(subject: NoiseSubject) -> str:
    m = subject.masking()
    falls = ((m[1:] - m[:-1]) < -TOLERANCE).nonzero()[:, 0]
    first = int(falls[0]) if len(falls) else 0
    require(
        not len(falls),
        f"{subject.label}: m(t) must be non-decreasing on [0, 1] (tokens only get masked as t grows; "
        f"MaskingSchedule.masking), got m({GRID[first + 1]:.4g}) = {m[first + 1]:.6g} < "
        f"m({GRID[first]:.4g}) = {m[first]:.6g}",
    )
    return f"non-decreasing on {len(GRID)} times"


def _rate(subject: NoiseSubject) -> str:
    t = GRID[(GRID >= 0.01) & (GRID <= 0.99)]
    h = 1e-5
    numerical = (subject.masking(t + h) - subject.masking(t - h)) / (2 * h)
    rate = subject.component.masking_rate(t).double()
    error = (rate - numerical).abs() / (1.0 + numerical.abs())
    worst = int(error.argmax())
    require(
        error[worst] <= 1e-3,
        f"{subject.label}: masking_rate(t) must be m'(t), the derivative of masking (MaskingSchedule.masking_rate), "
        f"got m'({t[worst]:.4g}) = {rate[worst]:.6g} where (m(t + h) - m(t - h)) / 2h = {numerical[worst]:.6g}",
    )
    require(
        bool((rate >= 0).all()),
        f"{subject.label}: masking_rate(t) must be >= 0 (MaskingSchedule.masking_rate), got {rate.min():.4g}",
    )
    return "masking_rate matches the derivative of masking on [0.01, 0.99]"


def _inverse(subject: NoiseSubject) -> str:
    m = subject.masking()
    t_back = subject.component.time_at(m).double()
    again = subject.masking(t_back)
    error = (again - m).abs()
    worst = int(error.argmax())
    require(
        bool(torch.isfinite(t_back).all()) and error[worst] <= 1e-5,
        f"{subject.label}: time_at(m) must invert masking, m(time_at(m(t))) = m(t) (MaskingSchedule.time_at), "
        f"got time_at(m({GRID[worst]:.4g}) = {m[worst]:.6g}) = {t_back[worst]:.6g}, where m = {again[worst]:.6g}",
    )
    return "m(time_at(m(t))) = m(t) on the grid"


def _sample_t(subject: NoiseSubject) -> str:
    generator = torch.Generator().manual_seed(0)
    t = subject.component.sample_t(256, generator)
    require(
        t.shape == (256,) and bool(torch.isfinite(t).all()) and bool(((t >= 0) & (t <= 1)).all()),
        f"{subject.label}: sample_t(256) must give 256 training times in [0, 1] (MaskingSchedule.sample_t), got "
        f"shape {list(t.shape)}, range [{t.min():.4g}, {t.max():.4g}]",
    )
    return f"256 times in [{t.min():.3g}, {t.max():.3g}]"


def _corrupt(subject: NoiseSubject) -> str:
    schedule, mask_id = subject.component, 99
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, mask_id, (64, 256), generator=generator)
    noisable = torch.rand(64, 256, generator=generator) < 0.5
    t = torch.full((64,), 0.5)
    xt = schedule.corrupt(x0, t, noisable, mask_id, generator)
    masked = xt == mask_id
    changed = xt != x0
    require(
        xt.shape == x0.shape and not bool((changed & ~masked).any()) and not bool((masked & ~noisable).any()),
        f"{subject.label}: corrupt must only replace noisable tokens by the mask id (MaskingSchedule.corrupt), got "
        f"{int((changed & ~masked).sum())} tokens changed to other ids and {int((masked & ~noisable).sum())} "
        f"masked outside the noisable positions",
    )
    n = int(noisable.sum())
    rate = schedule.masking(t[:1].double()).item()
    bound = 5 * math.sqrt(rate * (1 - rate) / n) + 1e-3
    observed = int(masked.sum()) / n
    require(
        abs(observed - rate) <= bound,
        f"{subject.label}: corrupt at t = 0.5 must mask each noisable token with probability m(0.5) = {rate:.4f} "
        f"(MaskingSchedule.corrupt), got a masked fraction {observed:.4f} of {n} tokens (5-sigma bound {bound:.4f})",
    )
    return f"masked {observed:.3f} of noisable tokens at t = 0.5 (m = {rate:.3f}), none elsewhere"


SUBJECT = NoiseSubject
CHECKS: tuple[Check[NoiseSubject], ...] = (
    Check("builds", _builds),
    Check("m(t) is a probability in [0, 1)", _probability),
    Check("m(t) is non-decreasing", _monotone),
    Check("masking_rate is the derivative of masking", _rate),
    Check("time_at inverts masking", _inverse),
    Check("training times in [0, 1]", _sample_t),
    Check("corrupt masks noisable tokens at rate m(t)", _corrupt),
)
