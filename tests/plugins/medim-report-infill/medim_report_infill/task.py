"""`report_infill`: learn to finish reports. Each sample keeps a random opening of its report clean and noises the rest.

What medim asks of a task (`medim.tasks.base.MaskedDiffusionTask`): the modalities it
noises and the ones it is conditioned on, by name, and `roles()` giving the noisable
and conditioning positions of a batch. Everything else (training, `medim generate`,
`medim eval`, the held-out bound) follows from that. Here the report is the noised
modality and the image conditions it, so the run answers "text given image" requests
(reports for images, with or without an opening); only the positions it noises change:
a uniformly drawn share of each report, its first tokens, stays clean as a given opening.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from medim.tasks.base import MaskedDiffusionTask, TaskParams


class ReportInfillTask(MaskedDiffusionTask):
    """Finish reports: the image conditions, a random opening of the report is kept, the rest is noised."""

    noised_modalities = ("text",)
    conditioning_modalities = ("image",)

    class Params(TaskParams):
        max_opening: float = Field(0.5, ge=0, le=1, description="largest share of the report kept as its opening")

    def roles(self, batch: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        noisable, conditioning = super().roles(batch, generator)
        text = self.layout.text_positions
        kept = (torch.rand(batch, generator=generator) * self.params.max_opening * len(text)).long()
        opening = torch.zeros_like(noisable)
        opening[:, text] = torch.arange(len(text))[None] < kept[:, None]
        return noisable & ~opening, conditioning
