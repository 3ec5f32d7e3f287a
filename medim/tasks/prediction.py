"""Predictions for the reverse process: one batched backbone call, vocabulary blocking, guidance and the cache.

Each call runs the backbone on the samples that need a fresh prediction (conditional
and, with guidance, unconditional rows together; the unconditional input re-masks
the conditioning positions) and reads logits only at the generated positions, only
over their modality's ids: when every target is of one modality, the logits hold just
its slice of the vocabulary (the loop shifts ids in and out of it, `vocab_offset`), so
guidance and the sampler work on 8,192 image ids rather than the whole vocabulary;
otherwise each modality's slice is computed and the other ids are blocked. A sampler that reuses predictions gets a
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

    def weights(self, sampler: Sampler, t: Tensor, index: Tensor) -> Tensor:
        """[n] the guidance weight of the samples `index` at times t [n] (the sampler's schedule; 0 unguided)."""
        if not self.active:
            return torch.zeros_like(t)
        return sampler.guidance_weight(self.scale, t) * self.guided[index]


@dataclass
class Predictions:
    """Target logits [n, P, V] of some samples; `slot` [B] says which row holds each sample's (-1: none).

    `raw` holds the conditional logits before vocabulary blocking, for samplers that ask for them."""

    slot: Tensor
    cond: Tensor
    uncond: Tensor | None
    raw: Tensor | None = None
    #: The logits' last axis holds ids [vocab_offset, vocab_offset + V) (nonzero: one modality's slice only).
    vocab_offset: int = 0

    def logits_at(self, index: Tensor, columns: Tensor, weight: Tensor) -> Tensor:
        """[n, C, V] the samples `index`'s logits at `columns`, guided with weight [n] where they have guidance."""
        slots = self.slot[index]
        logits = _take(self.cond, slots, columns)
        if self.uncond is None:
            return logits
        return classifier_free_guidance(logits, _take(self.uncond, slots, columns), weight)

    def raw_at(self, index: Tensor, columns: Tensor) -> Tensor | None:
        """[n, C, V'] the samples `index`'s raw logits at `columns` (None when they were not kept)."""
        return None if self.raw is None else self.raw[self.slot[index]][:, columns]


def _take(logits: Tensor, slots: Tensor, columns: Tensor) -> Tensor:
    """logits[slots][:, columns] in one copy (none for the columns when a group holds them all, as it usually does)."""
    rows = logits.index_select(0, slots)
    return rows if len(columns) == logits.shape[1] else rows[:, columns]


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
        keep_raw: bool,
        costs: CostCounter,
    ) -> None:
        device = state.x.device
        self.backbone, self.layout, self.schedule = backbone, layout, schedule
        self.state, self.guidance, self.costs = state, guidance, costs
        self.token_levels, self.reuse, self.keep_raw = token_levels, reuse, keep_raw
        targets = state.targets.cpu()
        self.allowed = layout.allowed_vocab(targets).to(device)
        self.logit_positions = layout.logit_positions(targets).to(device)
        self.slices = _modality_slices(layout, targets, device)
        self.local_range = None if keep_raw else _local_range(layout, self.slices)
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
            if computed.raw is not None:
                self.cache.raw[index] = computed.raw
            self.cache_tokens[index] = x[index]
            self.cache_valid[index] = True
        return self.cache

    def _start_cache(self, computed: Predictions) -> None:
        batch, device = self.state.batch, self.state.x.device

        def empty(like: Tensor | None) -> Tensor | None:
            return None if like is None else like.new_zeros(batch, *like.shape[1:])

        cond, uncond, raw = empty(computed.cond), empty(computed.uncond), empty(computed.raw)
        self.cache = Predictions(torch.arange(batch, device=device), cond, uncond, raw, computed.vocab_offset)
        self.cache_tokens = self.state.x.clone()
        self.cache_valid = torch.zeros(batch, dtype=torch.bool, device=device)

    def unguided(self, rows: Tensor) -> Predictions:
        """A fresh conditional prediction for `rows`, without the unconditional rows (MeDiM's noise removal)."""
        return self._forward(rows, guided=False)

    def _forward(self, rows: Tensor, guided: bool = True) -> Predictions:
        """One batched backbone call on `rows` and, when guiding, their unconditional copies."""
        state = self.state
        guided = guided and self.guidance.active
        index = rows.nonzero()[:, 0]
        inputs, times = state.x[index], state.time[index]
        generated = torch.zeros_like(inputs, dtype=torch.bool)
        generated[:, state.targets] = state.generate[index]
        if guided:
            remask = self.guidance.conditioning[index]
            inputs = torch.cat([inputs, torch.where(remask, self.layout.mask_id, inputs)])
            times = torch.cat([times, torch.where(remask, 1.0, times)])
            generated = torch.cat([generated, generated])
        if not self.token_levels:  # one time per sample: the mean over its generated positions
            times = (times * generated).sum(1) / generated.sum(1).clamp(min=1)
        hidden = self.backbone(inputs, self.schedule.sigma(times), self.layout.attention_mask(inputs))
        raw = None
        if self.local_range is not None:
            logits = self.backbone.logits(hidden, self.logit_positions, self.local_range).float()
        elif self.keep_raw or self.slices is None:
            raw = self.backbone.logits(hidden, self.logit_positions).float()
            logits = raw.masked_fill(~self.allowed, float("-inf"))
        else:
            logits = self._sliced_logits(hidden)
        self.costs.forward(index)
        slot = torch.full((state.batch,), -1, dtype=torch.long, device=state.x.device)
        slot[index] = torch.arange(len(index), device=state.x.device)
        cond, uncond = logits.split(len(index)) if guided else (logits, None)
        offset = 0 if self.local_range is None else self.local_range[0]
        return Predictions(slot, cond, uncond, raw[: len(index)] if self.keep_raw else None, offset)

    def _sliced_logits(self, hidden: Tensor) -> Tensor:
        """[n, P, V] logits at the targets, each computed only over its modality's ids (the others -inf, as blocked)."""
        shape = (len(hidden), len(self.logit_positions), self.layout.vocab_size)
        logits = torch.full(shape, float("-inf"), device=hidden.device)
        for columns, (lo, hi) in self.slices:
            logits[:, columns, lo:hi] = self.backbone.logits(hidden, self.logit_positions[columns], (lo, hi)).float()
        return logits


def _local_range(layout: SequenceLayout, slices: list | None) -> tuple[int, int] | None:
    """The one vocabulary range of targets that are all of one modality, when the sampler can work in its local
    ids: token id - lo for drawn ids, the mask id kept as it is, which needs the mask id outside [0, hi - lo)."""
    if slices is None or len(slices) != 1:
        return None
    lo, hi = slices[0][1]
    return (lo, hi) if not 0 <= layout.mask_id < hi - lo else None


def _modality_slices(layout: SequenceLayout, targets: Tensor, device: torch.device) -> list | None:
    """For each modality among `targets` [P]: its target columns and vocabulary range; None when a modality's ids
    are not one block (every id is then computed and the others blocked)."""
    modality = layout.position_modality[targets]
    slices = []
    for code in modality.unique().tolist():
        vocab_range = layout.vocab_range(code)
        if vocab_range is None:
            return None
        slices.append(((modality == code).nonzero()[:, 0].to(device), vocab_range))
    return slices
