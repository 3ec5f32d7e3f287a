"""MDLM ancestral sampling: the exact reverse step of the absorbing process (SUBS parameterisation).

For a masked token at time t and an earlier time s < t (MDLM eq. 7):
    q(xs = v | xt = mask) = (alpha_s - alpha_t) / (1 - alpha_t) * p_theta(x0 = v | xt)   (= (m_t - m_s) / m_t * p_theta)
    q(xs = mask | xt = mask) = (1 - alpha_s) / (1 - alpha_t)
and unmasked tokens are copied. At the last step (s = t_end, 0 unless set) every token is revealed.
With many steps most steps reveal nothing; then xs = xt and the next prediction
would be the same up to the time input, so the loop reuses it (`cache`, MDLM's
"ddpm_cache"). That is exact for a time-agnostic denoiser (the true absorbing
posterior does not depend on t) and a close approximation for a time-conditioned one.
"""

from __future__ import annotations

import torch
from pydantic import Field

from medim.registry import SAMPLERS
from medim.samplers.base import Sampler, SamplerCapabilities, SamplerOutput, SamplerParams, StepContext
from medim.samplers.logits import sample_categorical


@SAMPLERS.register("ancestral")
class AncestralSampler(Sampler):
    """MDLM reverse steps: each masked token is revealed with probability (alpha_s - alpha_t)/(1 - alpha_t)."""

    class Params(SamplerParams):
        cache: bool = Field(True, description="reuse the last prediction of a sample whose tokens did not change")

    def capabilities(self) -> SamplerCapabilities:
        return SamplerCapabilities(reuses_predictions=self.params.cache)

    def step(self, context: StepContext) -> SamplerOutput:
        xt, t, s, rng = context.xt, context.t, context.s, context.rng
        x0 = sample_categorical(self.log_probs(context.logits), rng)
        m_t, m_s = context.schedule.masking(t), context.schedule.masking(s)  # 1 - alpha, exact where alpha is near 1
        reveal_probability = torch.where(self.is_final(s), torch.ones_like(t), (m_t - m_s) / m_t)
        reveal = rng.rand(xt.shape[1]).to(xt.device) < reveal_probability[:, None]
        masked = self._masked(context)
        return SamplerOutput(torch.where(masked & reveal, x0, xt), torch.where(masked, x0, xt))
