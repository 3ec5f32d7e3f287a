"""The task contract: which modalities a task noises and which condition, for training, generation and scoring.

A task declares its roles by modality name: `noised_modalities` are corrupted in
training and generated at sampling time, `conditioning_modalities` stay clean (or are
all masked, with probability `cond_dropout`, so the same model also learns the
unconditional distribution that classifier-free guidance needs). How a batch is
corrupted and scored is the experiment's objective (`medim.objectives`). Everything
else follows from the declaration, the same way for built-in and plugin tasks:

- training: `roles` -> `training_batch` -> `loss`;
- generation: `generate(backbone, sampler, request)` answers a `GenerationRequest`
  when the task noises every modality the request asks to be generated (the others
  given whole are infilled around); a mixture answers with its member whose roles
  match the request exactly, else with one that infills (`task_for`), so neither
  `medim generate` nor `medim eval` ever names a task.

Generation fills the noised positions by the reverse process
(`medim.tasks.generation.denoise`). Any subset of them may be given instead
(infilling): a report's opening to be finished, the part of an image outside an
inpainting mask. Guidance re-masks the task's conditioning modalities; a task
without one (joint generation) guides on the given part, e.g. a report opening.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor

from medim.backbones.base import Backbone
from medim.config.modalities import describe_generation, modality_codes
from medim.errors import DataError
from medim.noise.base import MaskingSchedule
from medim.objectives.base import LossOutput, Objective, TrainingBatch
from medim.registry import ComponentParams
from medim.samplers.base import Sampler
from medim.tasks.generation import DecodeStats, StepObserver, denoise
from medim.tasks.left_to_right import decode_left_to_right
from medim.tasks.request import Generated, GenerationPrompt, GenerationRequest
from medim.tokenizers.layouts import SequenceLayout

__all__ = [
    "Generated",
    "GenerationPrompt",
    "GenerationRequest",
    "LossOutput",
    "MaskedDiffusionTask",
    "TaskParams",
    "TrainingBatch",
]


class TaskParams(ComponentParams):
    """Settings shared by every task."""

    cond_dropout: float = Field(0.1, ge=0, le=1, description="probability of masking all conditioning (for CFG)")


class MaskedDiffusionTask:
    """Base class: subclasses declare which modalities (`image`, `text`) are noised and which condition."""

    Params = TaskParams
    #: Modalities generated (noised) and given (conditioning) by this task, by name.
    noised_modalities: ClassVar[tuple[str, ...]] = ()
    conditioning_modalities: ClassVar[tuple[str, ...]] = ()
    #: Modalities the model never sees: their positions always hold the mask id (a report-only language model).
    hidden_modalities: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: TaskParams, *, layout: SequenceLayout, objective: Objective) -> None:
        self.params = params
        self.layout = layout
        self.objective = objective

    @property
    def noise(self) -> MaskingSchedule:
        """The forward process this task is trained and sampled with."""
        return self.objective.noise

    def describe_roles(self) -> str:
        """`text given image`: what the task generates, given the other modalities, in words."""
        return describe_generation(frozenset(self.noised_modalities))

    # -- roles ---------------------------------------------------------------------------------

    def _positions_of(self, modalities: tuple[str, ...]) -> Tensor:
        codes = torch.tensor(modality_codes(modalities), dtype=torch.long)
        return torch.isin(self.layout.position_modality, codes)

    def roles(self, batch: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(noisable, conditioning), each [B, L] bool."""
        noisable = self._positions_of(self.noised_modalities)
        conditioning = self._positions_of(self.conditioning_modalities)
        return noisable.expand(batch, -1), conditioning.expand(batch, -1)

    # -- training ------------------------------------------------------------------------------

    def training_batch(self, x0: Tensor, generator: torch.Generator | None = None) -> TrainingBatch:
        """Corrupt clean sequences x0 [B, L] for this task, as the objective says."""
        noisable, conditioning = self.roles(x0.shape[0], generator)
        batch = self.objective.corrupt(x0, noisable, conditioning, self.params.cond_dropout, generator)
        return replace(batch, xt=self.hide(batch.xt))

    def hide(self, tokens: Tensor) -> Tensor:
        """`tokens` [B, L] with the positions of `hidden_modalities` masked (unchanged when there are none)."""
        if not self.hidden_modalities:
            return tokens
        return tokens.masked_fill(self._positions_of(self.hidden_modalities).to(tokens.device), self.layout.mask_id)

    def loss(self, backbone: Backbone, batch: TrainingBatch) -> LossOutput:
        """The objective's loss of `batch`."""
        return self.objective.loss(backbone, batch)

    def validation_losses(self, backbone: Backbone, x0: Tensor, generator: torch.Generator) -> dict[str, float]:
        """Validation loss of this task on x0 (a mixture reports each member separately)."""
        return {"loss": self.loss(backbone, self.training_batch(x0, generator)).loss.item()}

    # -- generation ----------------------------------------------------------------------------

    def can_generate(self, generated: frozenset[str]) -> bool:
        """Whether this task generates the modalities `generated` given the others: it noises each of them
        (a noised modality given whole is infilled around, as MeDiM's joint model draws an image for a report)."""
        return generated <= frozenset(self.noised_modalities)

    def task_for(self, generated: frozenset[str]) -> MaskedDiffusionTask:
        """The task that generates `generated` given the other modalities: this one, or a clear error."""
        if self.can_generate(generated):
            return self
        raise DataError(
            f"this model was trained to generate {self.describe_roles()}; "
            f"the request asks for {describe_generation(generated)}"
        )

    def prompt(self, request: GenerationRequest, device: torch.device) -> GenerationPrompt:
        """The token-level prompt of a request (a task with its own inputs overrides this); hidden modalities
        are masked and count as given, so nothing of them is seen or generated."""
        prompt = GenerationPrompt.from_request(self.layout, request, device)
        if self.hidden_modalities:
            prompt.tokens = self.hide(prompt.tokens)
            prompt.known |= self._positions_of(self.hidden_modalities).to(device)
        return prompt

    def generate(
        self,
        backbone: Backbone,
        sampler: Sampler,
        request: GenerationRequest,
        *,
        num_steps: int,
        modality_steps: dict[str, int] | None = None,
        cfg_scale: float = 0.0,
        seed: int | list[int] | None = None,
        stats: DecodeStats | None = None,
        observe: StepObserver | None = None,
    ) -> Generated:
        """Answer `request`: its sequences, and the images and/or reports it asked to be generated.

        Each sample draws from its own seed (`seed`: one per sample, or an int for seed + i);
        `observe` sees the sequences after every decoding step.
        """
        task = self.task_for(request.generated())
        device = next(backbone.parameters()).device
        tokens = task.infill(
            backbone,
            sampler,
            task.prompt(request, device),
            num_steps=num_steps,
            modality_steps=modality_steps,
            cfg_scale=cfg_scale,
            seed=seed,
            stats=stats,
            observe=observe,
        )
        return self.decode_outputs(request, tokens)

    def decode_outputs(self, request: GenerationRequest, tokens: Tensor) -> Generated:
        """`request`'s answer from its generated sequences [B, L]: them (on the CPU), and the images and/or
        reports it asked for."""
        tokens = tokens.cpu()
        generated = request.generated()
        images = self.layout.image_tokenizer.decode(self.layout.image_codes(tokens)) if "image" in generated else None
        reports = self.layout.texts(tokens) if "text" in generated else None
        return Generated(tokens, images, reports)

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
        observe: StepObserver | None = None,
    ) -> Tensor:
        """Sequences [B, L]: the prompt with this task's unknown noised positions generated
        (`observe` sees them after every decoding step)."""
        noised = self._positions_of(self.noised_modalities).to(prompt.tokens.device)
        targets = noised.nonzero()[:, 0]
        if self.conditioning_modalities:
            conditioning = self._positions_of(self.conditioning_modalities).to(noised.device).expand_as(prompt.known)
        else:
            conditioning = prompt.known & noised
        if self.objective.decodes_left_to_right:
            return decode_left_to_right(
                backbone,
                self.layout,
                sampler,
                prompt.tokens,
                noised=noised.expand_as(prompt.known),
                generate=noised & ~prompt.known,
                conditioning=conditioning,
                cfg_scale=cfg_scale,
                seeds=seed,
                stats=stats,
                observe=observe,
            )
        return denoise(
            backbone,
            self.layout,
            sampler,
            prompt.tokens,
            targets=targets,
            num_steps=num_steps,
            generate=~prompt.known[:, targets],
            conditioning=conditioning,
            modality_steps=modality_steps,
            cfg_scale=cfg_scale if bool(conditioning.any()) else 0.0,
            seeds=seed,
            token_levels=self.objective.token_levels,
            schedule=self.noise,
            stats=stats,
            observe=observe,
        )
