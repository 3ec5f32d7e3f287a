"""Text -> image: the report conditions, the image is noised and generated."""

from __future__ import annotations

import numpy as np
import torch

from medim.backbones.base import Backbone
from medim.registry import TASKS
from medim.samplers.base import Sampler
from medim.tasks.base import MaskedDiffusionTask
from medim.tokenizers.layouts import IMAGE, TEXT


@TASKS.register("text_to_image")
class TextToImageTask(MaskedDiffusionTask):
    """Draw an image from a report: image positions noised, report positions given."""

    noised_modalities = (IMAGE,)
    conditioning_modalities = (TEXT,)

    def generate(
        self,
        backbone: Backbone,
        sampler: Sampler,
        reports: list[str],
        *,
        num_steps: int,
        cfg_scale: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """uint8 images [B, H, W, 3], one per report."""
        device = next(backbone.parameters()).device
        given = self._template(len(reports), device)
        given[:, self.layout.text_positions] = self.layout.pack_text(reports).ids.to(device)
        tokens = self._denoise(backbone, sampler, given, num_steps=num_steps, cfg_scale=cfg_scale, generator=generator)
        return self.layout.image_tokenizer.decode(self.layout.image_codes(tokens).cpu())
