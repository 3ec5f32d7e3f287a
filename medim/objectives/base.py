"""Training objectives of masked diffusion: how a clean batch is corrupted, and how the denoiser is scored.

Notation as in `medim.noise.base`: x0 [B, L] clean, xt corrupted, t a time in
[0, 1], m(t) = 1 - alpha_t the masking probability, w(t) a loss weight.

Corruption (`corrupt`), given the task's roles (which positions are noised, which condition):
  - times: one t per sample shared by image and report (MeDiM), or one per modality
    (`time_sampling: independent`), each drawn by the schedule (stratified when antithetic);
  - prompt (MeDiM): with probability `prompt_probability` the report's first sentence
    stays clean and is not scored, so the model learns to continue a given opening;
  - whole-modality masking (UniDisc): in a sample whose image and report are both
    noised, with probability `mask_modality_probability` one of them (either, equally
    likely) is masked entirely; as in UniDisc its tokens weigh w(t) of the time t the
    sample drew for that modality (w(1) would make the option vanish under schedules
    with m'(1) = 0), and a backbone with per-position levels sees them at level 1;
  - condition dropout (the task's `cond_dropout`): all conditioning masked, at time 1,
    which teaches the unconditional model that classifier-free guidance needs.

Loss (`loss`; MDLM's SUBS parameterisation: the mask id is never predicted, its logit
being removed with every id the position's modality may not take, and unmasked
positions copy their input, so only masked positions are scored):
    L = sum over masked scored positions i of  lambda_mod(i) * w(t_i) * CE(x0_i | xt)
divided by the number of noisable positions (`normalize: noisable`, MeDiM), by the
number of masked ones (`masked`), or per modality before the weighted sum
(`modality`: each modality's sum over its own noisable count, so 1024 image tokens
and 256 report tokens weigh alike). lambda is `modality_weights`; w is the named
objective's (`medim.objectives.weightings`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from pydantic import Field, field_validator
from torch import Tensor

from medim.backbones.base import Backbone
from medim.config.modalities import IMAGE, MODALITY_CODES, TEXT, ModalityName
from medim.noise.base import MaskingSchedule, uniform
from medim.objectives.token_loss import score_grid
from medim.registry import ComponentParams
from medim.tokenizers.layouts import SequenceLayout


@dataclass(frozen=True)
class TrainingBatch:
    """One corrupted batch: clean x0 and noisy xt [B, L], each position's time [B, L], the noisable
    (scored) positions [B, L], and the backbone's noise input ([B], or [B, L] with per-position times)."""

    x0: Tensor
    xt: Tensor
    times: Tensor
    noisable: Tensor
    noise_level: Tensor


@dataclass(frozen=True)
class LossOutput:
    """The scalar loss and its diagnostics: unweighted cross-entropy and accuracy at masked positions, per modality
    too. The diagnostics stay on the device as sums (`stats`) until first read, then come over in one transfer, so
    computing a loss never waits for the device."""

    loss: Tensor
    #: [3 + 2M]: sum of cross-entropies, correct argmaxes, scored tokens, then per modality its CE sum and count.
    stats: Tensor

    @functools.cached_property
    def _values(self) -> list[float]:
        return self.stats.tolist()

    @property
    def masked_tokens(self) -> int:
        return int(self._values[2])

    @property
    def cross_entropy(self) -> float:
        return self._values[0] / self.masked_tokens if self.masked_tokens else 0.0

    @property
    def accuracy(self) -> float:
        return self._values[1] / self.masked_tokens if self.masked_tokens else 0.0

    @property
    def modality_masked_tokens(self) -> dict[str, int]:
        """The masked positions behind each `modality_cross_entropy` mean (the weights that combine them over
        micro-batches); modalities without any are left out."""
        counts = {name: int(self._values[4 + 2 * i]) for i, name in enumerate(MODALITY_CODES)}
        return {name: count for name, count in counts.items() if count}

    @property
    def modality_cross_entropy(self) -> dict[str, float]:
        totals = {name: self._values[3 + 2 * i] for i, name in enumerate(MODALITY_CODES)}
        return {name: totals[name] / count for name, count in self.modality_masked_tokens.items()}


@dataclass(frozen=True)
class ScoredTokens:
    """The positions a loss scores: sample `rows` and `positions` [N], their cross-entropy and w(t) * CE [N],
    whether the argmax was right [N], and every scorable position [B, L] (the normaliser's count)."""

    rows: Tensor
    positions: Tensor
    cross_entropy: Tensor
    weighted: Tensor
    correct: Tensor
    scorable: Tensor


class ModalityWeightParams(ComponentParams):
    """The loss weight of each modality's tokens, which every objective takes."""

    modality_weights: dict[ModalityName, float] = Field(
        default_factory=lambda: {"image": 1.0, "text": 1.0},
        description="loss weight of each modality's tokens (a modality left out weighs 1)",
    )

    @field_validator("modality_weights")
    @classmethod
    def _non_negative(cls, weights: dict[str, float]) -> dict[str, float]:
        negative = {k: v for k, v in weights.items() if v < 0}
        if negative:
            raise ValueError(f"weights must be >= 0, got {negative}")
        return {name: weights.get(name, 1.0) for name in MODALITY_CODES}


class ObjectiveParams(ModalityWeightParams):
    """Corruption and normalisation choices every objective shares."""

    time_sampling: Literal["shared", "independent"] = Field(
        "shared",
        description="one t per sample for image and report (MeDiM), or one per modality; "
        "independent needs a backbone that takes per-position noise levels",
    )
    normalize: Literal["noisable", "masked", "modality"] = Field(
        "noisable",
        description="divide by the noisable positions (MeDiM), the masked ones, or per modality",
    )
    prompt_probability: float = Field(
        0.0, ge=0, le=1, description="probability that the report's first sentence stays clean (MeDiM: 0.1)"
    )
    mask_modality_probability: float = Field(
        0.0,
        ge=0,
        le=1,
        description="probability that image or report is masked entirely in a joint sample (UniDisc: 0.1-0.2)",
    )


class Objective:
    """What tasks, the trainer and the evaluation need of any objective: corrupt a batch for a task's roles,
    score it, and say how the model it trains is decoded and what backbone it needs."""

    #: True for an objective whose model generates one token at a time in a fixed order (tasks decode it so).
    decodes_left_to_right: ClassVar[bool] = False
    #: True when the objective only makes sense with a backbone whose attention is causal.
    needs_causal_backbone: ClassVar[bool] = False

    def __init__(self, params: ComponentParams, *, layout: SequenceLayout, noise: MaskingSchedule) -> None:
        self.params = params
        self.layout = layout
        self.noise = noise

    @property
    def token_levels(self) -> bool:
        """True when the backbone gets one noise level per position ([B, L]) rather than per sample."""
        return False

    def corrupt(
        self,
        x0: Tensor,
        noisable: Tensor,
        conditioning: Tensor,
        cond_dropout: float,
        generator: torch.Generator | None = None,
    ) -> TrainingBatch:
        """The training input for clean sequences x0 [B, L] whose roles are `noisable` and `conditioning` [B, L]."""
        raise NotImplementedError

    def loss(self, backbone: Backbone, batch: TrainingBatch) -> LossOutput:
        """The scalar loss of `batch` and its diagnostics."""
        raise NotImplementedError


class MaskedDiffusionObjective(Objective):
    """Base class: the corruption and the SUBS loss; subclasses give the per-token weight w(t)."""

    Params = ObjectiveParams
    params: ObjectiveParams

    def __init__(self, params: ObjectiveParams, *, layout: SequenceLayout, noise: MaskingSchedule) -> None:
        super().__init__(params, layout=layout, noise=noise)
        self._sentence_ends: Tensor | None = None

    @property
    def token_levels(self) -> bool:
        return self.params.time_sampling == "independent"

    def weight(self, t: Tensor) -> Tensor:
        """w(t): the weight of a masked token's cross-entropy at its time t."""
        raise NotImplementedError

    # -- corruption ------------------------------------------------------------------------------

    def corrupt(
        self,
        x0: Tensor,
        noisable: Tensor,
        conditioning: Tensor,
        cond_dropout: float,
        generator: torch.Generator | None = None,
    ) -> TrainingBatch:
        """Corrupt clean sequences x0 [B, L] whose roles are `noisable` and `conditioning` [B, L] (module docstring)."""
        batch, device = x0.shape[0], x0.device
        params, mask_id = self.params, self.layout.mask_id
        modality = self.layout.position_modality.to(device)[None]
        noisable, conditioning = noisable.to(device).clone(), conditioning.to(device)
        t = self.noise.sample_t(batch, generator, device=device)
        times = t[:, None].expand_as(x0)
        if self.token_levels:
            times = torch.where(modality == TEXT, self.noise.sample_t(batch, generator, device=device)[:, None], times)
        times = torch.where(noisable, times, 0.0)
        if params.prompt_probability > 0:
            prompted = (uniform((batch,), generator, device) < params.prompt_probability)[:, None]
            prompted = prompted & self.first_sentence(x0) & noisable
            noisable &= ~prompted
            times = torch.where(prompted, 0.0, times)
        forced = torch.zeros_like(noisable)
        if params.mask_modality_probability > 0:
            both = (noisable & (modality == IMAGE)).any(1) & (noisable & (modality == TEXT)).any(1)
            chosen = both & (uniform((batch,), generator, device) < params.mask_modality_probability)
            which = torch.where(uniform((batch,), generator, device) < 0.5, IMAGE, TEXT)
            forced = chosen[:, None] & noisable & (modality == which[:, None])
        xt = self.noise.corrupt(x0, times, noisable, mask_id, generator)
        xt = xt.masked_fill(forced, mask_id)
        dropped = (uniform((batch,), generator, device) < cond_dropout)[:, None] & conditioning
        xt = xt.masked_fill(dropped, mask_id)
        times = torch.where(dropped, 1.0, times)
        level = self.noise.sigma(torch.where(forced, 1.0, times) if self.token_levels else t)
        return TrainingBatch(x0=x0, xt=xt, times=times, noisable=noisable, noise_level=level)

    def first_sentence(self, x0: Tensor) -> Tensor:
        """[B, L] bool: the report positions up to and including its first sentence end (none if it has none)."""
        if self._sentence_ends is None:
            self._sentence_ends = torch.tensor(sorted(self.layout.text_tokenizer.sentence_end_ids()), dtype=torch.long)
        text = self.layout.text_positions.to(x0.device)
        ends = torch.isin(x0[:, text], self._sentence_ends.to(x0.device))
        first_end = ends.float().argmax(1)
        keep = (torch.arange(len(text), device=x0.device)[None] <= first_end[:, None]) & ends.any(1, keepdim=True)
        out = torch.zeros_like(x0, dtype=torch.bool)
        out[:, text] = keep
        return out

    # -- loss ------------------------------------------------------------------------------------

    def scored_tokens(self, backbone: Backbone, batch: TrainingBatch) -> ScoredTokens:
        """Every masked scored position of `batch` with its cross-entropy and its weighted loss w(t) * CE."""
        layout = self.layout
        x0, xt = batch.x0, batch.xt
        hidden = backbone(xt, batch.noise_level, layout.attention_mask(xt))
        scorable = layout.scorable(x0, batch.noisable)
        positions = torch.arange(x0.shape[1], device=x0.device)
        columns = layout.logit_positions(positions)
        scores = score_grid(
            backbone, layout, hidden, (xt == layout.mask_id) & scorable, x0, positions.expand_as(x0), columns
        )
        weighted = self.weight(batch.times[scores.rows, scores.positions]) * scores.cross_entropy
        return ScoredTokens(scores.rows, scores.positions, scores.cross_entropy, weighted, scores.correct, scorable)

    def loss(self, backbone: Backbone, batch: TrainingBatch) -> LossOutput:
        """The weighted SUBS loss of `batch` (module docstring)."""
        scored = self.scored_tokens(backbone, batch)
        modality = self.layout.position_modality.to(batch.xt.device)[scored.positions]
        loss = self._normalise(scored.weighted, modality, scored.scorable)
        return loss_output(loss, scored, modality)

    def _normalise(self, weighted: Tensor, modality: Tensor, scorable: Tensor) -> Tensor:
        """Sum the weighted per-token losses [N] into the scalar loss, as `normalize` says."""
        weights = self.params.modality_weights
        if self.params.normalize == "modality":
            position_modality = self.layout.position_modality.to(scorable.device)[None]
            total = weighted.sum() * 0.0
            for name, code in MODALITY_CODES.items():
                count = (scorable & (position_modality == code)).sum()
                if count:
                    total = total + weights[name] * weighted[modality == code].sum() / count
            return total
        lam = torch.tensor([weights["image"], weights["text"]], device=weighted.device)[modality.clamp(min=0)]
        denominator = scorable.sum() if self.params.normalize == "noisable" else torch.tensor(len(weighted))
        return (lam * weighted).sum() / denominator.clamp(min=1)


def loss_output(loss: Tensor, scored: ScoredTokens, modality: Tensor) -> LossOutput:
    """`loss` with the diagnostics of the tokens it scored (`modality` [N]: each scored token's modality code)."""
    with torch.no_grad():
        ce = scored.cross_entropy.float()
        sums = [ce.sum(), scored.correct.float().sum(), ce.new_tensor(float(len(ce)))]
        for code in MODALITY_CODES.values():
            chosen = modality == code
            sums += [torch.where(chosen, ce, 0.0).sum(), chosen.float().sum()]
    return LossOutput(loss, torch.stack(sums))
