"""Task checks (`medim.tasks.base.MaskedDiffusionTask`): training batches, loss, a training step, generation.

Built over the environment's layout and objective (log-linear noise, ELBO) and trained with its
tiny backbone on eight corpus pairs. A training batch may only mask what the task noises, plus its
conditioning as a whole when it is dropped for guidance; fixed positions never change. Generation
must answer every direction the task says it can (`can_generate`: text given image, image given
text, image and text; `medim.evaluation.directions`) with decoded images and reports.
"""

from __future__ import annotations

import numpy as np
import torch

from medim.config.modalities import FIXED, MODALITY_CODES
from medim.conformance.checks import Check, Subject, require, shape
from medim.evaluation.directions import DIRECTIONS
from medim.registry import ComponentParams
from medim.tasks.base import MaskedDiffusionTask
from medim.tasks.request import Generated

BATCH = 8
STEPS = 3
#: Samples generated per direction.
SAMPLES = 2


class TaskSubject(Subject):
    """A task over the environment's layout and objective."""

    noun = "task"

    def construct(self, params: ComponentParams) -> MaskedDiffusionTask:
        return self.entry.cls(params, layout=self.env.layout, objective=self.env.objective)


def _builds(subject: TaskSubject) -> str:
    task = subject.component
    require(
        isinstance(task, MaskedDiffusionTask),
        f"{subject.label}: must be a medim.tasks.base.MaskedDiffusionTask, got {type(task).__name__}",
    )
    able = [d.describe() for d in DIRECTIONS if task.can_generate(frozenset(d.generated))]
    return f"generates {', '.join(able) or 'nothing'}"


def _training_batch(subject: TaskSubject) -> str:
    task, layout = subject.component, subject.env.layout
    x0 = subject.env.sequences(BATCH)
    batch = task.training_batch(x0, torch.Generator().manual_seed(0))
    for name in ("xt", "noisable"):
        value = getattr(batch, name)
        require(
            tuple(value.shape) == tuple(x0.shape),
            f"{subject.label}: training_batch must give {name} [B, L] = {shape(x0)} (TrainingBatch), "
            f"got {shape(value)}",
        )
    modality = layout.position_modality
    fixed = modality == FIXED
    changed = batch.xt != x0
    require(
        not bool((changed & (batch.xt != layout.mask_id)).any()),
        f"{subject.label}: training_batch may only replace tokens by the mask id (MaskedDiffusionTask.training_batch), "
        f"got {int((changed & (batch.xt != layout.mask_id)).sum())} changed to other ids",
    )
    require(
        not bool(((changed | batch.noisable) & fixed).any()),
        f"{subject.label}: fixed positions (FIXED in position_modality) are never noised or masked "
        f"(MaskedDiffusionTask.roles), got {int(((changed | batch.noisable) & fixed).sum())} touched",
    )
    outside = changed & ~batch.noisable
    for code in MODALITY_CODES.values():
        positions = modality == code
        partly = outside[:, positions].any(1) & ~outside[:, positions].all(1)
        require(
            not bool(partly.any()),
            f"{subject.label}: training_batch must keep what it does not noise (conditioning is masked only as a "
            f"whole, when dropped for guidance; MaskedDiffusionTask.training_batch), got {int(partly.sum())} "
            f"samples with part of a modality masked outside the noisable positions",
        )
    dropped = int(outside.any(1).sum())
    return (
        f"{int(changed.sum())} of {int(batch.noisable.sum())} noisable positions masked, {dropped} dropped conditions"
    )


def _loss_and_step(subject: TaskSubject) -> str:
    task = subject.component
    backbone = subject.env.backbone().train()
    batch = task.training_batch(subject.env.sequences(BATCH), torch.Generator().manual_seed(1))
    optimizer = torch.optim.AdamW(backbone.parameters(), lr=1e-3)
    loss = task.loss(backbone, batch).loss
    require(
        loss.ndim == 0 and bool(torch.isfinite(loss)),
        f"{subject.label}: loss must be a finite scalar (MaskedDiffusionTask.loss), got {loss.detach()}",
    )
    before = [p.detach().clone() for p in backbone.parameters()]
    loss.backward()
    optimizer.step()
    moved = sum(not torch.equal(b, p) for b, p in zip(before, backbone.parameters()))
    finite = all(torch.isfinite(p).all() for p in backbone.parameters())
    require(
        moved > 0 and finite,
        f"{subject.label}: one optimizer step on the loss must change the backbone and keep it finite "
        f"(MaskedDiffusionTask.loss), got {moved} parameters changed" + ("" if finite else ", NaN or inf after"),
    )
    return f"loss {loss.item():.4f}; one AdamW step changed {moved} parameters"


def _generates(subject: TaskSubject) -> str:
    task, env = subject.component, subject.env
    backbone, sampler, held_out = env.backbone(), env.sampler(), env.held_out(SAMPLES)
    size = env.image_tokenizer.image_size
    answered = []
    for direction in DIRECTIONS:
        if not task.can_generate(frozenset(direction.generated)):
            continue
        request = direction.request(held_out, 0, SAMPLES)
        out = task.generate(backbone, sampler, request, num_steps=STEPS, cfg_scale=1.5, seed=0)
        what = f"{subject.label}: generate for {direction.describe()} (can_generate says it can)"
        require(isinstance(out, Generated), f"{what} must return Generated (MaskedDiffusionTask.generate), got {out!r}")
        require(
            tuple(out.tokens.shape) == (SAMPLES, env.layout.seq_len),
            f"{what} must return sequences [B, L] = [{SAMPLES}, {env.layout.seq_len}] (Generated.tokens), "
            f"got {shape(out.tokens)}",
        )
        if "image" in direction.generated:
            images = out.images
            require(
                isinstance(images, np.ndarray)
                and images.dtype == np.uint8
                and images.shape == (SAMPLES, size, size, 3),
                f"{what} must return uint8 images [B, S, S, 3] = [{SAMPLES}, {size}, {size}, 3] (Generated.images), "
                f"got {getattr(images, 'dtype', images)} {shape(images) if hasattr(images, 'shape') else ''}",
            )
        if "text" in direction.generated:
            reports = out.reports
            require(
                isinstance(reports, list) and len(reports) == SAMPLES and all(isinstance(r, str) for r in reports),
                f"{what} must return {SAMPLES} report strings (Generated.reports), got {reports!r}",
            )
        answered.append(direction.describe())
    require(
        bool(answered),
        f"{subject.label}: must be able to generate at least one of "
        f"{', '.join(d.describe() for d in DIRECTIONS)} (MaskedDiffusionTask.can_generate), got none",
    )
    return f"answers {', '.join(answered)}"


SUBJECT = TaskSubject
CHECKS: tuple[Check[TaskSubject], ...] = (
    Check("builds", _builds),
    Check("training batch keeps what it does not noise", _training_batch),
    Check("loss and one optimizer step", _loss_and_step),
    Check("generates every direction it can", _generates),
)
