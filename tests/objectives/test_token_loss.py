"""The loss's fast path (logits over the modality's vocabulary slice only, float32 logits in chunks recomputed in
the backward pass, diagnostics kept on the device) equals the straightforward computation, gradients included."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers.components import build_task, tiny_backbone

from medim.objectives import token_loss
from medim.objectives.token_loss import modality_cross_entropy
from medim.tokenizers.layouts import IMAGE, TEXT


def straightforward_loss(layout, backbone, batch) -> torch.Tensor:
    """MeDiM's computation: float32 logits at every position over every id, blocked per modality, CE at masked
    positions weighted by 1 / t (elbo), divided by the noisable count."""
    logits = backbone.logits(backbone(batch.xt, batch.noise_level, layout.attention_mask(batch.xt))).float()
    blocked = ~layout.vocab_masks[layout.position_modality.clamp(min=0)]
    logits = logits.masked_fill(blocked, float("-inf"))
    ce = F.cross_entropy(logits.transpose(1, 2), batch.x0, reduction="none")
    masked = batch.xt == layout.mask_id
    return torch.where(masked, ce / batch.times.clamp(min=1e-9), 0.0).sum() / batch.noisable.sum()


@pytest.mark.parametrize("chunk_elements", [None, 700], ids=["whole", "chunked"])
def test_the_fast_loss_and_its_gradients_equal_the_straightforward_computation(
    tiny_layout, tiny_corpus, monkeypatch: pytest.MonkeyPatch, chunk_elements: int | None
) -> None:
    if chunk_elements is not None:  # a few rows per chunk: several chunks per modality, recomputed in backward
        monkeypatch.setattr(token_loss, "LOGIT_CHUNK_ELEMENTS", chunk_elements)
    task = build_task("joint", tiny_layout, cond_dropout=0.0)
    backbone = tiny_backbone(tiny_layout)
    x0 = tiny_layout.pack(
        tiny_layout.image_tokenizer.encode(tiny_corpus.images[:6]), tiny_layout.pack_text(tiny_corpus.texts[:6]).ids
    )
    batch = task.training_batch(x0, torch.Generator().manual_seed(4))
    output = task.loss(backbone, batch)
    fast = torch.autograd.grad(output.loss, list(backbone.parameters()))
    expected = straightforward_loss(tiny_layout, backbone, batch)
    plain = torch.autograd.grad(expected, list(backbone.parameters()))
    torch.testing.assert_close(output.loss, expected, rtol=1e-5, atol=1e-6)
    for (name, _), got, want in zip(backbone.named_parameters(), fast, plain):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7, msg=lambda m, n=name: f"{n}: {m}")
    masked = batch.xt == tiny_layout.mask_id
    assert output.masked_tokens == int(masked.sum())
    for name, code in (("image", IMAGE), ("text", TEXT)):
        assert output.modality_masked_tokens[name] == int((masked & (tiny_layout.position_modality == code)).sum())


def test_chunks_hold_at_most_the_budget_of_logits_forward_and_backward(tiny_layout) -> None:
    backbone = tiny_backbone(tiny_layout)
    lo, hi = tiny_layout.vocab_range(IMAGE)
    hidden = torch.randn(50, backbone.hidden_size, requires_grad=True)
    targets = torch.randint(lo, hi, (50,))
    widths: list[int] = []
    original = backbone.logits

    def spy(h, positions=None, vocab_range=None):
        out = original(h, positions, vocab_range)
        widths.append(out.shape[1] * out.shape[2])
        return out

    backbone.logits = spy
    budget = 10 * (hi - lo)
    ce, correct = modality_cross_entropy(backbone, tiny_layout, IMAGE, hidden, targets, chunk_elements=budget)
    ce.sum().backward()
    assert len(widths) == 2 * 5 and max(widths) <= budget  # five chunks, each recomputed once in backward
    logits = (hidden @ backbone.output_weight().T).masked_fill(~tiny_layout.vocab_masks[IMAGE], float("-inf"))
    torch.testing.assert_close(ce, F.cross_entropy(logits, targets, reduction="none"))
    assert torch.equal(correct, logits.argmax(-1) == targets)


def test_a_modality_whose_ids_are_not_one_block_is_scored_over_the_whole_vocabulary(tiny_layout) -> None:
    backbone = tiny_backbone(tiny_layout)
    layout = type(tiny_layout).__new__(type(tiny_layout))
    layout.__dict__.update({k: v for k, v in tiny_layout.__dict__.items() if k != "_vocab_ranges"})
    layout.vocab_masks = tiny_layout.vocab_masks.clone()
    lo, hi = tiny_layout.vocab_range(TEXT)
    layout.vocab_masks[TEXT, lo + 2] = False  # a hole: text ids are now two blocks
    assert layout.vocab_range(TEXT) is None and layout.vocab_range(IMAGE) == tiny_layout.vocab_range(IMAGE)
    hidden = torch.randn(7, backbone.hidden_size)
    targets = torch.tensor([lo, lo + 1, lo + 3, lo + 4, lo + 5, hi - 1, hi - 2])
    ce, _ = modality_cross_entropy(backbone, layout, TEXT, hidden, targets)
    logits = (hidden @ backbone.output_weight().T).masked_fill(~layout.vocab_masks[TEXT], float("-inf"))
    torch.testing.assert_close(ce, F.cross_entropy(logits, targets, reduction="none"))


def test_each_modality_range_is_the_block_of_ids_it_may_take(tiny_layout) -> None:
    for code in (IMAGE, TEXT):
        lo, hi = tiny_layout.vocab_range(code)
        expected = torch.zeros(tiny_layout.vocab_size, dtype=torch.bool)
        expected[lo:hi] = True
        assert torch.equal(tiny_layout.vocab_masks[code], expected)
    assert tiny_layout.vocab_range(IMAGE)[0] == tiny_layout.image_offset
