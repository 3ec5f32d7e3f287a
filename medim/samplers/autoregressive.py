"""Left-to-right sampling, the decoder of models trained with the `autoregressive` objective.

One token per step in the objective's order (`medim.objectives.autoregressive`), each
drawn from the tempered / truncated distribution over the ids its position may take;
classifier-free guidance combines a conditional and an unconditional branch (the
conditioning masked) in one batched forward. The loop lives with the other decoding
loops (`medim.tasks.left_to_right`); this class holds the choices.
"""

from __future__ import annotations

from pydantic import Field

from medim.registry import SAMPLERS
from medim.samplers.base import LogitParams, Sampler, SamplerOutput, StepContext


@SAMPLERS.register("autoregressive")
class AutoregressiveSampler(Sampler):
    """Next-token sampling with a KV cache (or, as a reference, the whole prefix recomputed every step)."""

    class Params(LogitParams):
        kv_cache: bool = Field(
            True, description="keep each layer's keys and values (backbones that support it); false recomputes"
        )

    def step(self, context: StepContext) -> SamplerOutput:
        raise TypeError(
            "the autoregressive sampler decodes one token at a time in the objective's order and has no "
            "masked-diffusion step; it decodes models trained with objective: autoregressive"
        )
