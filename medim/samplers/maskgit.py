"""MaskGIT-style confidence-ordered unmasking (MeDiM's sampler).

At each step every masked position draws a token; the positions whose draw is
most confident are revealed, as many as the reveal schedule asks. The schedule
gives the fraction of positions still masked at time t:
    arccos: r(t) = (2/pi) * arccos(1 - t)    cosine: r(t) = sin(pi t / 2)    linear: r(t) = t
so a step to time s leaves floor(n * r(s)) of the n generated positions masked (at
least one is revealed per step). Counting from n, not from the positions still
masked, keeps the rounding from compounding: a per-step ratio would reveal up to one
token too many every step and turn arccos into linear decoding at 128 steps.
The ranking score is log-confidence (`medim.samplers.confidence`; MeDiM: the drawn
token's probability) + gumbel_temperature * g(t) * Gumbel noise, with g(t) = t
(MeDiM: 10 t) or 1. The last step (s = 0) reveals every remaining position, by
argmax as MeDiM does (`final_argmax`; that makes the sampler greedy at the end, so
only with `final_argmax: false` does it sample a product distribution exactly).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from medim.registry import SAMPLERS
from medim.samplers.base import Sampler, SamplerOutput, SamplerParams, StepContext
from medim.samplers.confidence import (
    ConfidenceKind,
    log_confidence,
    reveal_most_confident,
)
from medim.samplers.logits import sample_categorical

RevealSchedule = Literal["arccos", "cosine", "linear"]


def masked_fraction(schedule: RevealSchedule, t: Tensor) -> Tensor:
    """r(t): the fraction of positions the reveal schedule leaves masked at time t."""
    if schedule == "arccos":
        return (2.0 / math.pi) * torch.acos((1.0 - t).clamp(-1.0, 1.0))
    if schedule == "cosine":
        return torch.sin(math.pi * t / 2.0)
    return t


@SAMPLERS.register("maskgit")
class MaskGITSampler(Sampler):
    """Confidence-ordered unmasking with an arccos/cosine/linear reveal schedule and Gumbel confidences."""

    class Params(SamplerParams):
        schedule: RevealSchedule = Field(
            "arccos", description="fraction still masked over time: arccos (MeDiM), cosine, linear"
        )
        confidence: ConfidenceKind = Field(
            "probability", description="what ranks the masked positions (MeDiM: probability)"
        )
        gumbel_temperature: float = Field(10.0, ge=0, description="scale of the Gumbel noise added to log-confidence")
        gumbel_schedule: Literal["linear", "constant"] = Field(
            "linear", description="noise scale over time: gumbel_temperature * t (MeDiM) or constant"
        )
        final_argmax: bool = Field(
            True, description="the last step takes the most likely token (MeDiM); false samples it"
        )

    def step(self, context: StepContext) -> SamplerOutput:
        xt, t, s, rng, frozen = context.xt, context.t, context.s, context.rng, context.frozen
        params = self.params
        log_probs = self.log_probs(context.logits)
        final = s <= 0
        x0 = sample_categorical(log_probs, rng)
        if params.final_argmax:
            x0 = torch.where(final[:, None], log_probs.argmax(-1), x0)
        masked = self._masked(context)
        confidence = log_confidence(params.confidence, log_probs, x0, rng)
        score = confidence
        if params.gumbel_temperature > 0:
            scale = params.gumbel_temperature * (t if params.gumbel_schedule == "linear" else torch.ones_like(t))
            score = confidence + scale[:, None] * rng.gumbel(xt.shape[1]).to(score.device)
        generated = torch.full_like(t, xt.shape[1], dtype=torch.long) if frozen is None else (~frozen).sum(-1)
        score = self.ranking_score(score, confidence, masked)
        reveal = reveal_most_confident(score, masked, self.reveal_count(masked, generated, s, confidence))
        reveal = reveal | (masked & final[:, None])
        return SamplerOutput(torch.where(reveal, x0, xt), torch.where(masked, x0, xt))

    def reveal_count(self, masked: Tensor, generated: Tensor, s: Tensor, confidence: Tensor) -> Tensor:
        """[B] positions to reveal: down to the schedule's share of the `generated` ones at s, at least one.

        `confidence` [B, P] (log, before noise) is there for subclasses that reveal by it.
        """
        n_masked = masked.sum(-1)
        # the 1e-6 stops float error (3 * (2/3) = 1.9999...) from revealing an extra token
        keep_masked = torch.floor(generated * masked_fraction(self.params.schedule, s) + 1e-6).long()
        keep_masked = torch.minimum(keep_masked, n_masked - 1).clamp(min=0)
        return n_masked - keep_masked

    def ranking_score(self, score: Tensor, confidence: Tensor, masked: Tensor) -> Tensor:
        """The score [B, P] that orders the reveals (subclasses may put some positions first)."""
        return score


SAMPLERS.register_preset(
    "medim",
    MaskGITSampler,
    doc="MeDiM's sampler: MaskGIT with arccos reveal, log p + 10 t Gumbel confidence, final argmax, "
    "guidance w (1 - t).\n\n"
    "Use it with MeDiM's 128 steps and w = 5 "
    "(eval.num_steps: 128, eval.cfg_scale: 5, as experiments/paper/medim.yaml sets).",
    schedule="arccos",
    confidence="probability",
    gumbel_temperature=10.0,
    gumbel_schedule="linear",
    final_argmax=True,
    cfg_schedule="linear",
)
