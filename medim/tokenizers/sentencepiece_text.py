"""SentencePiece text tokenizer: trained on the dataset's training reports, or loaded from a file.

Trained models use ids pad=0, unk=1, bos=2, eos=3, so padding is id 0 as in
MeDiM's layout; a given `model_file` keeps its own ids (and must define pad and
eos, which the sequence layout needs).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Literal

import sentencepiece as spm
from pydantic import Field

from medim.errors import DataError
from medim.io import atomic_write, atomic_write_json, stable_hash
from medim.registry import TOKENIZERS, ComponentParams
from medim.tokenizers.base import TextTokenizer, TokenizerCorpus, TokenizerNotLoaded


@TOKENIZERS.register("sentencepiece")
class SentencePieceTokenizer(TextTokenizer):
    """Text tokenizer: SentencePiece trained on the training reports (cached), or a given .model file."""

    class Params(ComponentParams):
        vocab_size: int = Field(320, ge=8, description="pieces when training (a soft limit for small corpora)")
        model_type: Literal["bpe", "unigram"] = Field(
            "bpe", description="bpe as Llama-2's tokenizer; unigram caps the vocabulary low on small corpora"
        )
        model_file: str | None = Field(None, description="use this SentencePiece .model instead of training")

    def __init__(self, params: Params) -> None:
        self.params = params
        self._processor: spm.SentencePieceProcessor | None = None
        self._model_bytes = b""

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Files this tokenizer reads, for `medim info`."""
        return {"files": "model_file: a SentencePiece .model (optional; trained from the data when absent)"}

    def identity(self) -> dict[str, Any]:
        return {"name": "sentencepiece", "model": stable_hash(self._model_bytes.hex())}

    def needs_corpus(self) -> bool:
        return self.params.model_file is None

    def prepare_shapes(self) -> None:
        self.prepare(None, Path())

    def prepare(self, corpus: TokenizerCorpus | None, cache_dir: Path) -> None:
        """Load `model_file`, or the model cached for (params, corpus), or train and cache one."""
        if self.params.model_file is not None:
            path = Path(self.params.model_file)
            if not path.is_file():
                raise DataError(f"tokenizers.text.model_file {str(path)!r} does not exist")
            self._load(path.read_bytes(), str(path))
            return
        if corpus is None:
            raise DataError("tokenizer 'sentencepiece' without model_file is trained on the reports; give it a corpus")
        key = stable_hash({"params": self.params.model_dump(), "corpus": corpus.identity})
        path = Path(cache_dir) / "tokenizers" / f"sentencepiece-{key}.model"
        if not path.is_file():
            model = self._train(corpus.texts)
            atomic_write(path, lambda tmp: tmp.write_bytes(model))
            atomic_write_json(
                path.with_suffix(".json"), {"params": self.params.model_dump(), "corpus": corpus.identity}
            )
        self._load(path.read_bytes(), str(path))

    def _train(self, texts: list[str]) -> bytes:
        if not texts:
            raise DataError("cannot train the sentencepiece tokenizer: the training split has no reports")
        buffer = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=buffer,
            vocab_size=self.params.vocab_size,
            model_type=self.params.model_type,
            hard_vocab_limit=False,
            character_coverage=1.0,
            pad_id=0,
            unk_id=1,
            bos_id=2,
            eos_id=3,
            num_threads=1,
            minloglevel=2,
        )
        return buffer.getvalue()

    def _load(self, model: bytes, source: str) -> None:
        processor = spm.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(model)
        except Exception as exc:  # sentencepiece raises bare RuntimeErrors/OSErrors
            raise DataError(f"{source} is not a SentencePiece model: {exc}") from None
        if processor.pad_id() < 0 or processor.eos_id() < 0:
            raise DataError(
                f"{source}: the sequence layout needs pad and eos ids, but this model has "
                f"pad_id={processor.pad_id()} eos_id={processor.eos_id()}"
            )
        self._processor = processor
        self._model_bytes = model

    @property
    def processor(self) -> spm.SentencePieceProcessor:
        if self._processor is None:
            raise TokenizerNotLoaded("sentencepiece tokenizer is not prepared: call prepare() first")
        return self._processor

    @property
    def vocab_size(self) -> int:  # type: ignore[override]
        return self.processor.get_piece_size()

    @property
    def pad_id(self) -> int:  # type: ignore[override]
        return self.processor.pad_id()

    @property
    def eos_id(self) -> int:  # type: ignore[override]
        return self.processor.eos_id()

    def encode(self, texts: list[str]) -> list[list[int]]:
        return self.processor.encode(list(texts))

    def decode(self, ids: list[list[int]]) -> list[str]:
        specials = {self.pad_id, self.eos_id, self.processor.bos_id(), self.processor.unk_id()}
        return [self.processor.decode([i for i in row if i not in specials]) for row in ids]
