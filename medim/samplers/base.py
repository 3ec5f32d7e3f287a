"""The sampler contract: one reverse step of the absorbing process over given logits.

A sampler is stateless. The generation loop (`medim.tasks.generation`) asks it for
`timesteps(num_steps)` (from 1 down to 0) and, for each consecutive pair
(t, s) with s < t, calls `step(logits, xt, t, s, rng)`:

    logits  [B, P, V]  the denoiser's at the P positions being generated, already
                       restricted to the ids each position may take (others -inf)
                       and already guided (classifier-free guidance happens in the loop)
    xt      [B, P]     current tokens; `mask_id` where still masked
    t, s    [B]        times of this step, per sample
    rng                `RowGenerators`: one random stream per sample
    frozen  [B, P]     positions given by the user (infilling) that must stay as they are

and returns `SamplerOutput(prev_sample=xs, pred_original_sample=x0)`. A sampler
whose `remembers_confidence()` is true also gets `revealed_confidence` [B, P], the
log-probability each revealed token had when it was revealed, and returns the
step's `confidence`; the loop keeps that memory, so the sampler itself holds none.
Temperature, top-k and top-p are applied here, once, by `log_probs`.

Two kinds of sampler change the loop's behaviour by class attributes:
`revises_tokens` (a revealed token may be masked again, so a sample with no mask
left is not finished) and `chooses_times` (the sampler draws its own next time
with `next_time`, as first-hitting sampling does, instead of following a grid).
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
from medim.samplers.random import RowGenerators


@dataclass(frozen=True)
class SamplerOutput:
    """Result of one step: the less-noisy tokens xs and the step's x0 prediction, both [B, P]."""

    prev_sample: Tensor
    pred_original_sample: Tensor
    #: [B, P] log-probability of each position's drawn token (samplers that remember confidence).
    confidence: Tensor | None = None


class SamplerParams(ComponentParams):
    """Logit processing, guidance schedule and block decoding, shared by every sampler."""

    temperature: float = Field(1.0, gt=0, description="softmax temperature of the token distribution")
    top_k: int | None = Field(None, gt=0, description="keep the k most likely ids per position")
    top_p: float | None = Field(None, gt=0, le=1, description="keep the smallest set of ids with this mass")
    cfg_schedule: Literal["constant", "linear"] = Field(
        "constant",
        description="guidance weight over the reverse process: constant w, or MeDiM's w * (1 - t) "
        "(no guidance at the all-masked start, full weight at the end)",
    )
    block_length: int | None = Field(
        None, ge=1,
        description="semi-autoregressive decoding: generate the positions in consecutive blocks of this many "
        "(in sequence order, never across modalities), each block finished before the next starts; null = all at once",
    )


class Sampler:
    """Base class: subclasses implement `step` for the noise kinds in `supported_noise`."""

    supported_noise: ClassVar[tuple[str, ...]] = ("absorbing",)
    #: True when `step` may mask revealed tokens again (a sample is never finished early).
    revises_tokens: ClassVar[bool] = False
    #: True when the sampler draws its own times with `next_time` instead of following `timesteps`.
    chooses_times: ClassVar[bool] = False
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

    def next_time(self, t: Tensor, n_masked: Tensor, rng: RowGenerators) -> Tensor:
        """For samplers that choose their times: the time [B] of the next step from t [B]."""
        raise NotImplementedError(f"{type(self).__name__} follows the time grid; it has no next_time")

    def reuses_predictions(self) -> bool:
        """Whether the loop may reuse a sample's last prediction when its tokens did not change."""
        return False

    def remembers_confidence(self) -> bool:
        """Whether `step` needs `revealed_confidence`, the log-probability each token had when revealed."""
        return False

    def guidance_weight(self, cfg_scale: float, t: Tensor) -> Tensor:
        """Classifier-free guidance weight [B] at times t [B] for the base weight `cfg_scale`."""
        return cfg_scale * (1.0 - t) if self.params.cfg_schedule == "linear" else torch.full_like(t, cfg_scale)

    def log_probs(self, logits: Tensor) -> Tensor:
        """Log-probabilities after temperature / top-k / top-p."""
        return process_logits(logits, self.params.temperature, self.params.top_k, self.params.top_p)

    def step(
        self, logits: Tensor, xt: Tensor, t: Tensor, s: Tensor, rng: RowGenerators, frozen: Tensor | None = None
    ) -> SamplerOutput:
        """Move the masked tokens of xt [B, P] from times t [B] to times s < t."""
        raise NotImplementedError

    def _masked(self, xt: Tensor, frozen: Tensor | None) -> Tensor:
        """[B, P] positions this step may fill: masked and not given."""
        masked = xt == self.mask_id
        return masked if frozen is None else masked & ~frozen
