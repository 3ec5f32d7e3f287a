"""The hf_decoder backbone's switches: plain-HF equivalence, bidirectionality, AdaLN identity, logits."""

from __future__ import annotations

import pytest
import torch

from medim.registry import BACKBONES

SMALL = {"name": "hf_decoder", "hidden_size": 32, "num_layers": 2, "num_heads": 4}
PLAIN = {"bidirectional": False, "timestep_embedding": False, "adaln": False}


def build(**overrides):
    torch.manual_seed(0)
    return BACKBONES.build({**SMALL, **overrides}, vocab_size=50, max_seq_len=16).eval()


def tokens(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("architecture", ["llama", "gemma"])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_all_switches_off_equals_the_plain_transformers_model(architecture: str, attention: str) -> None:
    backbone = build(architecture=architecture, attn_implementation=attention, **PLAIN)
    x = tokens()
    ours = backbone(x, torch.zeros(2))
    reference = backbone.model(input_ids=x).last_hidden_state
    torch.testing.assert_close(ours, reference)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_bidirectional_outputs_depend_on_later_tokens_and_causal_do_not(attention: str) -> None:
    x = tokens()
    changed = x.clone()
    changed[:, -1] = (x[:, -1] + 1) % 50
    for bidirectional in (True, False):
        backbone = build(bidirectional=bidirectional, attn_implementation=attention)
        level = torch.full((2,), 0.5)
        before, after = backbone(x, level), backbone(changed, level)
        first_position_moved = not torch.allclose(before[:, 0], after[:, 0])
        assert first_position_moved == bidirectional


def test_padding_mask_hides_positions_from_others() -> None:
    backbone = build()
    x = tokens()
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[:, -3:] = False
    changed = x.clone()
    changed[:, -1] = (x[:, -1] + 1) % 50
    level = torch.zeros(2)
    torch.testing.assert_close(backbone(x, level, mask)[:, :-3], backbone(changed, level, mask)[:, :-3])


def test_zero_initialised_adaln_is_the_identity_modulation() -> None:
    with_adaln = build(bidirectional=True, adaln=True, timestep_embedding=True, adaln_init="zero")
    without = build(bidirectional=True, adaln=False, timestep_embedding=False)
    without.model.load_state_dict(with_adaln.model.state_dict())
    x = tokens()
    for level in (0.0, 3.0):
        torch.testing.assert_close(with_adaln(x, torch.full((2,), level)), without(x, torch.zeros(2)))


def test_paper_adaln_init_and_raw_gate_change_the_output() -> None:
    x, level = tokens(), torch.full((2,), 1.0)
    identity = build(adaln_init="zero")(x, level)
    paper = build(adaln_init="normal")(x, level)
    assert not torch.allclose(identity, paper)
    raw_zero = build(adaln_init="zero", adaln_gate="raw")
    # a zero raw gate removes every layer: the output is the final norm of the embeddings
    expected = raw_zero.model.norm(raw_zero.model.embed_tokens(x))
    torch.testing.assert_close(raw_zero(x, level), expected)


def test_timestep_embedding_makes_the_output_depend_on_the_noise_level() -> None:
    backbone = build(adaln=False, timestep_embedding=True)
    x = tokens()
    assert not torch.allclose(backbone(x, torch.zeros(2)), backbone(x, torch.ones(2)))
    blind = build(adaln=False, timestep_embedding=False)
    torch.testing.assert_close(blind(x, torch.zeros(2)), blind(x, torch.ones(2)))


def test_learned_positions_are_added_to_the_token_embeddings() -> None:
    x, level = tokens(), torch.zeros(2)
    plain = build(learned_positions=False)
    learned = build(learned_positions=True)
    learned.load_state_dict({**plain.state_dict(), "position_embedding.weight": learned.position_embedding.weight})
    assert not torch.allclose(learned(x, level), plain(x, level))
    with torch.no_grad():
        learned.position_embedding.weight.zero_()
    torch.testing.assert_close(learned(x, level), plain(x, level))


@pytest.mark.parametrize("tie", [True, False])
def test_logits_at_positions_and_vocab_slice_equal_the_full_projection(tie: bool) -> None:
    backbone = build(tie_embeddings=tie)
    hidden = backbone(tokens(), torch.zeros(2))
    weight = backbone.model.embed_tokens.weight if tie else backbone.head.weight
    full = hidden @ weight.T
    positions = torch.tensor([3, 7])
    torch.testing.assert_close(backbone.logits(hidden, positions, (10, 20)), full[:, positions, 10:20])
    per_sample = torch.tensor([[1, 2], [5, 0]])
    expected = torch.stack([full[0, [1, 2]], full[1, [5, 0]]])
    torch.testing.assert_close(backbone.logits(hidden, per_sample), expected)


@pytest.mark.parametrize("learned_positions", [False, True])
def test_gradients_reach_every_parameter(learned_positions: bool) -> None:
    backbone = build(learned_positions=learned_positions)
    backbone.train()
    hidden = backbone(tokens(), torch.rand(2))
    backbone.logits(hidden).logsumexp(-1).mean().backward()
    # zero-initialised AdaLN gets gradient through its (zero) output too
    missing = [name for name, p in backbone.named_parameters() if p.grad is None]
    assert missing == []


@pytest.mark.parametrize(
    "overrides,match",
    [
        ({"hidden_size": 30, "num_heads": 4}, "not divisible by num_heads"),
        ({"adaln": True, "timestep_embedding": False}, "adaln needs timestep_embedding"),
        ({"num_kv_heads": 3}, "not divisible by num_kv_heads"),
    ],
)
def test_inconsistent_params_are_refused(overrides: dict, match: str) -> None:
    from medim.errors import RegistryError

    with pytest.raises(RegistryError, match=match):
        BACKBONES.validate({**SMALL, **overrides}, where="backbone")


@pytest.mark.parametrize(
    ("bidirectional", "padded", "expected"),
    [
        (True, False, None),
        (True, True, (2, 1, 1, 12)),
        (False, False, None),
        (False, True, (2, 1, 12, 12)),
    ],
)
def test_sdpa_gets_no_square_mask_unless_causal_with_padding(monkeypatch, bidirectional, padded, expected) -> None:
    """Full attention passes no mask (Flash-eligible), padding a broadcast [B,1,1,L] one; causal+padding is L x L."""
    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(query, key, value, attn_mask=None, **kwargs):
        seen.append((None if attn_mask is None else tuple(attn_mask.shape), kwargs.get("is_causal")))
        return sdpa(query, key, value, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    padding = torch.ones(2, 12, dtype=torch.bool)
    padding[1, -4:] = False
    build(bidirectional=bidirectional)(tokens(), torch.zeros(2), padding if padded else None)
    assert seen and all(shape == expected for shape, _ in seen)
    assert all(causal == (not bidirectional and not padded) for _, causal in seen)


@pytest.mark.parametrize("adaln", [True, False])
def test_per_position_noise_levels_equal_per_sample_ones_when_constant(adaln: bool) -> None:
    backbone = build(adaln=adaln, adaln_init="normal")
    x = tokens()
    level = torch.tensor([0.3, 2.0])
    torch.testing.assert_close(backbone(x, level[:, None].expand(-1, 12)), backbone(x, level), rtol=1e-5, atol=1e-6)


def test_each_position_is_modulated_by_its_own_level() -> None:
    """AdaLN reads position j's level at position j: with attention off (one token), levels act per position."""
    backbone = build(adaln_init="normal")
    x = tokens()[:, :1].expand(2, 1).contiguous()
    one_each = backbone(x, torch.tensor([[0.5], [3.0]]))
    torch.testing.assert_close(one_each[0], backbone(x[:1], torch.tensor([0.5]))[0])
    torch.testing.assert_close(one_each[1], backbone(x[1:], torch.tensor([3.0]))[0])
    mixed = torch.full((2, 12), 0.5)
    mixed[:, 6:] = 3.0
    assert not torch.allclose(backbone(tokens(), mixed), backbone(tokens(), torch.full((2,), 0.5)))
