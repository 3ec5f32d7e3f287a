"""Joint generation: image and report generated together, from nothing or from a report's opening."""

from __future__ import annotations

from typing import Any

import numpy as np

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
        report_openings: list[str] | None = None,
        images: np.ndarray | None = None,
        regenerate: np.ndarray | None = None,
        **decoding: Any,
    ) -> tuple[np.ndarray, list[str]]:
        """(uint8 images [B, H, W, 3], reports) of `num_samples` new pairs.

        A pair may be prompted by a report opening (MeDiM's joint generation "in response
        to prompts"; guidance then re-masks the opening), or by an image outside the
        `regenerate` masks. `decoding` is `infill`'s keywords.
        """
        prompt = self.prompt(num_samples, next(backbone.parameters()).device)
        if report_openings is not None:
            prompt.with_report_openings(report_openings)
        if images is not None:
            prompt.with_images(images, regenerate)
        tokens = self.infill(backbone, sampler, prompt, **decoding).cpu()
        return self.layout.image_tokenizer.decode(self.layout.image_codes(tokens)), self.layout.texts(tokens)
