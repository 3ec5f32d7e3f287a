"""Joint generation: image and report generated together, from nothing, a report's opening or part of an image."""

from __future__ import annotations

from medim.registry import TASKS
from medim.tasks.base import MaskedDiffusionTask


@TASKS.register("joint")
class JointTask(MaskedDiffusionTask):
    """Generate image-report pairs: every image and report position noised, nothing given.

    A pair may be prompted by a report opening (MeDiM's joint generation "in response to
    prompts"; guidance then re-masks the opening) or by an image outside its inpainting mask.
    """

    noised_modalities = ("image", "text")
    conditioning_modalities = ()
