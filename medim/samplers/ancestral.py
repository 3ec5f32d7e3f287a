"""MDLM ancestral sampling: the exact reverse step of the absorbing process (SUBS parameterisation).

For a masked token at time t and an earlier time s < t (MDLM eq. 7):
    q(xs = v | xt = mask) = (alpha_s - alpha_t) / (1 - alpha_t) * p_theta(x0 = v | xt)
    q(xs = mask | xt = mask) = (1 - alpha_s) / (1 - alpha_t)
and unmasked tokens are copied. At s = 0, alpha_s = 1, so every token is revealed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from medim.registry import SAMPLERS
from medim.samplers.base import Sampler, SamplerOutput
from medim.samplers.logits import sample_categorical


@SAMPLERS.register("ancestral")
class AncestralSampler(Sampler):
    """MDLM reverse steps: each masked token is revealed with probability (alpha_s - alpha_t)/(1 - alpha_t)."""

    def step(self, logits: Tensor, xt: Tensor, t: float, s: float, generator: torch.Generator | None = None) -> SamplerOutput:
        assert logits.shape[:2] == xt.shape, (logits.shape, xt.shape)
        x0 = sample_categorical(self.log_probs(logits), generator)
        alpha_t = float(self.noise.alpha(torch.tensor(t)))
        alpha_s = float(self.noise.alpha(torch.tensor(s)))
        reveal_probability = 1.0 if s <= 0 else (alpha_s - alpha_t) / (1.0 - alpha_t)
        reveal = torch.rand(xt.shape, generator=generator, device=xt.device) < reveal_probability
        masked = xt == self.mask_id
        return SamplerOutput(torch.where(masked & reveal, x0, xt), torch.where(masked, x0, xt))
