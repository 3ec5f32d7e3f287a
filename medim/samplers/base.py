"""The sampler contract: one reverse step of the absorbing process over given logits.

A sampler is stateless: the generation loop (in `medim.tasks`) asks it for
`timesteps(num_steps)` (from 1 down to 0) and, for each consecutive pair
(t, s) with s < t, calls `step(logits, xt, t, s, generator)` where logits
[B, P, V] are the denoiser's, already restricted to the ids each position may
take (others are -inf) and already guided. Temperature, top-k and top-p are
applied here, once, by `medim.samplers.logits.process_logits`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor

from medim.noise.base import MaskingSchedule
from medim.registry import ComponentParams
from medim.samplers.logits import process_logits


@dataclass(frozen=True)
class SamplerOutput:
    """Result of one step: the less-noisy tokens xs and the step's x0 prediction, both [B, P]."""

    prev_sample: Tensor
    pred_original_sample: Tensor


class SamplerParams(ComponentParams):
    """Logit processing every sampler shares."""

    temperature: float = Field(1.0, gt=0, description="softmax temperature of the token distribution")
    top_k: int | None = Field(None, gt=0, description="keep the k most likely ids per position")
    top_p: float | None = Field(None, gt=0, le=1, description="keep the smallest set of ids with this mass")
    cfg_schedule: Literal["constant", "linear"] = Field(
        "constant",
        description="guidance weight over the reverse process: constant w, or MeDiM's w * (1 - t) "
        "(no guidance at the all-masked start, full weight at the end)",
    )


class Sampler:
    """Base class: subclasses implement `step` for the noise kinds in `supported_noise`."""

    supported_noise: ClassVar[tuple[str, ...]] = ("absorbing",)
    Params = SamplerParams

    def __init__(self, params: SamplerParams, *, mask_id: int, noise: MaskingSchedule) -> None:
        self.params = params
        self.mask_id = mask_id
        self.noise = noise

    def timesteps(self, num_steps: int, device: str | torch.device = "cpu") -> Tensor:
        """num_steps + 1 times from 1 to 0; step i goes from times[i] to times[i + 1]."""
        if num_steps < 1:
            raise ValueError(f"num_steps must be at least 1, got {num_steps}")
        return torch.linspace(1.0, 0.0, num_steps + 1, device=device)

    def guidance_weight(self, cfg_scale: float, t: float) -> float:
        """Classifier-free guidance weight at time t for the base weight `cfg_scale`."""
        return cfg_scale * (1.0 - t) if self.params.cfg_schedule == "linear" else cfg_scale

    def log_probs(self, logits: Tensor) -> Tensor:
        """Log-probabilities after temperature / top-k / top-p."""
        return process_logits(logits, self.params.temperature, self.params.top_k, self.params.top_p)

    def step(self, logits: Tensor, xt: Tensor, t: float, s: float, generator: torch.Generator | None = None) -> SamplerOutput:
        """Move the masked tokens of xt [B, P] from time t to time s < t."""
        raise NotImplementedError
