"""A mixture of tasks trained into one model, as MeDiM trains text->image, image->text and joint together.

Each sample of a batch draws its task from `weights`, so one batch (one
forward pass) mixes tasks without padding or separate loaders.
"""

from __future__ import annotations

import torch
from pydantic import Field, field_validator
from torch import Tensor

from medim.backbones.base import Backbone
from medim.objectives.base import Objective
from medim.registry import TASKS
from medim.tasks.base import MaskedDiffusionTask, TaskParams
from medim.tokenizers.layouts import SequenceLayout


@TASKS.register("multitask")
class MultiTask(MaskedDiffusionTask):
    """Several tasks in one model: every sample draws its task with probability proportional to its weight."""

    class Params(TaskParams):
        weights: dict[str, float] = Field(
            default_factory=lambda: {"text_to_image": 1.0, "image_to_text": 1.0, "joint": 1.0},
            description="task name -> relative frequency in each batch",
        )

        @field_validator("weights")
        @classmethod
        def _positive(cls, weights: dict[str, float]) -> dict[str, float]:
            if not weights:
                raise ValueError("name at least one task")
            bad = {k: v for k, v in weights.items() if v <= 0}
            if bad:
                raise ValueError(f"weights must be positive, got {bad}")
            if "multitask" in weights:
                raise ValueError("a multitask cannot contain itself")
            return weights

    def __init__(self, params: Params, *, layout: SequenceLayout, objective: Objective) -> None:
        super().__init__(params, layout=layout, objective=objective)
        self.members: dict[str, MaskedDiffusionTask] = {
            name: TASKS.build(
                {"name": name, "cond_dropout": params.cond_dropout},
                where=f"task.weights.{name}",
                layout=layout,
                objective=objective,
            )
            for name in params.weights
        }
        self.probabilities = torch.tensor(list(params.weights.values()), dtype=torch.float)

    def describe_roles(self) -> str:
        return "; ".join(task.describe_roles() for task in self.members.values())

    def can_generate(self, generated: frozenset[str]) -> bool:
        return any(task.can_generate(generated) for task in self.members.values())

    def task_for(self, generated: frozenset[str]) -> MaskedDiffusionTask:
        """The member trained for exactly `generated`, else the first that can infill it."""
        exact = [task for task in self.members.values() if frozenset(task.noised_modalities) == generated]
        able = [task for task in self.members.values() if task.can_generate(generated)]
        if exact or able:
            return (exact or able)[0].task_for(generated)
        return super().task_for(generated)

    def roles(self, batch: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        choice = torch.multinomial(self.probabilities, batch, replacement=True, generator=generator)
        member_roles = [task.roles(1) for task in self.members.values()]
        noisable = torch.cat([r[0] for r in member_roles])[choice]
        conditioning = torch.cat([r[1] for r in member_roles])[choice]
        return noisable, conditioning

    def validation_losses(self, backbone: Backbone, x0: Tensor, generator: torch.Generator) -> dict[str, float]:
        losses = {name: task.validation_losses(backbone, x0, generator)["loss"] for name, task in self.members.items()}
        weights = self.probabilities / self.probabilities.sum()
        losses["loss"] = float(sum(w * loss for w, loss in zip(weights.tolist(), losses.values())))
        return losses
