"""The `medim_paper` and `liquid_native` layouts, id for id against MeDiM's released code.

MeDiM (model_inf.py / modeling_gemma.py): input_ids = [<boi>, image + 32004, <eoi>, cond, text(256), <eos>];
mask 32003; image logits from positions 2..1025, text logits from L-258..L-3; attention hides text ids == 0;
the loss counts real text tokens and every image token.
"""

from __future__ import annotations

import pytest
import torch
from helpers.components import build_task, tiny_backbone

from medim.errors import ConfigError, DataError
from medim.registry import LAYOUTS, TOKENIZERS
from medim.tokenizers.layouts import FIXED, IMAGE, TEXT


@pytest.fixture(scope="module")
def llama_text(llama_tokenizer_dir):
    tokenizer = TOKENIZERS.build({"name": "llama2_text", "path": str(llama_tokenizer_dir)})
    tokenizer.prepare(None, llama_tokenizer_dir)
    return tokenizer


@pytest.fixture(scope="module")
def paper(llama_text, tiny_layout):
    image = tiny_layout.image_tokenizer  # 16 codes, 16 tokens per 16-px image
    return LAYOUTS.build(
        {"name": "medim_paper", "max_text_tokens": 12}, image_tokenizer=image, text_tokenizer=llama_text
    )


def test_paper_ids_follow_medims_vocabulary(paper, llama_text) -> None:
    pieces = llama_text.vocab_size - 3
    assert (paper.boi_id, paper.eoi_id, paper.eos_id) == (pieces, pieces + 1, pieces + 2)
    assert paper.mask_id == pieces + 3 and paper.image_offset == pieces + 4
    assert paper.vocab_size == pieces + 4 + 16  # Llama-2: 32000 + 4 + 8192 = 40196


def test_paper_sequence_is_boi_image_eoi_cond_text_eos(paper, llama_text) -> None:
    codes = torch.arange(16).repeat(2, 1)
    packed = paper.pack_text(["The heart is enlarged.", "No pneumothorax is seen. " * 4])
    tokens = paper.pack(codes, packed.ids)
    cond = [llama_text.bos_id, *llama_text.encode(["Image Size: Width is 16 Height is 16."])[0]]
    n, c = 16, len(cond)
    assert paper.seq_len == 1 + n + 1 + c + 12 + 1
    assert tokens[0, 0] == paper.boi_id and tokens[0, n + 1] == paper.eoi_id and tokens[0, -1] == paper.eos_id
    assert torch.equal(tokens[0, 1 : n + 1], codes[0] + paper.image_offset)
    assert tokens[0, n + 2 : n + 2 + c].tolist() == cond
    report = [llama_text.bos_id, *llama_text.encode(["The heart is enlarged."])[0]]
    text = tokens[0, paper.text_positions].tolist()
    assert text[: len(report)] == report and set(text[len(report) :]) == {0}  # right-padded with 0, no EOS
    assert packed.truncated == 1 and 0 not in tokens[1, paper.text_positions].tolist()
    modality = paper.position_modality
    assert (modality[paper.image_positions] == IMAGE).all() and (modality[paper.text_positions] == TEXT).all()
    assert (modality == FIXED).sum() == 3 + c


def test_paper_logits_are_read_shifted(paper) -> None:
    image, text = paper.image_positions, paper.text_positions
    assert torch.equal(paper.logit_positions(image), image + 1)  # MeDiM: image logits from positions 2..1025
    assert torch.equal(paper.logit_positions(text), text - 1)  # text logits from L-258..L-3
    assert paper.logit_positions(text)[-1] == paper.seq_len - 3


def test_paper_hides_and_never_scores_text_padding_only(paper) -> None:
    tokens = paper.pack(torch.zeros(1, 16, dtype=torch.long), paper.pack_text(["The lungs are clear."]).ids)
    tokens[0, paper.text_positions[-1]] = paper.mask_id  # a masked text position stays visible
    visible = paper.attention_mask(tokens)[0]
    hidden = (~visible).nonzero().flatten()
    assert set(hidden.tolist()) <= set(paper.text_positions.tolist())
    assert (tokens[0, hidden] == 0).all() and visible[paper.text_positions[-1]]
    assert torch.equal(paper.scored_mask(tokens), visible[None])


def test_paper_vocabularies_per_modality(paper) -> None:
    text_ids = paper.allowed_vocab(paper.text_positions[:1])[0].nonzero().flatten()
    image_ids = paper.allowed_vocab(paper.image_positions[:1])[0].nonzero().flatten()
    assert text_ids.tolist() == list(range(paper.mask_id))  # MeDiM: text positions take ids below the mask
    assert image_ids.tolist() == list(range(paper.image_offset, paper.vocab_size))


def test_paper_loss_scores_real_report_tokens_and_every_image_token(paper) -> None:
    task = build_task("joint", paper)
    backbone = tiny_backbone(paper)
    x0 = paper.pack(
        torch.randint(0, 16, (3, 16)),
        paper.pack_text(["The heart is enlarged.", "No pneumothorax is seen.", "The lungs are clear."]).ids,
    )
    batch = task.training_batch(x0, torch.Generator().manual_seed(0))
    loss = task.loss(backbone, batch).loss
    # direct: MeDiM's mean over (real text + image) positions of 1/t-weighted CE at masked ones, logits read shifted
    scorable = batch.noisable & paper.attention_mask(x0)
    hidden = backbone(batch.xt, batch.noise_level, paper.attention_mask(batch.xt))
    total = torch.zeros(())
    for b, position in ((batch.xt == paper.mask_id) & scorable).nonzero().tolist():
        logits = backbone.logits(hidden[b : b + 1, paper.logit_positions(torch.tensor([position]))])[0, 0]
        logits = logits.masked_fill(~paper.allowed_vocab(torch.tensor([position]))[0], float("-inf"))
        total = (
            total + torch.nn.functional.cross_entropy(logits[None], x0[b, position][None]) / batch.times[b, position]
        )
    torch.testing.assert_close(loss, total / scorable.sum())
    assert (x0[:, paper.text_positions] == 0).any() and not scorable[x0 == 0].any()


def test_paper_round_trips_reports(paper) -> None:
    reports = ["The heart is enlarged.", "There is a small left pleural effusion."]
    tokens = paper.pack(torch.zeros(2, 16, dtype=torch.long), paper.pack_text(reports).ids)
    assert paper.texts(tokens) == reports


def test_paper_needs_the_added_specials(tiny_layout) -> None:
    with pytest.raises(
        ConfigError, match="needs a text tokenizer with a BOS id and the added specials <boi>, <eoi>, <eos>"
    ):
        LAYOUTS.build(
            {"name": "medim_paper"},
            image_tokenizer=tiny_layout.image_tokenizer,
            text_tokenizer=tiny_layout.text_tokenizer,
        )


def test_liquid_native_reuses_the_checkpoints_image_rows(tiny_layout) -> None:
    text, image = tiny_layout.text_tokenizer, tiny_layout.image_tokenizer
    layout = LAYOUTS.build({"name": "liquid_native", "max_text_tokens": 8}, image_tokenizer=image, text_tokenizer=text)
    v = text.vocab_size
    assert layout.image_offset == v and layout.mask_id == v + 16 and (layout.boi_id, layout.eoi_id) == (v + 17, v + 18)
    assert layout.vocab_size % 64 == 0 and layout.vocab_size >= v + 19
    sources = layout.embedding_sources(v + 16)  # a Liquid-like checkpoint: text rows + image rows
    assert torch.equal(sources[: v + 16], torch.arange(v + 16)) and (sources[v + 16 :] == -1).all()
    never = ~layout.vocab_masks.any(0)  # padding rows, the mask and <boi>/<eoi> are never sampled
    assert never[v + 16 :].all() and not never[: v + 16].any()
    with pytest.raises(DataError, match="reuses the checkpoint's image rows .* only 90 rows"):
        layout.embedding_sources(90)
