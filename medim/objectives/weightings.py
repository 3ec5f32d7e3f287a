"""The loss weights w(t) of a masked token at time t, one registered objective each.

    elbo         w = m'(t) / m(t) = -alpha'/(1 - alpha)         MDLM's ELBO, MeDiM's (1/t for log-linear)
    unweighted   w = 1                                          the "simplified" loss (MaskGIT-style mean CE)
    softmin_snr  w = m'(t) / (m(t) + alpha_t / gamma)          UniDisc's soft min-SNR weight
The last is UniDisc's dsigma / (expm1(sigma) + 1/gamma) written with m = 1 - alpha: with
SNR = alpha / m it is the ELBO weight times 1 / (1 + SNR / gamma), a soft min(SNR, gamma)
that tames the 1/t blow-up at low noise.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from medim.objectives.base import MaskedDiffusionObjective, ObjectiveParams
from medim.registry import OBJECTIVES


@OBJECTIVES.register("elbo")
class ELBOObjective(MaskedDiffusionObjective):
    """MDLM's continuous-time ELBO (SUBS): each masked token weighted by -alpha'(t)/(1 - alpha_t); MeDiM's loss."""

    def weight(self, t: Tensor) -> Tensor:
        return self.noise.loss_weight(t)


@OBJECTIVES.register("unweighted")
class UnweightedObjective(MaskedDiffusionObjective):
    """Simplified loss: plain cross-entropy of the masked tokens, every time weighted alike."""

    def weight(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)


@OBJECTIVES.register("softmin_snr")
class SoftMinSNRObjective(MaskedDiffusionObjective):
    """UniDisc's soft-min-SNR weight: the ELBO weight damped where the signal-to-noise ratio exceeds gamma."""

    class Params(ObjectiveParams):
        gamma: float = Field(5.0, gt=0, description="SNR at which the weight starts to level off (UniDisc: 5)")

    def weight(self, t: Tensor) -> Tensor:
        masking = self.noise.masking(t)
        return self.noise.masking_rate(t) / (masking + (1.0 - masking) / self.params.gamma)
