"""ReMDM remasking (Wang et al. 2025): a reverse step that may mask revealed tokens again, so errors get revised.

With remasking probability sigma_t, the step from t to s < t is (ReMDM eq. 4)
    revealed token x:  q(xs = mask) = sigma_t,  q(xs = x) = 1 - sigma_t
    masked token:      q(xs = v)    = (alpha_s - (1 - sigma_t) alpha_t) / (1 - alpha_t) * p_theta(x0 = v | xt)
                       q(xs = mask) = (1 - alpha_s - sigma_t alpha_t) / (1 - alpha_t)
which keeps the marginal q(xs | x0) of the forward process for any
0 <= sigma_t <= sigma_max = min(1, (1 - alpha_s) / alpha_t); sigma_t = 0 is MDLM's step.
Strategies: `cap` sigma_t = min(eta, sigma_max); `rescale` sigma_t = eta * sigma_max;
`conf` spreads sigma_max over the revealed tokens by softmax(-p), p the probability
each token had when it was revealed (the loop remembers it; masked tokens then
follow MDLM's rate); `loop` replaces alpha by ReMDM-loop's path:
alpha falls linearly to alpha_on until t_on, stays at alpha_on (remasking with
sigma = eta) until t_off, then rises to 1. At the last step (s = t_end) nothing is remasked.
Given (frozen) tokens are never remasked.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor

from medim.noise.base import MaskingSchedule
from medim.registry import SAMPLERS
from medim.samplers.base import Sampler, SamplerCapabilities, SamplerOutput, SamplerParams, StepContext
from medim.samplers.logits import sample_categorical


@SAMPLERS.register("remask")
class RemaskSampler(Sampler):
    """ReMDM: MDLM steps that also remask revealed tokens (cap, rescale, confidence or loop strategy)."""

    class Params(SamplerParams):
        strategy: Literal["cap", "rescale", "conf", "loop"] = Field("cap", description="how sigma_t is chosen (ReMDM)")
        eta: float = Field(
            0.01, ge=0, le=1, description="cap: the cap; rescale: the fraction of sigma_max; loop: sigma in the loop"
        )
        t_on: float = Field(0.55, gt=0, lt=1, description="loop: time the loop starts")
        t_off: float = Field(0.05, gt=0, lt=1, description="loop: time the loop ends")
        alpha_on: float = Field(0.9, gt=0, lt=1, description="loop: alpha held during the loop")

        @model_validator(mode="after")
        def _loop_window(self) -> RemaskSampler.Params:
            if self.strategy == "loop" and not self.t_off < self.t_on:
                raise ValueError(f"loop needs t_off < t_on, got t_off={self.t_off}, t_on={self.t_on}")
            return self

    def capabilities(self) -> SamplerCapabilities:
        return SamplerCapabilities(revises_tokens=True, remembers_confidence=self.params.strategy == "conf")

    def alphas(self, t: Tensor, s: Tensor, schedule: MaskingSchedule) -> tuple[Tensor, Tensor]:
        """(alpha_t, alpha_s) [B]: the schedule's, or ReMDM-loop's path."""
        if self.params.strategy != "loop":
            return schedule.alpha(t), schedule.alpha(s)
        return self._loop_alpha(t), self._loop_alpha(s)

    def _loop_alpha(self, t: Tensor) -> Tensor:
        p = self.params
        falling = (1.0 - t) * p.alpha_on / (1.0 - p.t_on)
        rising = p.alpha_on + (1.0 - p.alpha_on) * (p.t_off - t) / p.t_off
        return torch.where(t > p.t_on, falling, torch.where(t <= p.t_off, rising, torch.full_like(t, p.alpha_on)))

    def step(self, context: StepContext) -> SamplerOutput:
        xt, t, s, rng, frozen = context.xt, context.t, context.s, context.rng, context.frozen
        revealed_confidence = context.revealed_confidence
        log_probs = self.log_probs(context.logits)
        x0 = sample_categorical(log_probs, rng)
        if self.params.strategy == "conf" and revealed_confidence is None:
            raise ValueError(
                "remask strategy 'conf' needs revealed_confidence: "
                "the log-probability of each revealed token when it was revealed"
            )
        masked = self._masked(context)
        revisable = xt != self.mask_id if frozen is None else (xt != self.mask_id) & ~frozen
        alpha_t, alpha_s = self.alphas(t, s, context.schedule)
        sigma_max = ((1.0 - alpha_s) / alpha_t.clamp(min=1e-12)).clamp(0.0, 1.0)
        remask, sigma_for_masked = self._remask_probability(revealed_confidence, revisable, t, s, sigma_max)
        final = self.is_final(s)
        remask = torch.where(final[:, None], 0.0, remask)
        reveal = (alpha_s - (1.0 - sigma_for_masked) * alpha_t) / (1.0 - alpha_t).clamp(min=1e-12)
        reveal = torch.where(final, torch.ones_like(reveal), reveal.clamp(0.0, 1.0))
        u = rng.rand(xt.shape[1]).to(xt.device)
        xs = torch.where(masked & (u < reveal[:, None]), x0, xt)
        xs = torch.where(revisable & (u < remask), torch.full_like(xs, self.mask_id), xs)
        confidence = log_probs.gather(-1, x0[..., None])[..., 0]
        return SamplerOutput(xs, torch.where(masked, x0, xt), confidence)

    def _remask_probability(
        self, revealed_confidence: Tensor | None, revisable: Tensor, t: Tensor, s: Tensor, sigma_max: Tensor
    ) -> tuple[Tensor, Tensor]:
        """([B, P] probability of remasking each revealed token, [B] sigma_t used for the masked ones)."""
        p = self.params
        if p.strategy == "conf":
            share = (-revealed_confidence.exp()).masked_fill(~revisable, float("-inf")).softmax(-1).nan_to_num(0.0)
            return sigma_max[:, None] * share, torch.zeros_like(sigma_max)
        if p.strategy == "cap":
            sigma = torch.minimum(torch.full_like(sigma_max, p.eta), sigma_max)
        elif p.strategy == "rescale":
            sigma = p.eta * sigma_max
        else:
            in_loop = (t <= p.t_on) & (t > p.t_off)
            sigma = torch.where(
                in_loop, torch.minimum(torch.full_like(sigma_max, p.eta), sigma_max), torch.zeros_like(sigma_max)
            )
        return sigma[:, None].expand_as(revisable), sigma
