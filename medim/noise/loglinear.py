"""Log-linear masking schedule (MDLM, MeDiM): alpha_t = 1 - (1 - eps) t.

Then sigma(t) = -log(1 - (1 - eps) t) is log-linear in 1 - t, and the ELBO weight
is exactly 1/t.
"""

from __future__ import annotations

from pydantic import Field
from torch import Tensor

from medim.noise.base import MaskingSchedule, ScheduleParams
from medim.registry import NOISE


@NOISE.register("loglinear")
class LogLinearSchedule(MaskingSchedule):
    """Absorbing mask with masking probability (1 - eps) t; MeDiM's schedule (eps = 1e-3)."""

    class Params(ScheduleParams):
        eps: float = Field(1e-3, gt=0, lt=1, description="alpha(1) = eps: a sliver of tokens stays clean at t=1")

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.eps = params.eps

    def masking(self, t: Tensor) -> Tensor:
        return (1.0 - self.eps) * t

    def masking_rate(self, t: Tensor) -> Tensor:
        return (1.0 - self.eps) * t.new_ones(t.shape)

    def time_at(self, masking: Tensor) -> Tensor:
        return masking / (1.0 - self.eps)
