"""Layouts for pretrained LLM backbones: MeDiM's exact one, and one that reuses Liquid's image rows.

`medim_paper` reproduces MeDiM's released code id for id, so its checkpoint
loads and behaves the same (facts in ARCHITECTURE.md, "Sequence layout"):

    ids:      text pieces 0..V-1 | <boi> <eoi> <eos> (added to the tokenizer) | <mask> | image code c at offset + c
    sequence: <boi> image(N) <eoi> cond(C) text(T) <eos>

`cond` is the tokenized "Image Size: Width is W Height is H." with BOS; the
report segment is BOS + report, right-padded with id 0 (no EOS). As released,
logits are read shifted as from an autoregressive model, text positions holding
the padding id are hidden from attention, and padding is never scored.

`liquid_native` keeps the tokenizer's ids and puts image code c at V + c, which
for Liquid (Gemma's 256000 text ids) are exactly the rows Liquid was pretrained
on for the same Chameleon codes; the mask and <boi>/<eoi> follow, and rows are
padded to a multiple of 64 for speed (padding rows are never sampled: no
position's allowed vocabulary contains them).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from pydantic import Field
from torch import Tensor

from medim.config.modalities import FIXED, IMAGE, TEXT
from medim.errors import ConfigError, DataError
from medim.registry import LAYOUTS, ComponentParams
from medim.tokenizers.base import ImageTokenizer, TextTokenizer, TokenizerNotLoaded
from medim.tokenizers.layouts import CompactLayout, SequenceLayout

logger = logging.getLogger(__name__)

#: The specials MeDiM adds to its Llama-2 tokenizer, in order.
PAPER_SPECIALS = ("<boi>", "<eoi>", "<eos>")
#: Length of BOS + Llama-2's tokens of "Image Size: Width is 512 Height is 512." (digits are single pieces).
DRY_RUN_SIZE_PROMPT_TOKENS = 17


@LAYOUTS.register("medim_paper")
class MedimPaperLayout(SequenceLayout):
    """MeDiM's released layout: `<boi> image <eoi> cond text <eos>`, shifted logits, padding hidden."""

    class Params(ComponentParams):
        max_text_tokens: int = Field(256, ge=2, description="T: report tokens, BOS included (MeDiM: 256)")
        size_prompt: tuple[int, int] | None = Field(
            None,
            description="(W, H) written in the 'Image Size' prompt; null = the tokenizer's image size. "
            "MeDiM writes each source image's original size",
        )

    def __init__(self, params: Params, *, image_tokenizer: ImageTokenizer, text_tokenizer: TextTokenizer) -> None:
        self.params = params
        self.image_tokenizer = image_tokenizer
        self.text_tokenizer = text_tokenizer
        specials = text_tokenizer.special_ids
        missing = [s for s in PAPER_SPECIALS if s not in specials]
        if missing or text_tokenizer.bos_id is None:
            raise ConfigError(
                f"layout 'medim_paper' needs a text tokenizer with a BOS id and the added specials "
                f"{', '.join(PAPER_SPECIALS)} (as tokenizers.text 'llama2_text' adds them); this one lacks "
                f"{', '.join(missing) or 'a BOS id'}"
            )
        self.boi_id, self.eoi_id, self.eos_id = (specials[s] for s in PAPER_SPECIALS)
        text_vocab = text_tokenizer.vocab_size
        self.mask_id = text_vocab
        self.image_offset = text_vocab + 1
        self.vocab_size = self.image_offset + image_tokenizer.codebook_size
        self.cond_ids = self._size_prompt()
        n, c, t = image_tokenizer.tokens_per_image, len(self.cond_ids), params.max_text_tokens
        self.seq_len = n + c + t + 3
        self.image_positions = torch.arange(1, 1 + n)
        self.text_positions = torch.arange(n + 2 + c, n + 2 + c + t)
        self.position_modality = torch.full((self.seq_len,), FIXED)
        self.position_modality[self.image_positions] = IMAGE
        self.position_modality[self.text_positions] = TEXT
        self.vocab_masks = torch.zeros(2, self.vocab_size, dtype=torch.bool)
        self.vocab_masks[IMAGE, self.image_offset :] = True
        self.vocab_masks[TEXT, :text_vocab] = True
        # shifted reading: image token p from hidden p + 1, text token p from hidden p - 1
        self._logit_shift = torch.zeros(self.seq_len, dtype=torch.long)
        self._logit_shift[self.image_positions] = 1
        self._logit_shift[self.text_positions] = -1

    @classmethod
    def example_params(cls, workdir: Path) -> dict[str, Any]:
        """For `medim check`: a 24-token report segment."""
        return {"max_text_tokens": 24}

    @classmethod
    def example_tokenizers(cls) -> dict[str, str]:
        """For `medim check`: MeDiM's report tokenizer, Llama-2's (with its added specials)."""
        return {"text": "llama2_text"}

    def _size_prompt(self) -> list[int]:
        size = self.params.size_prompt or (self.image_tokenizer.image_size, self.image_tokenizer.image_size)
        prompt = f"Image Size: Width is {size[0]} Height is {size[1]}."
        bos = self.text_tokenizer.bos_id
        try:
            return [bos, *self.text_tokenizer.encode([prompt])[0]]
        except TokenizerNotLoaded:  # a dry run without the tokenizer's files: only the length matters
            logger.warning(
                "layout medim_paper: no text tokenizer files (dry run); assuming the size prompt is %d tokens "
                "as with Llama-2",
                DRY_RUN_SIZE_PROMPT_TOKENS,
            )
            return [bos] * DRY_RUN_SIZE_PROMPT_TOKENS

    def logit_positions(self, targets: Tensor) -> Tensor:
        return targets + self._logit_shift.to(targets.device)[targets]

    def attention_mask(self, tokens: Tensor) -> Tensor | None:
        hidden = torch.zeros_like(tokens, dtype=torch.bool)
        text = self.text_positions.to(tokens.device)
        hidden[:, text] = tokens[:, text] == self.text_tokenizer.pad_id
        return ~hidden

    def scored_mask(self, x0: Tensor) -> Tensor | None:
        return self.attention_mask(x0)

    def text_framing(self) -> tuple[list[int], list[int]]:
        return [self.text_tokenizer.bos_id], []

    def pack(self, image_codes: Tensor, text_ids: Tensor) -> Tensor:
        tokens = self._place(image_codes, text_ids, "medim_paper")
        n = len(self.image_positions)
        tokens[:, 0] = self.boi_id
        tokens[:, n + 1] = self.eoi_id
        tokens[:, n + 2 : n + 2 + len(self.cond_ids)] = torch.tensor(self.cond_ids, dtype=torch.long)
        tokens[:, -1] = self.eos_id
        return tokens

    def texts(self, tokens: Tensor) -> list[str]:
        return self.text_tokenizer.decode(tokens[:, self.text_positions].tolist())


@LAYOUTS.register("liquid_native")
class LiquidNativeLayout(CompactLayout):
    """Compact layout with Liquid's ids: image code c at V_text + c (its pretrained image rows), then the specials."""

    class Params(CompactLayout.Params):
        pad_vocab_to: int = Field(64, ge=1, description="embedding rows are padded to a multiple of this")

    @classmethod
    def example_tokenizers(cls) -> dict[str, str]:
        """For `medim check`: Liquid's report tokenizer, Gemma's."""
        return {"text": "gemma_text"}

    def _assign_ids(self, text_vocab: int, codebook_size: int) -> None:
        self.image_offset = text_vocab
        self.mask_id = text_vocab + codebook_size
        self.boi_id, self.eoi_id = self.mask_id + 1, self.mask_id + 2

    def embedding_sources(self, checkpoint_rows: int) -> Tensor:
        image_end = self.image_offset + self.image_tokenizer.codebook_size
        if checkpoint_rows < image_end:
            raise DataError(
                f"layout 'liquid_native' reuses the checkpoint's image rows {self.image_offset}..{image_end - 1}, "
                f"but its vocabulary has only {checkpoint_rows} rows; use a Liquid checkpoint or layout 'medim_paper'"
            )
        return super().embedding_sources(checkpoint_rows)
