"""Image -> text: the image conditions, the report is noised and generated (or finished from its opening)."""

from __future__ import annotations

from typing import Any

import numpy as np

from medim.backbones.base import Backbone
from medim.registry import TASKS
from medim.samplers.base import Sampler
from medim.tasks.base import MaskedDiffusionTask
from medim.tokenizers.layouts import IMAGE, TEXT


@TASKS.register("image_to_text")
class ImageToTextTask(MaskedDiffusionTask):
    """Write a report from an image: report positions noised, image positions given."""

    noised_modalities = (TEXT,)
    conditioning_modalities = (IMAGE,)

    def generate(
        self,
        backbone: Backbone,
        sampler: Sampler,
        images: np.ndarray,
        *,
        report_openings: list[str] | None = None,
        **decoding: Any,
    ) -> list[str]:
        """One report per uint8 image [B, H, W, 3]; each continues its opening when `report_openings` are given.

        `decoding` is `infill`'s keywords (num_steps, modality_steps, cfg_scale, seed, stats).
        """
        prompt = self.prompt(len(images), next(backbone.parameters()).device).with_images(images)
        if report_openings is not None:
            prompt.with_report_openings(report_openings)
        return self.layout.texts(self.infill(backbone, sampler, prompt, **decoding).cpu())
