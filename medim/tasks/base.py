"""Masked-diffusion tasks: which positions are noised and which condition, for training and for generation.

A task never looks inside the backbone or the layout's id arithmetic; it only
decides roles: the *noisable* positions are corrupted and scored, the
*conditioning* positions stay clean (or are all masked, with probability
`cond_dropout`, so the same model also learns the unconditional distribution
that classifier-free guidance needs). How a batch is corrupted and scored is the
experiment's objective (`medim.objectives`).

Generation fills the noised positions by the reverse process
(`medim.tasks.generation.denoise`). Any subset of them may be given instead
(infilling): a report's opening to be finished, the part of an image outside an
inpainting mask. Guidance re-masks the task's conditioning modality; a task
without one (joint generation) guides on the given part, e.g. a report opening.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from medim.backbones.base import Backbone
from medim.errors import DataError
from medim.noise.base import MaskingSchedule
from medim.objectives.base import LossOutput, MaskedDiffusionObjective, TrainingBatch
from medim.registry import ComponentParams
from medim.samplers.base import Sampler
from medim.tasks.generation import DecodeStats, denoise
from medim.tokenizers.layouts import FIXED, SequenceLayout

__all__ = ["GenerationPrompt", "LossOutput", "MaskedDiffusionTask", "TaskParams", "TrainingBatch"]


class TaskParams(ComponentParams):
    """Settings shared by every task."""

    cond_dropout: float = Field(0.1, ge=0, le=1, description="probability of masking all conditioning (for CFG)")


class GenerationPrompt:
    """What is given to a generation: sequences [B, L] and which of their positions are known [B, L]."""

    def __init__(self, layout: SequenceLayout, batch: int, device: torch.device) -> None:
        self.layout = layout
        codes = torch.zeros(batch, len(layout.image_positions), dtype=torch.long)
        text = torch.zeros(batch, len(layout.text_positions), dtype=torch.long)
        self.tokens = layout.pack(codes, text).to(device)
        self.known = (layout.position_modality == FIXED).expand(batch, -1).clone().to(device)
        self.tokens[~self.known] = layout.mask_id

    def with_reports(self, reports: list[str]) -> "GenerationPrompt":
        """Give whole reports."""
        self._check_count("reports", len(reports))
        text = self.layout.text_positions
        self.tokens[:, text] = self.layout.pack_text(list(reports)).ids.to(self.tokens.device)
        self.known[:, text] = True
        return self

    def with_report_openings(self, openings: list[str]) -> "GenerationPrompt":
        """Give the first words of each report; the rest of it is generated."""
        self._check_count("report openings", len(openings))
        text = self.layout.text_positions
        ids, known = (x.to(self.tokens.device) for x in self.layout.pack_text_prefix(list(openings)))
        self.tokens[:, text] = torch.where(known, ids, self.tokens[:, text])
        self.known[:, text] |= known
        return self

    def with_images(self, images: np.ndarray, regenerate: np.ndarray | None = None) -> "GenerationPrompt":
        """Give images [B, S, S, 3]; with pixel masks `regenerate` [B, S, S], the codes under the mask are generated."""
        self._check_count("images", len(images))
        if regenerate is not None:
            self._check_count("regenerate masks", len(regenerate))
        layout = self.layout
        device = self.tokens.device
        self.tokens[:, layout.image_positions] = (layout.image_tokenizer.encode(images) + layout.image_offset).to(device)
        keep = torch.ones(len(images), len(layout.image_positions), dtype=torch.bool)
        if regenerate is not None:
            keep = ~layout.image_tokenizer.token_mask(regenerate)
        self.known[:, layout.image_positions] = keep.to(device)
        return self


    def _check_count(self, what: str, count: int) -> None:
        if count != self.tokens.shape[0]:
            raise DataError(f"{count} {what} given for {self.tokens.shape[0]} samples; give one per sample")


class MaskedDiffusionTask:
    """Base class: subclasses say which modalities are noised and which condition."""

    Params = TaskParams
    #: Modalities generated (noised) and given (conditioning) by this task.
    noised_modalities: tuple[int, ...] = ()
    conditioning_modalities: tuple[int, ...] = ()

    def __init__(self, params: TaskParams, *, layout: SequenceLayout, objective: MaskedDiffusionObjective) -> None:
        self.params = params
        self.layout = layout
        self.objective = objective

    @property
    def noise(self) -> MaskingSchedule:
        """The forward process this task is trained and sampled with."""
        return self.objective.noise

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
        """Corrupt clean sequences x0 [B, L] for this task, as the objective says."""
        noisable, conditioning = self.roles(x0.shape[0], generator)
        return self.objective.corrupt(x0, noisable, conditioning, self.params.cond_dropout, generator)

    def loss(self, backbone: Backbone, batch: TrainingBatch) -> LossOutput:
        """The objective's loss of `batch`."""
        return self.objective.loss(backbone, batch)

    def validation_losses(self, backbone: Backbone, x0: Tensor, generator: torch.Generator) -> dict[str, float]:
        """Validation loss of this task on x0 (a mixture reports each member separately)."""
        return {"loss": self.loss(backbone, self.training_batch(x0, generator)).loss.item()}

    # -- generation ----------------------------------------------------------------------------

    def prompt(self, batch: int, device: torch.device) -> GenerationPrompt:
        """An empty prompt: fixed tokens in place, every image and report position unknown."""
        return GenerationPrompt(self.layout, batch, device)

    def infill(
        self,
        backbone: Backbone,
        sampler: Sampler,
        prompt: GenerationPrompt,
        *,
        num_steps: int,
        modality_steps: dict[str, int] | None = None,
        cfg_scale: float = 0.0,
        seed: int | list[int] | None = None,
        stats: DecodeStats | None = None,
    ) -> Tensor:
        """Sequences [B, L]: the prompt with this task's unknown noised positions generated.

        Each sample draws from its own seed (`seed`: one per sample, or an int for seed + i).
        """
        noised = self._positions_of(self.noised_modalities).to(prompt.tokens.device)
        targets = noised.nonzero()[:, 0]
        if self.conditioning_modalities:
            conditioning = self._positions_of(self.conditioning_modalities).to(noised.device).expand_as(prompt.known)
        else:
            conditioning = prompt.known & noised
        return denoise(
            backbone, self.layout, sampler, prompt.tokens, targets=targets, num_steps=num_steps,
            generate=~prompt.known[:, targets], conditioning=conditioning, modality_steps=modality_steps,
            cfg_scale=cfg_scale if bool(conditioning.any()) else 0.0, seeds=seed,
            token_levels=self.objective.token_levels, stats=stats,
        )
