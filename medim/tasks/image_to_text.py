"""Image -> text: the image conditions, the report is noised and generated (or finished from its opening)."""

from __future__ import annotations

from medim.registry import TASKS
from medim.tasks.base import MaskedDiffusionTask


@TASKS.register("image_to_text")
class ImageToTextTask(MaskedDiffusionTask):
    """Write a report from an image: report positions noised, image positions given (or finish an opening)."""

    noised_modalities = ("text",)
    conditioning_modalities = ("image",)
