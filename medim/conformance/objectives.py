"""Objective checks (`medim.objectives.base.Objective`): weights, corruption, loss, what is scored.

Built for the tiny environment's layout and log-linear schedule and scored with its tiny backbone, on
eight sequences: the first half noise image and report (joint), the second half the report given the
image. That only masked noisable positions are scored is checked from outside: changing the
backbone's hidden states anywhere else must leave the loss exactly as it was.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from medim.backbones.base import Backbone
from medim.config.modalities import IMAGE, TEXT
from medim.conformance.checks import Check, Once, Subject, require, shape
from medim.objectives.base import MaskedDiffusionObjective, Objective, TrainingBatch
from medim.registry import ComponentParams

BATCH = 8


class ObjectiveSubject(Subject):
    """An objective over the environment's layout and schedule, with one corrupted batch shared by the checks."""

    noun = "objective"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batch = Once("a corrupted batch", self._corrupt)

    def construct(self, params: ComponentParams) -> Objective:
        return self.entry.cls(params, layout=self.env.layout, noise=self.env.noise)

    def roles(self) -> tuple[Tensor, Tensor]:
        """(noisable, conditioning) [B, L]: joint for the first half of the batch, report given image after."""
        modality = self.env.layout.position_modality
        joint = (modality == IMAGE) | (modality == TEXT)
        noisable = torch.stack([joint if i < BATCH // 2 else modality == TEXT for i in range(BATCH)])
        conditioning = torch.stack(
            [torch.zeros_like(joint) if i < BATCH // 2 else modality == IMAGE for i in range(BATCH)]
        )
        return noisable, conditioning

    @property
    def batch(self) -> TrainingBatch:
        return self._batch.get()

    def _corrupt(self) -> TrainingBatch:
        noisable, conditioning = self.roles()
        generator = torch.Generator().manual_seed(0)
        return self.component.corrupt(self.env.sequences(BATCH), noisable, conditioning, 0.0, generator)


class _Perturbed(Backbone):
    """`backbone` with its hidden states changed wherever `where` [B, L] is True (what a loss must not read)."""

    def __init__(self, backbone: Backbone, where: Tensor) -> None:
        super().__init__()
        self.inner, self.where = backbone, where
        self.hidden_size, self.vocab_size = backbone.hidden_size, backbone.vocab_size

    def forward(self, tokens: Tensor, noise_level: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        hidden = self.inner(tokens, noise_level, padding_mask)
        return torch.where(self.where[..., None], hidden + 3.0, hidden)

    def output_weight(self) -> Tensor:
        return self.inner.output_weight()


class _Copier(Backbone):
    """A backbone that announces each position's input token (its logits pick that token by a wide margin)."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.hidden_size = self.vocab_size = vocab_size
        self.weight = torch.nn.Parameter(torch.eye(vocab_size) * 20.0)

    @property
    def is_causal(self) -> bool:
        return True

    def forward(self, tokens: Tensor, noise_level: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        return torch.nn.functional.one_hot(tokens, self.vocab_size).float()

    def output_weight(self) -> Tensor:
        return self.weight


def _builds(subject: ObjectiveSubject) -> str:
    objective = subject.component
    require(
        isinstance(objective, Objective),
        f"{subject.label}: must be a medim.objectives.base.Objective, got {type(objective).__name__}",
    )
    order = "left to right" if objective.decodes_left_to_right else "masked diffusion"
    return f"{order}, time sampling {'per position' if objective.token_levels else 'per sample'}"


def _is_diffusion(subject: ObjectiveSubject) -> bool:
    return isinstance(subject.component, MaskedDiffusionObjective)


def _weight(subject: ObjectiveSubject) -> str:
    t = torch.linspace(0.0, 1.0, 1001)[1:]
    w = subject.component.weight(t)
    require(
        w.shape == t.shape and bool(torch.isfinite(w).all()) and bool((w >= 0).all()),
        f"{subject.label}: weight(t) must be one finite w(t) >= 0 per time on (0, 1] "
        f"(MaskedDiffusionObjective.weight), got shape {list(w.shape)}, range [{w.min():.4g}, {w.max():.4g}]",
    )
    return f"w(t) in [{w.min():.3g}, {w.max():.3g}] on (0, 1]"


def _corrupt(subject: ObjectiveSubject) -> str:
    batch, layout = subject.batch, subject.env.layout
    noisable, _ = subject.roles()
    x0 = batch.x0
    expected = (BATCH, layout.seq_len)
    for field in ("xt", "times", "noisable"):
        got = getattr(batch, field)
        require(
            tuple(got.shape) == expected,
            f"{subject.label}: corrupt must return {field} [B, L] = {list(expected)} (TrainingBatch), got {shape(got)}",
        )
    levels = (BATCH, layout.seq_len) if subject.component.token_levels else (BATCH,)
    require(
        tuple(batch.noise_level.shape) == levels,
        f"{subject.label}: corrupt must return noise_level {list(levels)} (TrainingBatch), "
        f"got {shape(batch.noise_level)}",
    )
    changed = batch.xt != x0
    wrong = changed & ((batch.xt != layout.mask_id) | ~noisable)
    require(
        not bool(wrong.any()),
        f"{subject.label}: corrupt must only mask noisable positions (conditioning and fixed ones stay clean "
        f"without condition dropout; MaskedDiffusionObjective.corrupt), got {int(wrong.sum())} other changes",
    )
    masked = int((batch.xt == layout.mask_id).sum())
    return f"masked {masked} of {int(noisable.sum())} noisable positions, nothing else"


def _loss(subject: ObjectiveSubject) -> str:
    backbone = subject.env.backbone().train()
    output = subject.component.loss(backbone, subject.batch)
    loss = output.loss
    require(
        loss.ndim == 0 and bool(torch.isfinite(loss)) and loss.item() > 0,
        f"{subject.label}: loss must be a finite positive scalar on a masked batch (MaskedDiffusionObjective.loss), "
        f"got {loss.detach()}",
    )
    loss.backward()
    grads = [p.grad for p in backbone.parameters() if p.grad is not None]
    require(
        bool(grads) and all(torch.isfinite(g).all() for g in grads),
        f"{subject.label}: the loss must give the backbone finite gradients (MaskedDiffusionObjective.loss), "
        f"got {len(grads)} gradients" + ("" if all(torch.isfinite(g).all() for g in grads) else " with NaN or inf"),
    )
    return f"loss {loss.item():.4f} over {output.masked_tokens} masked tokens, finite gradients"


def _scored(subject: ObjectiveSubject) -> str:
    batch, layout = subject.batch, subject.env.layout
    backbone = subject.env.backbone()
    scored = (batch.xt == layout.mask_id) & batch.noisable
    scored_positions = torch.zeros_like(scored)
    rows, positions = scored.nonzero(as_tuple=True)
    scored_positions[rows, layout.logit_positions(positions)] = True  # the hidden states that predict them
    with torch.no_grad():
        reference = subject.component.loss(backbone, batch).loss
        perturbed = subject.component.loss(_Perturbed(backbone, ~scored_positions), batch).loss
    require(
        torch.allclose(reference, perturbed, rtol=1e-5, atol=1e-6),
        f"{subject.label}: the loss must score masked noisable positions only (unmasked ones copy their input, "
        f"SUBS; MaskedDiffusionObjective.loss), but changing the hidden states elsewhere moved it from "
        f"{reference.item():.6g} to {perturbed.item():.6g}",
    )
    return f"reads only the {int(scored.sum())} masked noisable positions"


def _hides_targets(subject: ObjectiveSubject) -> str:
    batch = subject.batch
    with torch.no_grad():
        output = subject.component.loss(_Copier(subject.env.layout.vocab_size), batch)
    require(
        output.masked_tokens > 0 and output.cross_entropy > 1.0,
        f"{subject.label}: the model must never see the token it is scored on (masked for diffusion, shifted "
        f"for next-token prediction), but a backbone that copies its input scored cross-entropy "
        f"{output.cross_entropy:.3g} over {output.masked_tokens} tokens",
    )
    return f"a backbone that copies its input scores cross-entropy {output.cross_entropy:.2f} (it cannot see targets)"


SUBJECT = ObjectiveSubject
CHECKS: tuple[Check[ObjectiveSubject], ...] = (
    Check("builds", _builds),
    Check("weight(t) finite and >= 0 on (0, 1]", _weight, _is_diffusion),
    Check("corrupt masks noisable positions only", _corrupt),
    Check("loss is finite and positive, with gradients", _loss),
    Check("only masked noisable positions are scored", _scored, _is_diffusion),
    Check("the scored tokens are hidden from the model", _hides_targets),
)
