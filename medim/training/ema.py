"""An exponential moving average of a model's weights (`train.ema_decay`), kept in float32.

After every applied optimizer step: ema <- decay * ema + (1 - decay) * weights (no warm-up: the average
starts at the initial weights). It is saved beside the weights as `ema.safetensors` (the whole state
dict: averaged parameters, the model's own buffers), restored on resume, and what `load_run` decodes
with when the run has EMA on.
"""

from __future__ import annotations

import torch
from torch import nn


class WeightEMA:
    """The float32 moving average of `model`'s parameters (an unwrapped module, the same on every process)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.params = [p for p in model.parameters()]
        self.shadow = [p.detach().float().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the current weights by (1 - decay)."""
        for average, param in zip(self.shadow, self.params):
            average.lerp_(param.detach().float(), 1.0 - self.decay)

    def state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """`model.state_dict()` with every parameter replaced by its average (float32)."""
        by_param = {id(p): s for p, s in zip(self.params, self.shadow)}
        return {key: by_param.get(id(value), value).detach() for key, value in model.state_dict(keep_vars=True).items()}

    def load_state_dict(self, model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
        """Restore the average from a saved state dict (as `state_dict` wrote it)."""
        by_param = {id(p): s for p, s in zip(self.params, self.shadow)}
        for key, value in model.state_dict(keep_vars=True).items():
            if id(value) in by_param:
                by_param[id(value)].copy_(weights[key].float())
