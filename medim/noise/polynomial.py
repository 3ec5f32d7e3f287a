"""Polynomial masking schedules (MD4's "poly"): m(t) = (1 - eps) t^k.

k = 1 is `loglinear`; k > 1 keeps more tokens clean for longer (more training
signal at low noise), k < 1 masks early. The ELBO weight is k / t for every k.
"""

from __future__ import annotations

from pydantic import Field
from torch import Tensor

from medim.noise.base import MaskingSchedule, ScheduleParams
from medim.registry import NOISE


@NOISE.register("polynomial")
class PolynomialSchedule(MaskingSchedule):
    """Absorbing mask with masking probability (1 - eps) t^exponent."""

    class Params(ScheduleParams):
        eps: float = Field(1e-3, gt=0, lt=1, description="alpha(1) = eps")
        exponent: float = Field(2.0, gt=0, description="k in m(t) = (1 - eps) t^k; 1 is loglinear")

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.scale = 1.0 - params.eps
        self.exponent = params.exponent

    def masking(self, t: Tensor) -> Tensor:
        return self.scale * t**self.exponent

    def masking_rate(self, t: Tensor) -> Tensor:
        return self.scale * self.exponent * t ** (self.exponent - 1)

    def time_at(self, masking: Tensor) -> Tensor:
        return (masking / self.scale).clamp(min=0.0) ** (1.0 / self.exponent)
