"""The directions an evaluation covers: what is generated given what, whichever task of the model answers it.

A request can give an image (and ask for its report), give a report (and ask for an
image) or give nothing (and ask for a pair); those three directions are what
`medim eval` generates, scores and bounds, each answered by the model's own task
(`MaskedDiffusionTask.task_for`: a member trained for it, or a joint model infilling
around the given modality, as MeDiM does). A direction the model cannot answer is
skipped with the reason. Results are keyed by the direction's name, so models trained
with different task mixtures line up in one table.

Sample i of a direction draws from a seed fixed by the run's seed, the direction and i:
the same whatever the batch size or the task that answers it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from medim.config.modalities import MODALITY_CODES
from medim.data.paired import PairedSplit
from medim.tasks.request import GenerationRequest
from medim.tokenizers.layouts import SequenceLayout


@dataclass(frozen=True)
class Direction:
    """Generate the modalities `generated` given `given` (the others); `stream` separates their seeds."""

    given: tuple[str, ...]
    generated: tuple[str, ...]
    stream: int

    @property
    def name(self) -> str:
        """`text_given_image`, `image_given_text` or `image_and_text`."""
        generated = "_and_".join(self.generated)
        return f"{generated}_given_{'_and_'.join(self.given)}" if self.given else generated

    def describe(self) -> str:
        """`text given image`: the direction in words."""
        return self.name.replace("_", " ")

    def request(self, held_out: PairedSplit, start: int, stop: int) -> GenerationRequest:
        """The request of held-out pairs start..stop-1 (or stop - start samples from nothing)."""
        return GenerationRequest.of(
            count=stop - start,
            images=held_out.images[start:stop] if "image" in self.given else None,
            reports=held_out.reports[start:stop] if "text" in self.given else None,
            unconditional=not self.given,
        )

    def noisable(self, layout: SequenceLayout, batch: int) -> torch.Tensor:
        """[B, L] the positions this direction generates (what its bound scores)."""
        codes = torch.tensor([MODALITY_CODES[name] for name in self.generated])
        return torch.isin(layout.position_modality, codes).expand(batch, -1)

    def sample_seed(self, seed: int, index: int) -> int:
        """The seed of sample `index`: fixed per sample, distinct across directions."""
        return (seed * 7919 + self.stream) * 1_000_003 + index


TEXT_GIVEN_IMAGE = Direction(("image",), ("text",), stream=0)
IMAGE_GIVEN_TEXT = Direction(("text",), ("image",), stream=1)
IMAGE_AND_TEXT = Direction((), ("image", "text"), stream=2)
#: Every direction a request can take, in evaluation order (the random baselines share one generator in it).
DIRECTIONS = (TEXT_GIVEN_IMAGE, IMAGE_GIVEN_TEXT, IMAGE_AND_TEXT)
