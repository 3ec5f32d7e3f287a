"""Confidence-threshold parallel decoding: reveal every position the model is sure of (Fast-dLLM style).

Each step reveals all masked positions whose confidence (a probability, see
`medim.samplers.confidence`) reaches `threshold`, and never fewer than the
reveal schedule's share (at least one), so it finishes within the step budget
and stops early on samples the model finds easy: the loop spends no network
call on a finished sample. With `threshold` above 1 it is the schedule alone.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import Tensor

from medim.registry import SAMPLERS
from medim.samplers.base import StepContext
from medim.samplers.confidence import ConfidenceKind
from medim.samplers.maskgit import MaskGITSampler, RevealSchedule


@SAMPLERS.register("threshold")
class ThresholdSampler(MaskGITSampler):
    """Parallel decoding: reveal every masked position whose confidence passes a threshold (at least one per step)."""

    class Params(MaskGITSampler.Params):
        threshold: float = Field(
            0.9, gt=0, description="reveal positions whose confidence is at least this probability"
        )
        schedule: RevealSchedule = Field("linear", description="the fewest reveals per step, as maskgit's schedule")
        confidence: ConfidenceKind = Field("probability", description="what is compared with the threshold")
        gumbel_temperature: float = Field(
            0.0, ge=0, description="Gumbel noise on the ranking (0: most confident first)"
        )
        final_argmax: bool = Field(
            False, description="the last step takes the most likely token instead of sampling it"
        )

    def reveal_count(self, context: StepContext, masked: Tensor, generated: Tensor, confidence: Tensor) -> Tensor:
        scheduled = super().reveal_count(context, masked, generated, confidence)
        return torch.maximum(scheduled, self._confident(masked, confidence).sum(-1))

    def ranking_score(self, score: Tensor, confidence: Tensor, masked: Tensor) -> Tensor:
        """Confident positions first whatever the Gumbel noise; the noise orders only the rest."""
        return score.masked_fill(self._confident(masked, confidence), float("inf"))

    def _confident(self, masked: Tensor, confidence: Tensor) -> Tensor:
        return masked & (confidence >= math.log(self.params.threshold))
