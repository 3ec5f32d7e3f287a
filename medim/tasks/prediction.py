"""Predictions for the reverse process: one batched backbone call, vocabulary blocking, guidance and the cache.

Each call runs the backbone on the samples that need a fresh prediction (conditional
and, with guidance, unconditional rows together; the unconditional input re-masks
the conditioning positions), reads logits only at the generated positions and blocks
the ids a position's modality may not take. A sampler that reuses predictions gets a
sample's last logits again while its tokens did not change.

Time input. A backbone trained with one time per sample gets the mean time of the
sample's generated positions (the grid time, with a single group); one trained with
per-position times (objective `time_sampling: independent`) gets each position's own:
generated ones their group's t, given ones 0, and re-masked conditioning 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from medim.backbones.base import Backbone
from medim.noise.base import MaskingSchedule
from medim.samplers.base import Sampler
from medim.samplers.logits import classifier_free_guidance
from medim.tasks.costs import CostCounter
from medim.tasks.state import DecodingState
from medim.tokenizers.layouts import SequenceLayout


class Guidance:
    """Classifier-free guidance of one generation: what its unconditional branch re-masks, and in which samples."""

    def __init__(self, conditioning: Tensor | None, cfg_scale: float, device: torch.device) -> None:
        active = conditioning is not None and cfg_scale > 0
        #: [B, L] positions re-masked for the unconditional branch (None: no guidance)
        self.conditioning = conditioning.to(device) if active else None
        self.scale = cfg_scale if active else 0.0
        # a sample with nothing to re-mask has identical guided inputs: guiding it would only add float error
        self.guided = self.conditioning.any(1) if active else None

    @property
    def active(self) -> bool:
        """Whether any unconditional rows are computed."""
        return self.conditioning is not None

    def guided_logits(self, sampler: Sampler, cond: Tensor, uncond: Tensor, t: Tensor, index: Tensor) -> Tensor:
        """Guided log-probabilities of the samples `index` at times t [n], with the sampler's weight schedule."""
        weight = sampler.guidance_weight(self.scale, t) * self.guided[index]
        return classifier_free_guidance(cond, uncond, weight)


@dataclass
class Predictions:
    """Target logits [n, P, V] of some samples; `slot` [B] says which row holds each sample's (-1: none)."""

    slot: Tensor
    cond: Tensor
    uncond: Tensor | None


class Predictor:
    """Logits at the generated positions for the samples that need them (module docstring)."""

    def __init__(
        self,
        backbone: Backbone,
        layout: SequenceLayout,
        schedule: MaskingSchedule,
        state: DecodingState,
        guidance: Guidance,
        *,
        token_levels: bool,
        reuse: bool,
        costs: CostCounter,
    ) -> None:
        device = state.x.device
        self.backbone, self.layout, self.schedule, self.state, self.guidance = (
            backbone,
            layout,
            schedule,
            state,
            guidance,
        )
        self.token_levels, self.reuse, self.costs = token_levels, reuse, costs
        targets = state.targets.cpu()
        self.allowed = layout.allowed_vocab(targets).to(device)
        self.logit_positions = layout.logit_positions(targets).to(device)
        self.cache: Predictions | None = None
        self.cache_tokens = self.cache_valid = torch.empty(0)

    def predict(self, rows: Tensor) -> Predictions:
        """Logits at the targets, valid at least for `rows` [B] (from the cache where tokens did not change)."""
        if not self.reuse:
            return self._forward(rows)
        x = self.state.x
        fresh = rows.clone()
        if self.cache is not None:
            unchanged = self.cache_valid & (x == self.cache_tokens).all(1)
            fresh &= ~unchanged
            self.costs.reused += int((rows & unchanged).sum())
        if fresh.any():
            computed = self._forward(fresh)
            if self.cache is None:
                self._start_cache(computed)
            index = fresh.nonzero()[:, 0]
            self.cache.cond[index] = computed.cond
            if computed.uncond is not None:
                self.cache.uncond[index] = computed.uncond
            self.cache_tokens[index] = x[index]
            self.cache_valid[index] = True
        return self.cache

    def _start_cache(self, computed: Predictions) -> None:
        batch, device = self.state.batch, self.state.x.device
        uncond = None if computed.uncond is None else computed.uncond.new_zeros(batch, *computed.uncond.shape[1:])
        cond = computed.cond.new_zeros(batch, *computed.cond.shape[1:])
        self.cache = Predictions(torch.arange(batch, device=device), cond, uncond)
        self.cache_tokens = self.state.x.clone()
        self.cache_valid = torch.zeros(batch, dtype=torch.bool, device=device)

    def _forward(self, rows: Tensor) -> Predictions:
        """One batched backbone call on `rows` and, when guiding, their unconditional copies."""
        state = self.state
        index = rows.nonzero()[:, 0]
        inputs, times = state.x[index], state.time[index]
        generated = torch.zeros_like(inputs, dtype=torch.bool)
        generated[:, state.targets] = state.generate[index]
        if self.guidance.active:
            remask = self.guidance.conditioning[index]
            inputs = torch.cat([inputs, torch.where(remask, self.layout.mask_id, inputs)])
            times = torch.cat([times, torch.where(remask, 1.0, times)])
            generated = torch.cat([generated, generated])
        if not self.token_levels:  # one time per sample: the mean over its generated positions
            times = (times * generated).sum(1) / generated.sum(1).clamp(min=1)
        hidden = self.backbone(inputs, self.schedule.sigma(times), self.layout.attention_mask(inputs))
        logits = self.backbone.logits(hidden, self.logit_positions).float()
        logits = logits.masked_fill(~self.allowed, float("-inf"))
        self.costs.forward(index)
        slot = torch.full((state.batch,), -1, dtype=torch.long, device=state.x.device)
        slot[index] = torch.arange(len(index), device=state.x.device)
        cond, uncond = logits.split(len(index)) if self.guidance.active else (logits, None)
        return Predictions(slot, cond, uncond)
