"""The embedded tokenizers (k-means patches, SentencePiece) and the compact sequence layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medim.conformance.artifacts import REPORTS
from medim.errors import DataError
from medim.registry import LAYOUTS, TOKENIZERS
from medim.tokenizers.base import TokenizerCorpus
from medim.tokenizers.layouts import FIXED, IMAGE, TEXT


def test_encode_picks_the_nearest_codebook_patch(tiny_layout, tiny_corpus) -> None:
    tokenizer = tiny_layout.image_tokenizer
    codes = tokenizer.encode(tiny_corpus.images[:4])
    assert codes.shape == (4, 16) and codes.dtype == torch.long
    patches = torch.from_numpy(tiny_corpus.images[:4]).float().div(255)
    patches = patches.reshape(4, 4, 4, 4, 4, 3).permute(0, 1, 3, 2, 4, 5).reshape(4, 16, 48)
    distances = torch.cdist(patches.reshape(-1, 48), tokenizer.codebook)
    torch.testing.assert_close(codes.reshape(-1), distances.argmin(1))


def test_decode_of_codebook_patches_is_exact_and_round_trips(tiny_layout) -> None:
    tokenizer = tiny_layout.image_tokenizer
    codes = torch.randint(0, 16, (3, 16), generator=torch.Generator().manual_seed(0))
    images = tokenizer.decode(codes)
    assert images.shape == (3, 16, 16, 3) and images.dtype == np.uint8
    torch.testing.assert_close(tokenizer.encode(images), codes)


def test_bad_inputs_are_named(tiny_layout) -> None:
    tokenizer = tiny_layout.image_tokenizer
    with pytest.raises(ValueError, match=r"expected uint8 images of shape \[B, 16, 16, 3\]"):
        tokenizer.encode(np.zeros((2, 8, 8, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 16\)"):
        tokenizer.decode(torch.full((1, 16), 16))


def test_codebook_is_cached_per_params_and_corpus(tiny_corpus, tmp_path) -> None:
    spec = {"name": "patch_kmeans", "image_size": 16, "patch_size": 4, "codebook_size": 8}
    first = TOKENIZERS.build(spec)
    first.prepare(tiny_corpus, tmp_path)
    files = sorted((tmp_path / "tokenizers").glob("*.safetensors"))
    assert len(files) == 1
    second = TOKENIZERS.build(spec)
    second.prepare(tiny_corpus, tmp_path)
    torch.testing.assert_close(first.codebook, second.codebook)
    other = TokenizerCorpus(tiny_corpus.images[::-1].copy(), tiny_corpus.texts, identity="another-corpus")
    TOKENIZERS.build(spec).prepare(other, tmp_path)
    assert len(list((tmp_path / "tokenizers").glob("*.safetensors"))) == 2


def test_sentencepiece_ids_and_decoding(tiny_layout) -> None:
    text = tiny_layout.text_tokenizer
    assert (text.pad_id, text.eos_id) == (0, 3)
    ids = text.encode(["The heart is enlarged."])[0]
    assert text.decode([ids + [text.eos_id, text.pad_id, text.pad_id]]) == ["The heart is enlarged."]


def test_sentencepiece_model_file_errors(tmp_path, tiny_corpus) -> None:
    missing = TOKENIZERS.build({"name": "sentencepiece", "model_file": str(tmp_path / "nope.model")})
    with pytest.raises(DataError, match="nope.model.*does not exist"):
        missing.prepare(tiny_corpus, tmp_path)
    garbage = tmp_path / "garbage.model"
    garbage.write_bytes(b"not a model")
    with pytest.raises(DataError, match="garbage.model is not a SentencePiece model"):
        TOKENIZERS.build({"name": "sentencepiece", "model_file": str(garbage)}).prepare(tiny_corpus, tmp_path)


def test_layout_positions_and_vocabulary_are_disjoint(tiny_layout) -> None:
    layout = tiny_layout
    assert layout.seq_len == 16 + 24 + 2
    assert (layout.position_modality == IMAGE).sum() == 16 and (layout.position_modality == TEXT).sum() == 24
    assert (layout.position_modality == FIXED).sum() == 2
    image_ids, text_ids = layout.vocab_masks[IMAGE], layout.vocab_masks[TEXT]
    assert not (image_ids & text_ids).any()
    assert not image_ids[layout.mask_id] and not text_ids[layout.mask_id]
    assert image_ids.sum() == 16 and text_ids.sum() == layout.text_tokenizer.vocab_size
    assert layout.vocab_size % 8 == 0 and layout.vocab_size >= layout.image_offset + 16


def test_layout_packs_and_reads_back(tiny_layout, tiny_corpus) -> None:
    layout = tiny_layout
    codes = layout.image_tokenizer.encode(tiny_corpus.images[:3])
    packed = layout.pack_text(REPORTS[:3])
    tokens = layout.pack(codes, packed.ids)
    assert packed.truncated == 0
    assert torch.equal(layout.image_codes(tokens), codes)
    assert layout.texts(tokens) == REPORTS[:3]
    assert tokens[0, 0] == layout.boi_id and tokens[0, 17] == layout.eoi_id


def test_long_reports_are_truncated_and_counted(tiny_layout) -> None:
    long_report = " ".join(REPORTS)
    packed = tiny_layout.pack_text([long_report, REPORTS[0]])
    assert packed.truncated == 1
    assert packed.ids[0, -1] == tiny_layout.text_tokenizer.eos_id


def test_layout_rejects_mismatched_shapes(tiny_layout) -> None:
    with pytest.raises(DataError, match=r"expects image codes \[B, 16\] and text ids \[B, 24\]"):
        tiny_layout.pack(torch.zeros(2, 15, dtype=torch.long), torch.zeros(2, 24, dtype=torch.long))


def test_layout_is_swappable_by_name() -> None:
    assert "compact" in LAYOUTS.names()
