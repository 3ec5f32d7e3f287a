"""Text -> image: the report conditions, the image is noised and generated (or only a region of it)."""

from __future__ import annotations

from medim.registry import TASKS
from medim.tasks.base import MaskedDiffusionTask


@TASKS.register("text_to_image")
class TextToImageTask(MaskedDiffusionTask):
    """Draw an image from a report: image positions noised, report positions given (inpainting: a region only)."""

    noised_modalities = ("image",)
    conditioning_modalities = ("text",)
