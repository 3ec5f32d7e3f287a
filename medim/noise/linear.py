"""Linear total noise (MDLM's and SEDD's "linear"): sigma(t) = sigma_min + (sigma_max - sigma_min) t.

So alpha_t = exp(-sigma(t)), m(t) = 1 - exp(-sigma(t)) and the ELBO weight is
(sigma_max - sigma_min) / (exp(sigma(t)) - 1). Not to be confused with an alpha
that falls linearly in t: that is `loglinear`.
"""

from __future__ import annotations

import torch
from pydantic import Field, model_validator
from torch import Tensor

from medim.noise.base import MaskingSchedule, ScheduleParams
from medim.registry import NOISE


@NOISE.register("linear")
class LinearSigmaSchedule(MaskingSchedule):
    """Absorbing mask whose total noise sigma(t) rises linearly from sigma_min to sigma_max."""

    class Params(ScheduleParams):
        sigma_min: float = Field(0.0, ge=0, description="sigma(0); 0 keeps every token clean at t = 0")
        sigma_max: float = Field(10.0, gt=0, description="sigma(1); alpha(1) = exp(-sigma_max)")

        @model_validator(mode="after")
        def _increasing(self) -> LinearSigmaSchedule.Params:
            if self.sigma_max <= self.sigma_min:
                raise ValueError(f"sigma_max ({self.sigma_max}) must exceed sigma_min ({self.sigma_min})")
            return self

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.sigma_min, self.sigma_max = params.sigma_min, params.sigma_max

    def _total_noise(self, t: Tensor) -> Tensor:
        return self.sigma_min + (self.sigma_max - self.sigma_min) * t

    def masking(self, t: Tensor) -> Tensor:
        return -torch.expm1(-self._total_noise(t))

    def masking_rate(self, t: Tensor) -> Tensor:
        return (self.sigma_max - self.sigma_min) * torch.exp(-self._total_noise(t))

    def time_at(self, masking: Tensor) -> Tensor:
        return (-torch.log1p(-masking) - self.sigma_min) / (self.sigma_max - self.sigma_min)

    def sigma(self, t: Tensor) -> Tensor:
        return self._total_noise(t)
