"""Text -> image: the report conditions, the image is noised and generated (or only a region of it)."""

from __future__ import annotations

from typing import Any

import numpy as np

from medim.backbones.base import Backbone
from medim.errors import DataError
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
        images: np.ndarray | None = None,
        regenerate: np.ndarray | None = None,
        **decoding: Any,
    ) -> np.ndarray:
        """uint8 images [B, H, W, 3], one per report.

        Inpainting: with `images` [B, S, S, 3] and pixel masks `regenerate` [B, S, S], only
        the codes under each mask are drawn anew. `decoding` is `infill`'s keywords
        (num_steps, modality_steps, cfg_scale, seed, stats).
        """
        prompt = self.prompt(len(reports), next(backbone.parameters()).device).with_reports(reports)
        if images is not None:
            if regenerate is None:
                raise DataError("text_to_image: images given without `regenerate` masks would leave nothing to generate; "
                                "pass a pixel mask per image (True = redraw)")
            prompt.with_images(images, regenerate)
        tokens = self.infill(backbone, sampler, prompt, **decoding)
        return self.layout.image_tokenizer.decode(self.layout.image_codes(tokens).cpu())
