"""Next-token prediction on the same sequences: the autoregressive baseline that masked diffusion is judged against.

The model is the same backbone with causal attention (`backbone.bidirectional: false`),
trained and decoded by the same tasks, so a comparison changes the objective alone.

Order. A sequence is read in a rotation of the layout's order that puts what a task
is given before what it generates: the rotation starts at the first position of the
given (conditioning) modality, or at the first generated position when the task is
given nothing (joint generation, the layout's own order). With the compact layout,
image -> report reads `image <eoi> report <boi>` and report -> image reads
`report <boi> image <eoi>`; the joint model reads image first, so its report given
its image is exactly the image -> report model's. Per sample, so a multitask batch
mixes orders.

Shift. Input k is the token at order index k - 1 (the mask id stands in before the first),
so the hidden state at k predicts order index k. Positions are the order index.

Loss: the mean cross-entropy (nats) of the generated positions over the ids each may
take, the exact negative log-likelihood per token (no bound); `modality_weights`
weigh it as in the diffusion objectives. Condition dropout replaces the conditioning
tokens with the mask id, which classifier-free guidance at decoding re-creates.
"""

from __future__ import annotations

import torch
from torch import Tensor

from medim.backbones.base import Backbone
from medim.config.modalities import FIXED
from medim.noise.base import uniform
from medim.objectives.base import (
    LossOutput,
    ModalityWeightParams,
    Objective,
    ScoredTokens,
    TrainingBatch,
    loss_output,
)
from medim.objectives.token_loss import score_grid
from medim.registry import OBJECTIVES
from medim.tokenizers.layouts import SequenceLayout


def generation_order(layout: SequenceLayout, noisable: Tensor) -> Tensor:
    """[B, L] the layout positions in the order they are read, for samples whose generated positions are
    `noisable` [B, L] (module docstring)."""
    length = noisable.shape[1]
    content = (layout.position_modality.to(noisable.device) != FIXED)[None]
    given = content & ~noisable
    first_given = given.int().argmax(1)
    first_generated = noisable.int().argmax(1)
    start = torch.where(given.any(1), first_given, first_generated)
    return (torch.arange(length, device=noisable.device)[None] + start[:, None]) % length


def shift_right(ordered: Tensor, start_id: int) -> Tensor:
    """[B, L] the backbone's input for sequences [B, L] already in reading order: shifted right by one behind
    `start_id`, so that input k holds the token at order index k - 1."""
    return torch.cat([torch.full_like(ordered[:, :1], start_id), ordered[:, :-1]], 1)


@OBJECTIVES.register("autoregressive")
class AutoregressiveObjective(Objective):
    """Causal next-token prediction with the given part read first; decoded one token at a time."""

    class Params(ModalityWeightParams):
        """Autoregressive training: only the modality weights apply (no time, no masking)."""

    decodes_left_to_right = True
    needs_causal_backbone = True

    def corrupt(
        self,
        x0: Tensor,
        noisable: Tensor,
        conditioning: Tensor,
        cond_dropout: float,
        generator: torch.Generator | None = None,
    ) -> TrainingBatch:
        """Clean sequences, their conditioning dropped to the mask id with probability `cond_dropout`."""
        batch, device = x0.shape[0], x0.device
        noisable, conditioning = noisable.to(device), conditioning.to(device)
        dropped = (uniform((batch,), generator, device) < cond_dropout)[:, None] & conditioning
        xt = x0.masked_fill(dropped, self.layout.mask_id)
        times = torch.zeros(x0.shape, device=device)
        return TrainingBatch(
            x0=x0, xt=xt, times=times, noisable=noisable, noise_level=torch.zeros(batch, device=device)
        )

    def scored_tokens(self, backbone: Backbone, batch: TrainingBatch) -> ScoredTokens:
        """Every generated position with its next-token cross-entropy (weighted alike: no time weight)."""
        layout = self.layout
        scorable = layout.scorable(batch.x0, batch.noisable)
        order = generation_order(layout, batch.noisable)
        hidden = backbone(shift_right(batch.xt.gather(1, order), layout.mask_id), batch.noise_level, None)
        scores = score_grid(backbone, layout, hidden, scorable.gather(1, order), batch.x0, order)
        rows, positions, cross_entropy, correct = scores.rows, scores.positions, scores.cross_entropy, scores.correct
        return ScoredTokens(rows, positions, cross_entropy, cross_entropy, correct, scorable)

    def loss(self, backbone: Backbone, batch: TrainingBatch) -> LossOutput:
        """Sum of modality-weighted cross-entropies over the generated positions, per generated position."""
        scored = self.scored_tokens(backbone, batch)
        modality = self.layout.position_modality.to(batch.xt.device)[scored.positions]
        weights = self.params.modality_weights
        lam = torch.tensor([weights["image"], weights["text"]], device=modality.device)[modality.clamp(min=0)]
        loss = (lam * scored.weighted).sum() / scored.scorable.sum().clamp(min=1)
        return loss_output(loss, scored, modality)

    def sequence_nll(self, backbone: Backbone, x0: Tensor, noisable: Tensor) -> Tensor:
        """[B] each sequence's exact negative log-likelihood per generated token (nats), given the rest."""
        batch = self.corrupt(x0, noisable, torch.zeros_like(noisable), 0.0)
        scored = self.scored_tokens(backbone, batch)
        totals = torch.zeros(x0.shape[0], device=x0.device).index_add(0, scored.rows, scored.cross_entropy.float())
        return totals / scored.scorable.sum(1).clamp(min=1)
