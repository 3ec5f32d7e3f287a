"""First-hitting sampling (Zheng et al. 2024): exact continuous-time reverse sampling, one token per call.

Going backwards from time t with n masked tokens, each is still masked at s < t
with probability m(s)/m(t) (m = 1 - alpha), independently. So the first time any
of them is revealed satisfies (m(s)/m(t))^n = u for u ~ U(0, 1):
    s = t(m(t) * u^(1/n))
and at that time one masked position, chosen uniformly, takes a token drawn from
p_theta(x0 | xt) evaluated at s. There is no discretisation error: the number of
network calls equals the number of generated tokens (eval.num_steps is not used).
"""

from __future__ import annotations

import torch
from torch import Tensor

from medim.noise.base import MaskingSchedule
from medim.registry import SAMPLERS
from medim.samplers.base import Sampler, SamplerCapabilities, SamplerOutput, StepContext
from medim.samplers.logits import sample_categorical
from medim.samplers.random import RowGenerators


@SAMPLERS.register("first_hitting")
class FirstHittingSampler(Sampler):
    """Exact first-hitting-time sampling: draws the next reveal time, reveals one uniformly chosen token."""

    def capabilities(self) -> SamplerCapabilities:
        return SamplerCapabilities(chooses_times=True)

    def next_time(self, t: Tensor, n_masked: Tensor, rng: RowGenerators, schedule: MaskingSchedule) -> Tensor:
        u = rng.rand().to(t.device)
        exponent = 1.0 / n_masked.clamp(min=1).to(t.dtype)
        # a schedule with m(0) > 0 (linear sigma, sigma_min > 0) maps small masking levels before t = 0
        s = schedule.time_at(schedule.masking(t) * u**exponent).clamp(min=0.0)
        return torch.where(n_masked > 0, torch.minimum(s, t), t)

    def step(self, context: StepContext) -> SamplerOutput:
        xt, rng = context.xt, context.rng
        x0 = sample_categorical(self.log_probs(context.logits), rng)
        masked = self._masked(context)
        pick = rng.rand(xt.shape[1]).to(xt.device).masked_fill(~masked, -1.0).argmax(-1)
        reveal = torch.zeros_like(masked).scatter(1, pick[:, None], True) & masked
        return SamplerOutput(torch.where(reveal, x0, xt), torch.where(masked, x0, xt))
