"""Masked-diffusion tasks: which positions are noised, which condition, the loss and generation.

A task never looks inside the backbone or the layout's id arithmetic; it only
decides roles: the *noisable* positions are corrupted and scored, the
*conditioning* positions stay clean (or are all masked, with probability
`cond_dropout`, so the same model also learns the unconditional distribution
that classifier-free guidance needs).

Loss (MDLM SUBS, as in MeDiM): for x0 [B, L], t ~ U[t_min, 1] (stratified),
xt = corrupt(x0, t); at every masked noisable position the cross-entropy of x0
under logits restricted to that position's modality, weighted by
w(t) = -alpha'(t) / (1 - alpha_t) (= 1/t, log-linear), summed and divided by the
number of noisable positions in the batch (those the layout lets be scored: MeDiM's
layout never scores report padding).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from medim.backbones.base import Backbone
from medim.noise.base import MaskingSchedule
from medim.registry import ComponentParams
from medim.samplers.base import Sampler
from medim.tasks.generation import denoise
from medim.tokenizers.layouts import FIXED, SequenceLayout


@dataclass(frozen=True)
class TrainingBatch:
    """One corrupted batch: clean x0, noisy xt, times t [B] and the noisable positions [B, L]."""

    x0: Tensor
    xt: Tensor
    t: Tensor
    noisable: Tensor


@dataclass(frozen=True)
class LossOutput:
    """The scalar loss and diagnostics (unweighted cross-entropy, accuracy at masked positions)."""

    loss: Tensor
    cross_entropy: float
    accuracy: float
    masked_tokens: int


class TaskParams(ComponentParams):
    """Settings shared by every task."""

    cond_dropout: float = Field(0.1, ge=0, le=1, description="probability of masking all conditioning (for CFG)")


class MaskedDiffusionTask:
    """Base class: subclasses say which modalities are noised and which condition."""

    Params = TaskParams
    #: Modalities generated (noised) and given (conditioning) by this task.
    noised_modalities: tuple[int, ...] = ()
    conditioning_modalities: tuple[int, ...] = ()

    def __init__(self, params: TaskParams, *, layout: SequenceLayout, noise: MaskingSchedule) -> None:
        self.params = params
        self.layout = layout
        self.noise = noise

    # -- roles ---------------------------------------------------------------------------------

    def _positions_of(self, modalities: tuple[int, ...]) -> Tensor:
        return torch.isin(self.layout.position_modality, torch.tensor(modalities, dtype=torch.long))

    def roles(self, batch: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(noisable, conditioning), each [B, L] bool."""
        noisable = self._positions_of(self.noised_modalities)
        conditioning = self._positions_of(self.conditioning_modalities)
        return noisable.expand(batch, -1), conditioning.expand(batch, -1)

    # -- training ------------------------------------------------------------------------------

    def training_batch(self, x0: Tensor, generator: torch.Generator | None = None) -> TrainingBatch:
        """Corrupt clean sequences x0 [B, L] for this task."""
        batch = x0.shape[0]
        noisable, conditioning = (m.to(x0.device) for m in self.roles(batch, generator))
        t = self.noise.sample_t(batch, generator, device=x0.device)
        xt = self.noise.corrupt(x0, t, noisable, self.layout.mask_id, generator)
        dropped = torch.rand(batch, generator=generator, device=x0.device) < self.params.cond_dropout
        xt = xt.masked_fill(dropped[:, None] & conditioning, self.layout.mask_id)
        return TrainingBatch(x0=x0, xt=xt, t=t, noisable=noisable)

    def loss(self, backbone: Backbone, batch: TrainingBatch) -> LossOutput:
        """The weighted ELBO of `batch` (see the module docstring)."""
        layout = self.layout
        hidden = backbone(batch.xt, self.noise.sigma(batch.t), layout.attention_mask(batch.xt))
        scorable = batch.noisable
        scored_mask = layout.scored_mask(batch.x0)
        if scored_mask is not None:
            scorable = scorable & scored_mask
        scored = (batch.xt == layout.mask_id) & scorable
        rows, positions = scored.nonzero(as_tuple=True)
        logits = backbone.logits(hidden[rows, layout.logit_positions(positions)][None])[0]
        logits = logits.masked_fill(~layout.allowed_vocab(positions.cpu()).to(logits.device), float("-inf"))
        targets = batch.x0[rows, positions]
        cross_entropy = F.cross_entropy(logits.float(), targets, reduction="none")
        weights = self.noise.loss_weight(batch.t)[rows]
        loss = (weights * cross_entropy).sum() / scorable.sum().clamp(min=1)
        with torch.no_grad():
            accuracy = (logits.argmax(-1) == targets).float().mean().item() if len(targets) else 0.0
            mean_ce = cross_entropy.mean().item() if len(targets) else 0.0
        return LossOutput(loss=loss, cross_entropy=mean_ce, accuracy=accuracy, masked_tokens=len(targets))

    def validation_losses(self, backbone: Backbone, x0: Tensor, generator: torch.Generator) -> dict[str, float]:
        """Validation loss of this task on x0 (a mixture reports each member separately)."""
        return {"loss": self.loss(backbone, self.training_batch(x0, generator)).loss.item()}

    # -- generation ----------------------------------------------------------------------------

    def _denoise(
        self,
        backbone: Backbone,
        sampler: Sampler,
        given: Tensor,
        *,
        num_steps: int,
        cfg_scale: float,
        generator: torch.Generator | None,
    ) -> Tensor:
        """Fill this task's noised positions of `given` [B, L] by the reverse process."""
        targets = self._positions_of(self.noised_modalities).nonzero()[:, 0]
        conditioning = self._positions_of(self.conditioning_modalities).nonzero()[:, 0]
        return denoise(
            backbone, self.layout, self.noise, sampler, given,
            targets=targets, conditioning=conditioning, num_steps=num_steps,
            cfg_scale=cfg_scale if len(conditioning) else 0.0, generator=generator,
        )

    def _template(self, batch: int, device: torch.device) -> Tensor:
        """Sequences [B, L] with fixed tokens in place and every modality position masked."""
        layout = self.layout
        codes = torch.zeros(batch, len(layout.image_positions), dtype=torch.long)
        text = torch.zeros(batch, len(layout.text_positions), dtype=torch.long)
        tokens = layout.pack(codes, text)
        tokens[:, layout.position_modality != FIXED] = layout.mask_id
        return tokens.to(device)

