"""llama2_text and gemma_text, loaded from tiny SentencePiece models laid out like the real checkpoints."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import sentencepiece as spm

from medim.conformance.artifacts import REPORTS
from medim.errors import DataError, RegistryError
from medim.registry import TOKENIZERS

#: Text that exercises the dummy prefix, repeated spaces, newlines, split digits and byte fallback.
TEXTS = [
    "The heart is  enlarged.",
    "Right upper lobe nodule 12 mm.\nNo pleural effusion.",
    "Cardiomegaly ÷ émoji 🫁 present.",
    "",
]

#: Trainer options of Llama-2's and Gemma's tokenizer.model (BPE, identity normalization, byte fallback).
COMMON = dict(
    model_type="bpe",
    vocab_size=320,
    hard_vocab_limit=False,
    byte_fallback=True,
    character_coverage=1.0,
    normalization_rule_name="identity",
    remove_extra_whitespaces=False,
    split_digits=True,
    allow_whitespace_only_pieces=True,
    num_threads=1,
    minloglevel=2,
)


def _train(directory: Path, **ids) -> Path:
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(REPORTS), model_writer=buffer, **COMMON, **ids)
    directory.mkdir(parents=True)
    (directory / "tokenizer.model").write_bytes(buffer.getvalue())
    return directory


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Llama-2-7b-hf's layout: unk 0, bos 1, eos 2, no pad piece, plus the HF json files."""
    directory = _train(tmp_path_factory.mktemp("llama") / "Llama-2-7b-hf", unk_id=0, bos_id=1, eos_id=2, pad_id=-1)
    config = {"tokenizer_class": "LlamaTokenizer", "pad_token": None}
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    (directory / "special_tokens_map.json").write_text(json.dumps(specials))
    return directory


@pytest.fixture(scope="module")
def gemma_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Gemma's layout: pad 0, eos 1, bos 2, unk 3, <mask> 4, and no dummy prefix."""
    return _train(
        tmp_path_factory.mktemp("gemma") / "gemma",
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        pad_piece="<pad>",
        eos_piece="<eos>",
        bos_piece="<bos>",
        control_symbols=["<mask>"],
        add_dummy_prefix=False,
    )


def _prepared(name: str, path: Path, tiny_corpus, tmp_path: Path, **params):
    tokenizer = TOKENIZERS.build({"name": name, "path": str(path), **params})
    tokenizer.prepare(tiny_corpus, tmp_path)
    return tokenizer


def _processor(directory: Path) -> spm.SentencePieceProcessor:
    return spm.SentencePieceProcessor(model_file=str(directory / "tokenizer.model"))


def _hf_vocab_and_merges(directory: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The BPE vocab and merges transformers derives from a tokenizer.model (without protobuf)."""
    from transformers.tokenization_utils_base import generate_merges

    processor = _processor(directory)
    vocab = {processor.id_to_piece(i): i for i in range(processor.get_piece_size())}
    return vocab, generate_merges(vocab, None)


def test_llama_ids_follow_medim(llama_dir, tiny_corpus, tmp_path) -> None:
    tokenizer = _prepared("llama2_text", llama_dir, tiny_corpus, tmp_path)
    pieces = _processor(llama_dir).get_piece_size()
    assert tokenizer.special_ids == {"<boi>": pieces, "<eoi>": pieces + 1, "<eos>": pieces + 2}
    assert tokenizer.vocab_size == pieces + 3
    assert (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id) == (0, 1, 2)


def test_gemma_ids_come_from_the_model(gemma_dir, tiny_corpus, tmp_path) -> None:
    tokenizer = _prepared("gemma_text", gemma_dir, tiny_corpus, tmp_path)
    assert tokenizer.special_ids == {}
    assert tokenizer.vocab_size == _processor(gemma_dir).get_piece_size()
    assert (tokenizer.pad_id, tokenizer.eos_id, tokenizer.bos_id) == (0, 1, 2)


def test_added_special_that_is_a_piece_keeps_its_id(gemma_dir, tiny_corpus, tmp_path) -> None:
    tokenizer = _prepared("gemma_text", gemma_dir, tiny_corpus, tmp_path, added_specials=["<boi>", "<eos>", "<eoi>"])
    pieces = _processor(gemma_dir).get_piece_size()
    assert tokenizer.special_ids == {"<boi>": pieces, "<eos>": 1, "<eoi>": pieces + 1}
    assert tokenizer.vocab_size == pieces + 2


@pytest.mark.parametrize("name", ["llama2_text", "gemma_text"])
def test_encode_is_sentencepiece_and_round_trips(name, llama_dir, gemma_dir, tiny_corpus, tmp_path) -> None:
    directory = llama_dir if name == "llama2_text" else gemma_dir
    tokenizer = _prepared(name, directory, tiny_corpus, tmp_path)
    ids = tokenizer.encode(TEXTS)
    assert ids == _processor(directory).encode(TEXTS)
    assert tokenizer.bos_id not in ids[0] and tokenizer.eos_id not in ids[0]
    assert tokenizer.decode(ids) == TEXTS


@pytest.mark.parametrize("name", ["llama2_text", "gemma_text"])
def test_decode_drops_padding_role_ids_and_added_specials(name, llama_dir, gemma_dir, tiny_corpus, tmp_path) -> None:
    directory = llama_dir if name == "llama2_text" else gemma_dir
    tokenizer = _prepared(name, directory, tiny_corpus, tmp_path, added_specials=["<boi>", "<eoi>", "<eos>"])
    specials = list(tokenizer.special_ids.values())
    text = "The heart is enlarged."
    ids = tokenizer.encode([text])[0]
    unk = _processor(directory).unk_id()
    row = [tokenizer.bos_id, *ids[:2], unk, *ids[2:], tokenizer.eos_id, *specials, tokenizer.vocab_size + 5]
    row += [tokenizer.pad_id] * 4
    assert tokenizer.decode([row, specials]) == [text, ""]


def test_llama_matches_transformers_llama_tokenizer(llama_dir, tiny_corpus, tmp_path) -> None:
    """MeDiM's `AutoTokenizer` + `add_special_tokens`, rebuilt offline from the same tokenizer.model."""
    transformers = pytest.importorskip("transformers")
    vocab, merges = _hf_vocab_and_merges(llama_dir)
    try:
        reference = transformers.LlamaTokenizer(vocab=vocab, merges=merges, legacy=True, add_bos_token=False)
    except Exception as exc:  # the constructor's signature differs across transformers versions
        pytest.skip(f"transformers.LlamaTokenizer cannot be built offline here: {exc}")
    if len(reference) != len(vocab):
        pytest.skip(f"transformers.LlamaTokenizer built {len(reference)} ids, not {len(vocab)}")
    added = ["<boi>", "<eoi>", "<eos>"]
    reference.add_special_tokens({"additional_special_tokens": added})
    tokenizer = _prepared("llama2_text", llama_dir, tiny_corpus, tmp_path)
    # Texts without a leading space: HF's Metaspace pre-tokenizer does not add the dummy prefix there.
    assert tokenizer.encode(TEXTS) == [reference.encode(t, add_special_tokens=False) for t in TEXTS]
    assert tokenizer.special_ids == dict(zip(added, reference.convert_tokens_to_ids(added)))
    assert tokenizer.vocab_size == len(reference)
    assert (tokenizer.bos_id, tokenizer.eos_id) == (reference.bos_token_id, reference.eos_token_id)


def test_gemma_directory_with_only_tokenizer_json(gemma_dir, tiny_corpus, tmp_path) -> None:
    transformers = pytest.importorskip("transformers")
    vocab, merges = _hf_vocab_and_merges(gemma_dir)
    try:
        # add_bos_token: Gemma's tokenizer.json prepends <bos>, which encode must not
        transformers.GemmaTokenizer(vocab=vocab, merges=merges, add_bos_token=True).save_pretrained(tmp_path / "hf")
    except Exception as exc:  # the constructor's signature differs across transformers versions
        pytest.skip(f"transformers.GemmaTokenizer cannot write a tokenizer.json offline here: {exc}")
    json_only = tmp_path / "gemma-json"
    json_only.mkdir()
    (json_only / "tokenizer.json").write_bytes((tmp_path / "hf" / "tokenizer.json").read_bytes())
    tokenizer = _prepared("gemma_text", json_only, tiny_corpus, tmp_path)
    reference = _prepared("gemma_text", gemma_dir, tiny_corpus, tmp_path)
    assert (tokenizer.vocab_size, tokenizer.pad_id, tokenizer.eos_id, tokenizer.bos_id) == (len(vocab), 0, 1, 2)
    ids = tokenizer.encode(TEXTS)
    assert ids == reference.encode(TEXTS)
    assert tokenizer.decode([[2, *row, 1, 0, 0] for row in ids]) == TEXTS
    assert tokenizer.identity()["model"] != reference.identity()["model"]


def test_missing_and_malformed_files_are_named(llama_dir, tiny_corpus, tmp_path) -> None:
    with pytest.raises(DataError, match=r"'.*nope' does not exist; expected .*tokenizer.model"):
        _prepared("llama2_text", tmp_path / "nope", tiny_corpus, tmp_path)
    other = tmp_path / "weights-only"
    other.mkdir()
    (other / "config.json").write_text("{}")
    (other / "model.safetensors").write_bytes(b"")
    holds = (
        r"weights-only' holds neither tokenizer.model nor tokenizer.json \(it holds: config.json, model.safetensors\)"
    )
    with pytest.raises(DataError, match=holds):
        _prepared("gemma_text", other, tiny_corpus, tmp_path)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "tokenizer.model").write_bytes(b"not a model")
    with pytest.raises(DataError, match=r"garbage/tokenizer.model is not a SentencePiece model"):
        _prepared("llama2_text", garbage, tiny_corpus, tmp_path)
    (garbage / "tokenizer.json").write_text("{broken")
    with pytest.raises(DataError, match=r"garbage/tokenizer.json is not a tokenizers JSON file"):
        _prepared("gemma_text", garbage / "tokenizer.json", tiny_corpus, tmp_path)
    with pytest.raises(DataError, match=r"tokenizer.model: the sequence layout needs pad and eos ids.*unk=0"):
        _prepared("llama2_text", llama_dir, tiny_corpus, tmp_path, pad_id=None)
    with pytest.raises(RegistryError, match=r"added_specials: .*distinct"):
        TOKENIZERS.build({"name": "llama2_text", "path": str(llama_dir), "added_specials": ["<boi>", "<boi>"]})


def test_prepare_shapes_without_files_assumes_published_shapes(tmp_path, caplog) -> None:
    llama = TOKENIZERS.build({"name": "llama2_text", "path": str(tmp_path / "Llama-2-7b-hf")})
    llama.prepare_shapes()
    assert llama.vocab_size == 32003 and llama.special_ids == {"<boi>": 32000, "<eoi>": 32001, "<eos>": 32002}
    assert (llama.pad_id, llama.bos_id, llama.eos_id) == (0, 1, 2)
    gemma = TOKENIZERS.build({"name": "gemma_text", "path": str(tmp_path / "gemma"), "added_specials": ["<eos>"]})
    gemma.prepare_shapes()
    assert (gemma.vocab_size, gemma.pad_id, gemma.eos_id, gemma.bos_id) == (256000, 0, 1, 2)
    assert gemma.special_ids == {"<eos>": 1}
    lines = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert len(lines) == 2 and "Llama-2-7b-hf not found; assuming the published" in lines[0]
    with pytest.raises(RuntimeError, match="call prepare"):
        llama.encode(["The heart is enlarged."])


def test_prepare_shapes_reads_existing_files(llama_dir, caplog) -> None:
    tokenizer = TOKENIZERS.build({"name": "llama2_text", "path": str(llama_dir)})
    tokenizer.prepare_shapes()
    assert tokenizer.vocab_size == _processor(llama_dir).get_piece_size() + 3
    assert caplog.records == []


def test_identity_follows_model_bytes_specials_and_padding(llama_dir, gemma_dir, tiny_corpus, tmp_path) -> None:
    base = _prepared("llama2_text", llama_dir, tiny_corpus, tmp_path).identity()
    assert _prepared("llama2_text", llama_dir / "tokenizer.model", tiny_corpus, tmp_path).identity() == base
    assert _prepared("llama2_text", llama_dir, tiny_corpus, tmp_path, pad_id=2).identity() != base
    assert _prepared("llama2_text", llama_dir, tiny_corpus, tmp_path, added_specials=["<boi>"]).identity() != base
    assert _prepared("llama2_text", gemma_dir, tiny_corpus, tmp_path).identity()["model"] != base["model"]
    assert TOKENIZERS.info("gemma_text")["extra"]["published shapes"].startswith("256000 pieces (pad 0, eos 1, bos 2")
