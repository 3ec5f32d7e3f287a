"""Image -> text: the image conditions, the report is noised and generated."""

from __future__ import annotations

import numpy as np
import torch

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
        num_steps: int,
        cfg_scale: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> list[str]:
        """One report per uint8 image [B, H, W, 3]."""
        device = next(backbone.parameters()).device
        given = self._template(len(images), device)
        codes = self.layout.image_tokenizer.encode(images)
        given[:, self.layout.image_positions] = (codes + self.layout.image_offset).to(device)
        tokens = self._denoise(backbone, sampler, given, num_steps=num_steps, cfg_scale=cfg_scale, generator=generator)
        return self.layout.texts(tokens.cpu())
