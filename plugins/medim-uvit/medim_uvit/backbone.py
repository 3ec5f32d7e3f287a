"""`uvit`: a U-ViT-style denoiser for medim, in plain torch; a template for out-of-tree backbones.

What medim asks of a backbone (`medim.backbones.base.Backbone`):
  - it is built as `cls(params, vocab_size=V, max_seq_len=L, layout=layout)`;
  - `forward(tokens [B, L], noise_level [B], padding_mask [B, L] bool | None) -> hidden [B, L, D]`,
    where padding_mask is True at positions that may be attended to;
  - `output_weight() -> [V, D]`; the inherited `logits()` multiplies hidden states by it;
  - a nested `Params(ComponentParams)`: the component's whole YAML surface, checked at load time.
No `@BACKBONES.register` here: the entry point in pyproject.toml names the class, and medim
registers it under the entry point's name when an experiment first asks for `uvit`.

Architecture (U-ViT, Bao et al. 2023, "All are Worth Words"; AdaLN-Zero from DiT, Peebles & Xie 2023):
    x = embed(tokens) + pos                                    # pos: 2-D on the image grid, 1-D elsewhere
    skips = [x := in_block_i(x) for i < num_blocks / 2]        # first half of the hourglass
    x = mid_block(x)                                           # optional, no skip
    x = out_block_j(Linear(2D, D)(cat[x, skips.pop()]))        # second half, long skips in reverse order
    hidden = LayerNorm(x) * (1 + scale) + shift                # final norm, modulated by the noise level
The noise level enters through AdaLN-Zero, not as a token: c = SiLU(MLP(sinusoid(noise_level)))
[B, D]; each block's Linear(D, 6D) of c gives shift/scale/gate for attention and for the MLP,
    x = x + gate * Attn(LN(x) * (1 + scale) + shift),   then the same for the MLP;
zero-initialised (adaln_init: zero) every gate is 0, so each block starts as the identity.
Attention is bidirectional, through F.scaled_dot_product_attention; padding is a [B, 1, 1, L]
boolean mask broadcast over queries (no L x L mask is built).
Image positions: the k-th image token of the layout is at row (k % N) // S, column k % S of an
S x S grid, S = sqrt(N), N = tokens_per_image (codes in row-major order, as medim's tokenizers
write them). Without a layout every position gets the 1-D embedding.

Notation: B batch, L sequence length, D hidden size, H heads, hs = D / H, V vocabulary.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor, nn

from medim.backbones.base import Backbone
from medim.backbones.conditioning import AdaLNModulation, TimestepEmbedder, modulate, sinusoidal_embedding
from medim.errors import ConfigError
from medim.registry import ComponentParams


class UViTBackbone(Backbone):
    """U-ViT hourglass transformer (long skips fused by Linear(2D, D)), 2-D image positions, AdaLN-Zero time."""

    class Params(ComponentParams):
        hidden_size: int = Field(128, gt=0, description="D: width of every block; a multiple of 4 and of num_heads")
        num_blocks: int = Field(
            2, ge=2, description="blocks around the long skips: half feed them, half take them (even)"
        )
        mid_block: bool = Field(True, description="one more block at the bottom of the hourglass, without a skip")
        num_heads: int = Field(4, gt=0, description="attention heads; must divide hidden_size")
        mlp_ratio: float = Field(4.0, gt=0, description="MLP width as a multiple of hidden_size")
        position_embedding: Literal["learned", "sinusoidal"] = Field(
            "learned",
            description="learned tables or fixed sinusoids; on the image grid half the width is rows, half columns",
        )
        adaln_init: Literal["zero", "normal"] = Field(
            "zero", description="zero = AdaLN-Zero (every block starts as the identity); normal = N(0, 0.02)"
        )
        tie_embeddings: bool = Field(
            True, description="logits from the token embedding (true) or a separate head (false)"
        )
        norm_eps: float = Field(1e-6, gt=0, description="LayerNorm epsilon")

        @model_validator(mode="after")
        def _consistent(self) -> UViTBackbone.Params:
            if self.num_blocks % 2:
                raise ValueError(
                    f"num_blocks must be even (the first half feeds the long skips, the second half takes them), "
                    f"got {self.num_blocks}; use mid_block: true for one extra block in the middle"
                )
            if self.hidden_size % self.num_heads:
                raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
            if self.hidden_size % 4:
                raise ValueError(
                    f"hidden_size {self.hidden_size} is not a multiple of 4 "
                    "(the 2-D position embedding splits it into two sinusoids of even width)"
                )
            return self

    def __init__(self, params: Params, *, vocab_size: int, max_seq_len: int, layout: Any = None) -> None:
        super().__init__()
        self.params = params
        self.vocab_size, self.hidden_size = vocab_size, params.hidden_size
        d = params.hidden_size
        self.embed = nn.Embedding(vocab_size, d)
        self.head = None if params.tie_embeddings else nn.Linear(d, vocab_size, bias=False)
        self._init_positions(params, max_seq_len, layout)
        self.time_embedder = TimestepEmbedder(d)
        half = params.num_blocks // 2

        def block(skip: bool) -> Block:
            return Block(d, params.num_heads, params.mlp_ratio, params.norm_eps, params.adaln_init, skip)

        self.in_blocks = nn.ModuleList(block(skip=False) for _ in range(half))
        self.mid = block(skip=False) if params.mid_block else None
        self.out_blocks = nn.ModuleList(block(skip=True) for _ in range(half))
        self.final_norm = nn.LayerNorm(d, elementwise_affine=False, eps=params.norm_eps)
        self.final_adaln = nn.Linear(d, 2 * d)  # shift, scale of the final norm
        nn.init.zeros_(self.final_adaln.weight)
        nn.init.zeros_(self.final_adaln.bias)
        for weight in (self.embed.weight, *([] if self.head is None else [self.head.weight])):
            nn.init.normal_(weight, std=0.02)  # N(0, 1) would give huge logits through a tied head

    @classmethod
    def example_params(cls, workdir: Path) -> dict[str, Any]:
        """The size `medim check uvit` builds (optional hook: without it, the defaults above): small enough that
        every conformance check takes a fraction of a second. A backbone that reads files writes tiny ones of
        the real format into `workdir` here and returns params pointing at them."""
        return {"hidden_size": 32, "num_heads": 2}

    def _init_positions(self, params: Params, max_seq_len: int, layout: Any) -> None:
        """Per-position grid coordinates (buffers) and the 1-D / row / column embedding tables."""
        d = params.hidden_size
        is_image = torch.zeros(max_seq_len, dtype=torch.bool)
        row = torch.zeros(max_seq_len, dtype=torch.long)
        col = torch.zeros(max_seq_len, dtype=torch.long)
        side = 0
        if layout is not None and len(layout.image_positions):
            n = layout.image_tokenizer.tokens_per_image
            side = math.isqrt(n)
            if side * side != n:
                raise ConfigError(
                    f"backbone 'uvit' needs a square image grid, but the image tokenizer gives {n} tokens per image"
                )
            k = torch.arange(len(layout.image_positions)) % n  # index within its image
            is_image[layout.image_positions] = True
            row[layout.image_positions], col[layout.image_positions] = k // side, k % side
        for name, value in (("is_image", is_image), ("grid_row", row), ("grid_col", col)):
            self.register_buffer(name, value, persistent=False)
        if params.position_embedding == "learned":
            self.seq_pos = nn.Parameter(torch.randn(max_seq_len, d) * 0.02)  # (L, D)
            self.row_pos = nn.Parameter(torch.randn(side, d // 2) * 0.02)  # (S, D/2)
            self.col_pos = nn.Parameter(torch.randn(side, d // 2) * 0.02)  # (S, D/2)
        else:  # fixed: deterministic, so kept out of the state dict
            self.register_buffer("seq_pos", sinusoidal_embedding(torch.arange(max_seq_len), d), persistent=False)
            grid = sinusoidal_embedding(torch.arange(side), d // 2)
            self.register_buffer("row_pos", grid, persistent=False)
            self.register_buffer("col_pos", grid.clone(), persistent=False)

    def position_embedding(self, length: int) -> Tensor:
        """(L, D): row ++ column embedding at image positions, the 1-D embedding elsewhere."""
        one_d = self.seq_pos[:length]
        if self.row_pos.shape[0] == 0:  # no image grid (built without a layout)
            return one_d
        grid = torch.cat([self.row_pos[self.grid_row[:length]], self.col_pos[self.grid_col[:length]]], dim=-1)
        return torch.where(self.is_image[:length, None], grid, one_d)

    def output_weight(self) -> Tensor:
        return self.embed.weight if self.head is None else self.head.weight

    def forward(self, tokens: Tensor, noise_level: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        assert tokens.ndim == 2 and noise_level.shape == tokens.shape[:1], (tokens.shape, noise_level.shape)
        x = self.embed(tokens) + self.position_embedding(tokens.shape[1]).to(self.embed.weight.dtype)  # (B, L, D)
        c = F.silu(self.time_embedder(noise_level))  # (B, D); DiT's SiLU before every modulation
        mask = None if padding_mask is None else padding_mask[:, None, None, :].bool()  # (B, 1, 1, L)
        skips = []
        for block in self.in_blocks:
            x = block(x, c, mask)
            skips.append(x)
        if self.mid is not None:
            x = self.mid(x, c, mask)
        for block in self.out_blocks:
            x = block(x, c, mask, skip=skips.pop())  # last in-block pairs with the first out-block
        shift, scale = self.final_adaln(c)[:, None, :].chunk(2, dim=-1)  # each (B, 1, D)
        return modulate(self.final_norm(x), shift, scale)


class Block(nn.Module):
    """Pre-norm transformer block with AdaLN(-Zero) modulation and, in the second half, a long-skip fuse."""

    def __init__(
        self, d: int, heads: int, mlp_ratio: float, eps: float, adaln_init: Literal["zero", "normal"], skip: bool
    ) -> None:
        super().__init__()
        self.heads = heads
        self.skip_fuse = nn.Linear(2 * d, d) if skip else None
        self.norm_attn = nn.LayerNorm(d, elementwise_affine=False, eps=eps)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm_mlp = nn.LayerNorm(d, elementwise_affine=False, eps=eps)
        width = int(d * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, width), nn.GELU(approximate="tanh"), nn.Linear(width, d))
        self.adaln = AdaLNModulation(d, adaln_init, gate="raw")

    def forward(self, x: Tensor, c: Tensor, mask: Tensor | None, skip: Tensor | None = None) -> Tensor:
        if self.skip_fuse is not None:
            x = self.skip_fuse(torch.cat([x, skip], dim=-1))  # (B, L, 2D) -> (B, L, D)
        (shift_a, scale_a, gate_a), (shift_m, scale_m, gate_m) = self.adaln(c)  # each (B, 1, D)
        x = x + gate_a * self.attend(modulate(self.norm_attn(x), shift_a, scale_a), mask)
        return x + gate_m * self.mlp(modulate(self.norm_mlp(x), shift_m, scale_m))

    def attend(self, x: Tensor, mask: Tensor | None) -> Tensor:
        b, length, d = x.shape
        q, k, v = (
            self.qkv(x).view(b, length, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        )  # each (B, H, L, hs)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, L, hs); mask True = may attend
        return self.proj(out.transpose(1, 2).reshape(b, length, d))
