"""Text tokenizers read from a pretrained model's directory: Llama-2 (MeDiM) and Gemma (Liquid).

MeDiM tokenizes reports with Llama-2's tokenizer and appends `<boi> <eoi> <eos>`
to it (ids 32000-32002); Liquid, a Gemma model, keeps Gemma's ids as they are
(its image codes, at 256000 + c, belong to the sequence layout). Both read
`tokenizer.model` with the sentencepiece library, which gives the ids of HF's
slow tokenizer in legacy mode, or, in a directory that has only
`tokenizer.json`, that file with the `tokenizers` library.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import sentencepiece as spm
from pydantic import Field, field_validator
from tokenizers import Tokenizer

from medim.errors import DataError
from medim.registry import TOKENIZERS, ComponentParams
from medim.tokenizers.base import TextTokenizer, TokenizerCorpus, TokenizerNotLoaded

logger = logging.getLogger(__name__)

#: Model files looked for in a `path` directory, in order of preference.
MODEL_FILES = ("tokenizer.model", "tokenizer.json")


@dataclass(frozen=True)
class PublishedVocab:
    """A model family's published vocabulary: its piece count and role pieces (role -> (piece, id)).

    Dry runs without the files assume these shapes; a `tokenizer.json`, which does
    not record roles, has its role ids looked up by these piece names.
    """

    pieces: int
    roles: dict[str, tuple[str, int]]


LLAMA2 = PublishedVocab(32000, {"unk": ("<unk>", 0), "bos": ("<s>", 1), "eos": ("</s>", 2)})
GEMMA = PublishedVocab(256000, {"pad": ("<pad>", 0), "eos": ("<eos>", 1), "bos": ("<bos>", 2), "unk": ("<unk>", 3)})


class _SentencePieceModel:
    """A `tokenizer.model`: roles come from the model itself (-1 means the model has none)."""

    def __init__(self, data: bytes, source: Path) -> None:
        self._processor = spm.SentencePieceProcessor()
        try:
            self._processor.LoadFromSerializedProto(data)
        except Exception as exc:  # sentencepiece raises bare RuntimeErrors/OSErrors
            raise DataError(f"{source} is not a SentencePiece model: {exc}") from None
        p = self._processor
        self.size = p.get_piece_size()
        ids = {"pad": p.pad_id(), "eos": p.eos_id(), "bos": p.bos_id(), "unk": p.unk_id()}
        self.roles = {role: i for role, i in ids.items() if i >= 0}

    def piece_id(self, piece: str) -> int | None:
        i = self._processor.piece_to_id(piece)  # unknown pieces map to unk, hence the check
        return i if self._processor.id_to_piece(i) == piece else None

    def encode(self, texts: list[str]) -> list[list[int]]:
        return self._processor.encode(texts)

    def decode(self, ids: list[list[int]]) -> list[str]:
        return self._processor.decode(ids)


class _TokenizerJson:
    """A `tokenizer.json`: its roles are the published role pieces that it contains."""

    def __init__(self, data: bytes, source: Path, published: PublishedVocab) -> None:
        try:
            self._tokenizer = Tokenizer.from_str(data.decode("utf-8"))
        except Exception as exc:  # tokenizers raises a bare Exception for malformed JSON
            raise DataError(f"{source} is not a tokenizers JSON file: {exc}") from None
        self.size = self._tokenizer.get_vocab_size(with_added_tokens=True)
        found = {role: self._tokenizer.token_to_id(piece) for role, (piece, _) in published.roles.items()}
        self.roles = {role: i for role, i in found.items() if i is not None}

    def piece_id(self, piece: str) -> int | None:
        return self._tokenizer.token_to_id(piece)

    def encode(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tokenizer.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[list[int]]) -> list[str]:
        return self._tokenizer.decode_batch(ids, skip_special_tokens=True)


class PretrainedTextTokenizer(TextTokenizer):
    """Shared implementation of the file-backed text tokenizers; subclasses name a family and defaults.

    `added_specials` get ids after the model's pieces, in order (V, V+1, ...); one
    that already is a piece of the model keeps that piece's id instead (as HF's
    `add_special_tokens` does), e.g. "<eos>" is Gemma's id 1. `encode` never emits
    them (the layout places them) and `decode` drops them, with padding, bos, eos,
    unk and any id outside the model's pieces.
    """

    name: ClassVar[str]
    published: ClassVar[PublishedVocab]

    class Params(ComponentParams):
        path: str = Field(..., description="directory with tokenizer.model (or only tokenizer.json), or that file")
        added_specials: list[str] = Field([], description="special tokens appended after the model's pieces")
        pad_id: int | None = Field(None, ge=0, description="padding id; null: the model's pad piece")

        @field_validator("added_specials")
        @classmethod
        def _distinct_and_nonempty(cls, value: list[str]) -> list[str]:
            if "" in value or len(set(value)) != len(value):
                raise ValueError("added specials must be distinct, non-empty strings")
            return value

    def __init__(self, params: Params) -> None:
        self.params = params
        self._model: _SentencePieceModel | _TokenizerJson | None = None
        self._model_hash = ""
        self._dropped: set[int] = set()

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Files this tokenizer reads and the shapes a dry run assumes without them, for `medim info`."""
        roles = ", ".join(f"{role} {i}" for role, (_, i) in cls.published.roles.items())
        return {
            "files": "path: the model directory's tokenizer.model (SentencePiece), or its tokenizer.json when "
            "it has no tokenizer.model; or the path of either file",
            "published shapes": f"{cls.published.pieces} pieces ({roles})",
        }

    def identity(self) -> dict[str, Any]:
        self._loaded()
        return {
            "name": self.name,
            "model": self._model_hash,
            "added_specials": list(self.params.added_specials),
            "pad_id": self.pad_id,
        }

    def prepare(self, corpus: TokenizerCorpus, cache_dir: Path) -> None:
        """Load the model file under `path` (nothing is trained: corpus and cache are unused)."""
        self._load()

    def prepare_shapes(self) -> None:
        """Load the model when `path` exists (it is small), else assume the published shapes, saying so."""
        if Path(self.params.path).exists():
            self._load()
            return
        published = self.published
        logger.warning(
            "tokenizer %s: %s not found; assuming the published vocabulary (%d pieces + %d added specials)",
            self.name, self.params.path, published.pieces, len(self.params.added_specials),
        )  # fmt: skip
        self._model, self._model_hash = None, ""
        roles = {role: i for role, (_, i) in published.roles.items()}
        self._adopt(
            published.pieces, roles, dict(published.roles.values()).get, f"the published {self.name} vocabulary"
        )

    def encode(self, texts: list[str]) -> list[list[int]]:
        return self._loaded().encode(list(texts))

    def decode(self, ids: list[list[int]]) -> list[str]:
        model = self._loaded()
        rows = [[int(i) for i in row] for row in ids]
        return model.decode([[i for i in row if 0 <= i < model.size and i not in self._dropped] for row in rows])

    # -- loading ------------------------------------------------------------------------------

    def _model_file(self) -> Path:
        path = Path(self.params.path)
        if path.is_file():
            return path
        if not path.is_dir():
            raise DataError(f"tokenizers.text.path {str(path)!r} does not exist; expected {self.describe()['files']}")
        for name in MODEL_FILES:
            if (path / name).is_file():
                return path / name
        contents = sorted(p.name for p in path.iterdir())
        raise DataError(
            f"tokenizers.text.path {str(path)!r} holds neither {' nor '.join(MODEL_FILES)} "
            f"(it holds: {', '.join(contents) or 'nothing'})"
        )

    def _load(self) -> None:
        file = self._model_file()
        data = file.read_bytes()
        model = (
            _TokenizerJson(data, file, self.published) if file.suffix == ".json" else _SentencePieceModel(data, file)
        )
        self._adopt(model.size, model.roles, model.piece_id, str(file))
        self._model, self._model_hash = model, hashlib.sha256(data).hexdigest()[:16]

    def _adopt(self, size: int, roles: dict[str, int], piece_id: Callable[[str], int | None], source: str) -> None:
        """Set vocab_size, the role ids and special_ids from a vocabulary of `size` pieces."""
        specials: dict[str, int] = {}
        vocab_size = size
        for text in self.params.added_specials:
            existing = piece_id(text)
            if existing is None:
                specials[text], vocab_size = vocab_size, vocab_size + 1
            else:
                specials[text] = existing
        pad = self.params.pad_id if self.params.pad_id is not None else roles.get("pad")
        if pad is None or "eos" not in roles:
            raise DataError(
                f"{source}: the sequence layout needs pad and eos ids, but the model defines "
                f"{', '.join(f'{r}={i}' for r, i in roles.items()) or 'no role ids'}; "
                "set tokenizers.text.pad_id when it has no pad piece (MeDiM pads with 0)"
            )
        if pad >= vocab_size:
            raise DataError(f"tokenizers.text.pad_id {pad} is outside the vocabulary of {vocab_size} ids ({source})")
        self.vocab_size, self.pad_id, self.eos_id, self.bos_id = vocab_size, pad, roles["eos"], roles.get("bos")
        self.special_ids = specials
        self._dropped = {pad, *roles.values(), *specials.values()}

    def _loaded(self) -> _SentencePieceModel | _TokenizerJson:
        if self._model is None:
            raise TokenizerNotLoaded(f"tokenizer {self.name} has no model loaded: call prepare() first")
        return self._model


@TOKENIZERS.register("llama2_text")
class Llama2TextTokenizer(PretrainedTextTokenizer):
    """Llama-2's tokenizer from a local directory, with MeDiM's <boi> <eoi> <eos> appended (ids 32000-32002).

    Llama-2 has unk 0, bos 1, eos 2 and no pad piece; MeDiM right-pads reports with 0.
    """

    name = "llama2_text"
    published = LLAMA2

    @classmethod
    def example_params(cls, workdir: Path) -> dict[str, Any]:
        """For `medim check`: a folder laid out as Llama-2-7b-hf's with a tiny trained Llama-style tokenizer.model."""
        from medim.conformance.artifacts import write_sentencepiece_dir

        return {"path": str(write_sentencepiece_dir(workdir, "llama"))}

    class Params(PretrainedTextTokenizer.Params):
        added_specials: list[str] = Field(
            ["<boi>", "<eoi>", "<eos>"], description="special tokens appended after the model's pieces (MeDiM's)"
        )
        pad_id: int | None = Field(0, ge=0, description="padding id; MeDiM pads with 0 (Llama-2 has no pad piece)")


@TOKENIZERS.register("gemma_text")
class GemmaTextTokenizer(PretrainedTextTokenizer):
    """Gemma's tokenizer from a local directory (Liquid's text ids): pad 0, eos 1, bos 2, unk 3."""

    name = "gemma_text"
    published = GEMMA

    @classmethod
    def example_params(cls, workdir: Path) -> dict[str, Any]:
        """For `medim check`: a folder holding a tiny trained tokenizer.model with Gemma's role ids."""
        from medim.conformance.artifacts import write_sentencepiece_dir

        return {"path": str(write_sentencepiece_dir(workdir, "gemma"))}
