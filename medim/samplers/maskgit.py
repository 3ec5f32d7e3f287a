"""MaskGIT-style confidence-ordered unmasking (MeDiM's sampler).

At each step every masked position draws a token; the positions whose draw is
most confident are revealed, as many as the reveal schedule asks. The schedule
gives the fraction of positions still masked at time t:
    arccos: m(t) = (2/pi) * arccos(1 - t)    cosine: m(t) = sin(pi t / 2)    linear: m(t) = t
so going from t to s keeps floor(n_masked * m(s) / m(t)) masked (at least one is revealed).
Confidence is log p(drawn token) + gumbel_temperature * t * Gumbel noise (MeDiM: 10 t),
and the last step (s = 0) reveals every remaining position, by argmax as MeDiM does
(`final_argmax`; that makes the sampler greedy at the end, so only with
`final_argmax: false` does it sample a product distribution exactly).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from medim.registry import SAMPLERS
from medim.samplers.base import Sampler, SamplerOutput, SamplerParams
from medim.samplers.logits import gumbel_noise, sample_categorical

_SCHEDULES = {
    "arccos": lambda t: (2.0 / math.pi) * math.acos(1.0 - t),
    "cosine": lambda t: math.sin(math.pi * t / 2.0),
    "linear": lambda t: t,
}


@SAMPLERS.register("maskgit")
class MaskGITSampler(Sampler):
    """Confidence-ordered unmasking with an arccos/cosine/linear reveal schedule and Gumbel confidences."""

    class Params(SamplerParams):
        schedule: Literal["arccos", "cosine", "linear"] = "arccos"
        gumbel_temperature: float = Field(10.0, ge=0, description="confidence noise scale, multiplied by t")
        final_argmax: bool = Field(True, description="the last step takes the most likely token (MeDiM); false samples it")

    def step(self, logits: Tensor, xt: Tensor, t: float, s: float, generator: torch.Generator | None = None) -> SamplerOutput:
        assert logits.shape[:2] == xt.shape, (logits.shape, xt.shape)
        log_probs = self.log_probs(logits)
        x0 = log_probs.argmax(-1) if s <= 0 and self.params.final_argmax else sample_categorical(log_probs, generator)
        masked = xt == self.mask_id
        if s <= 0:
            return SamplerOutput(torch.where(masked, x0, xt), torch.where(masked, x0, xt))
        schedule = _SCHEDULES[self.params.schedule]
        n_masked = masked.sum(-1)
        # the 1e-6 stops float error (3 * (2/3) = 1.9999...) from revealing an extra token
        keep_masked = torch.floor(n_masked * (schedule(s) / schedule(t)) + 1e-6).long()
        n_reveal = torch.where(n_masked > 0, (n_masked - keep_masked).clamp(min=1), n_masked)
        confidence = log_probs.gather(-1, x0[..., None])[..., 0]
        if self.params.gumbel_temperature > 0:
            confidence = confidence + self.params.gumbel_temperature * t * gumbel_noise(confidence.shape, generator, xt.device)
        confidence = confidence.masked_fill(~masked, float("-inf"))
        rank = confidence.argsort(-1, descending=True).argsort(-1)
        reveal = masked & (rank < n_reveal[:, None])
        return SamplerOutput(torch.where(reveal, x0, xt), torch.where(masked, x0, xt))
