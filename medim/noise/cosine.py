"""Cosine masking schedules, in the two forms the literature uses under that name.

    form "mdlm"    (MDLM, UniDisc):     alpha_t = eps + (1 - eps) cos(pi t / 2)
                                        m(t) = (1 - eps) * 2 sin^2(pi t / 4)
    form "maskgit" (MaskGIT, MD4):      m(t) = (1 - eps) sin(pi t / 2)

The "mdlm" form masks slowly at first (m ~ t^2), the "maskgit" form quickly
(m ~ t, and half the tokens are gone by t = 1/3). Writing 1 - cos as 2 sin^2 keeps
m(t) exact near t = 0.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from medim.noise.base import MaskingSchedule, ScheduleParams
from medim.registry import NOISE


@NOISE.register("cosine")
class CosineSchedule(MaskingSchedule):
    """Absorbing mask with a cosine alpha_t (MDLM's form, or MaskGIT's with form: maskgit)."""

    class Params(ScheduleParams):
        eps: float = Field(1e-3, gt=0, lt=1, description="alpha(1) = eps")
        form: Literal["mdlm", "maskgit"] = Field(
            "mdlm", description="mdlm: alpha = eps + (1-eps) cos(pi t/2); maskgit: 1 - alpha = (1-eps) sin(pi t/2)"
        )

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.scale = 1.0 - params.eps
        self.form = params.form

    def masking(self, t: Tensor) -> Tensor:
        if self.form == "maskgit":
            return self.scale * torch.sin(math.pi * t / 2)
        return self.scale * 2 * torch.sin(math.pi * t / 4) ** 2

    def masking_rate(self, t: Tensor) -> Tensor:
        # cos(pi t / 2) as sin(pi (1 - t) / 2): exactly 0, not -4e-8, at t = 1 in float32
        derivative = torch.sin(math.pi * (1 - t) / 2) if self.form == "maskgit" else torch.sin(math.pi * t / 2)
        return self.scale * (math.pi / 2) * derivative

    def time_at(self, masking: Tensor) -> Tensor:
        fraction = (masking / self.scale).clamp(0.0, 1.0)
        if self.form == "maskgit":
            return (2 / math.pi) * torch.asin(fraction)
        return (4 / math.pi) * torch.asin(torch.sqrt(fraction / 2))
