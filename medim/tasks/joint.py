"""Joint generation: image and report are both noised and generated together from nothing."""

from __future__ import annotations

import numpy as np
import torch

from medim.backbones.base import Backbone
from medim.registry import TASKS
from medim.samplers.base import Sampler
from medim.tasks.base import MaskedDiffusionTask
from medim.tokenizers.layouts import IMAGE, TEXT


@TASKS.register("joint")
class JointTask(MaskedDiffusionTask):
    """Generate image-report pairs: every image and report position noised, nothing given."""

    noised_modalities = (IMAGE, TEXT)
    conditioning_modalities = ()

    def generate(
        self,
        backbone: Backbone,
        sampler: Sampler,
        num_samples: int,
        *,
        num_steps: int,
        generator: torch.Generator | None = None,
    ) -> tuple[np.ndarray, list[str]]:
        """(uint8 images [B, H, W, 3], reports) of `num_samples` new pairs."""
        device = next(backbone.parameters()).device
        given = self._template(num_samples, device)
        tokens = self._denoise(backbone, sampler, given, num_steps=num_steps, cfg_scale=0.0, generator=generator).cpu()
        return self.layout.image_tokenizer.decode(self.layout.image_codes(tokens)), self.layout.texts(tokens)
