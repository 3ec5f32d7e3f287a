"""MeDiM's two additions to a decoder LLM: a continuous timestep embedding and AdaLN.

Timestep embedding (DiT / MeDiM): the noise level (MeDiM feeds sigma(t)) goes
through a 256-d sinusoid [cos, sin] with max period 10000, then
Linear(256, H) -> SiLU -> Linear(H, H), giving c [B, H].

AdaLN: each decoder layer owns Linear(H, 6H) applied to c (no activation,
as released), giving shift/scale/gate for the attention and MLP sub-blocks:
    h = x + g_attn * Attn(norm(x) * (1 + scale_attn) + shift_attn)
    y = h + g_mlp  * MLP(norm(h) * (1 + scale_mlp) + shift_mlp)
With gate "one_plus" the gates are 1 + gate, so a zero-initialised AdaLN leaves
the layer exactly as it was (a pretrained LLM is untouched at the start);
gate "raw" uses gate itself, as the paper does.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn


def sinusoidal_embedding(noise_level: Tensor, dim: int = 256, max_period: float = 10000.0) -> Tensor:
    """[..., dim] = [cos(level * f_k), sin(level * f_k)] with f_k = max_period^(-k / (dim/2)), for levels [...]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=noise_level.device) / half)
    args = noise_level.float()[..., None] * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimestepEmbedder(nn.Module):
    """Noise levels [...] -> conditioning vectors c [..., H]."""

    def __init__(self, hidden_size: int, frequency_dim: int = 256) -> None:
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))

    def forward(self, noise_level: Tensor) -> Tensor:
        embedding = sinusoidal_embedding(noise_level, self.frequency_dim)
        return self.mlp(embedding.to(self.mlp[0].weight.dtype))


class AdaLNModulation(nn.Module):
    """One layer's Linear(H, 6H) producing (shift, scale, gate) for attention and for the MLP."""

    def __init__(self, hidden_size: int, init: Literal["zero", "normal"], gate: Literal["one_plus", "raw"]) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, 6 * hidden_size)
        self.gate_mode = gate
        if init == "zero":
            nn.init.zeros_(self.linear.weight)
        else:
            nn.init.normal_(self.linear.weight, std=0.02)
        nn.init.zeros_(self.linear.bias)

    def forward(
        self, c: Tensor, index: Tensor | None = None
    ) -> tuple[tuple[Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]:
        """((shift, scale, gate) for attention, (shift, scale, gate) for the MLP).

        c [B, H] gives each [B, 1, H] (one modulation per sample). With `index` [B, L],
        c holds the distinct conditioning vectors [U, H] and position (b, l) uses row
        index[b, l]: each [B, L, H] (per-position noise levels), at the cost of U rows.
        """
        modulation = self.linear(c)
        modulation = modulation[:, None, :] if index is None else modulation[index]
        chunks = modulation.chunk(6, dim=-1)
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = chunks
        if self.gate_mode == "one_plus":
            gate_a, gate_m = 1 + gate_a, 1 + gate_m
        return (shift_a, scale_a, gate_a), (shift_m, scale_m, gate_m)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """x * (1 + scale) + shift (broadcast over positions)."""
    return x * (1 + scale) + shift
