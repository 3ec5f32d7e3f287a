"""Report alone: a language model of reports, the image never seen (its positions always masked).

For measuring report language by itself (held-out likelihood in bits per token, writing
a report's IMPRESSION from its FINDINGS) with the same layout, backbone and objectives as
the multimodal models, so masked diffusion and next-token prediction compare on text alone.
In `medim eval` it answers "text given image" without looking at the image: an unconditional
report, scored as such.
"""

from __future__ import annotations

from medim.registry import TASKS
from medim.tasks.base import MaskedDiffusionTask


@TASKS.register("report_only")
class ReportOnlyTask(MaskedDiffusionTask):
    """Generate or finish reports with no image: report positions noised, image positions always masked."""

    noised_modalities = ("text",)
    conditioning_modalities = ()
    hidden_modalities = ("image",)
