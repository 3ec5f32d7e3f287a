"""Log-linear masking schedule (MDLM, MeDiM): alpha_t = 1 - (1 - eps) t.

Then sigma(t) = -log(1 - (1 - eps) t) and the ELBO weight is exactly 1/t.
"""

from __future__ import annotations

from pydantic import Field
from torch import Tensor

from medim.noise.base import MaskingSchedule
from medim.registry import NOISE, ComponentParams


@NOISE.register("loglinear")
class LogLinearSchedule(MaskingSchedule):
    """Absorbing mask with masking probability (1 - eps) t; MeDiM's schedule (eps = 1e-3)."""

    class Params(ComponentParams):
        eps: float = Field(1e-3, ge=0, lt=1, description="alpha(1) = eps: a sliver of tokens stays clean at t=1")
        t_min: float = Field(1e-3, gt=0, lt=1, description="training times are drawn from [t_min, 1]")
        antithetic: bool = Field(True, description="low-discrepancy (stratified) training times")

    def __init__(self, params: Params) -> None:
        super().__init__(t_min=params.t_min, antithetic=params.antithetic)
        self.eps = params.eps

    def alpha(self, t: Tensor) -> Tensor:
        return 1.0 - (1.0 - self.eps) * t

    def alpha_prime(self, t: Tensor) -> Tensor:
        return -(1.0 - self.eps) * t.new_ones(t.shape)
