"""The decoder denoiser's KV cache: a prefix into an empty cache, then one token per call, gives the hidden
states of one causal forward over the whole sequence; a bidirectional backbone or padding is refused."""

from __future__ import annotations

import pytest
import torch
from helpers.components import tiny_backbone
from transformers import DynamicCache


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("options", [{}, {"learned_positions": True}, {"timestep_embedding": True, "adaln": True}])
def test_cached_steps_equal_the_full_causal_forward(tiny_layout, attention: str, options: dict) -> None:
    spec = {"bidirectional": False, "timestep_embedding": False, "adaln": False, "attn_implementation": attention}
    backbone = tiny_backbone(tiny_layout, **{**spec, **options}).eval()
    assert backbone.is_causal and backbone.supports_kv_cache
    tokens = torch.randint(
        0, tiny_layout.vocab_size, (3, tiny_layout.seq_len), generator=torch.Generator().manual_seed(1)
    )
    level = torch.full((3,), 0.3)
    with torch.no_grad():
        full = backbone(tokens, level)
        cache = DynamicCache()
        prefix = 7
        pieces = [backbone(tokens[:, :prefix], level, cache=cache)]
        pieces += [backbone(tokens[:, k : k + 1], level, cache=cache) for k in range(prefix, tokens.shape[1])]
    torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=1e-5, atol=1e-5)


def test_a_cache_needs_causal_attention_and_one_token_at_a_time(tiny_layout) -> None:
    tokens = torch.zeros(1, 6, dtype=torch.long)
    with pytest.raises(ValueError, match="causal backbone"):
        tiny_backbone(tiny_layout).eval()(tokens, torch.zeros(1), cache=DynamicCache())
    causal = tiny_backbone(tiny_layout, bidirectional=False).eval()
    cache = DynamicCache()
    causal(tokens, torch.zeros(1), cache=cache)
    with pytest.raises(ValueError, match="one token at a time"):
        causal(tokens[:, :2], torch.zeros(1), cache=cache)
