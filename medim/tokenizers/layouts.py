"""Sequence layouts: how an image and a report share one token sequence and one vocabulary.

A layout owns every position and id decision, so tasks, losses and samplers
never hard-code offsets: which positions hold image codes or report tokens,
where each modality's ids live in the joint vocabulary, the mask id, which
positions may attend, and which hidden state predicts which position.

Notation: N image tokens, T report tokens, L sequence length, V joint vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pydantic import Field
from torch import Tensor

from medim.config.modalities import FIXED, IMAGE, TEXT
from medim.errors import DataError
from medim.registry import LAYOUTS, ComponentParams
from medim.tokenizers.base import ImageTokenizer, TextTokenizer


@dataclass(frozen=True)
class PackedText:
    """Report ids laid into fixed-length segments [B, T]: how many reports were cut short, and each row's
    used length [B] (framing included, padding not)."""

    ids: Tensor
    truncated: int
    lengths: Tensor


class SequenceLayout:
    """Base class: positions, vocabulary slices and conversions between tokens and modalities."""

    image_tokenizer: ImageTokenizer
    text_tokenizer: TextTokenizer
    vocab_size: int
    mask_id: int
    seq_len: int
    image_offset: int
    image_positions: Tensor
    text_positions: Tensor
    position_modality: Tensor
    vocab_masks: Tensor  # [2, V] bool: ids a position of each modality may hold

    def allowed_vocab(self, positions: Tensor) -> Tensor:
        """[..., V] bool: the ids each given position may take (never the mask or the other modality)."""
        return self.vocab_masks[self.position_modality[positions]]

    def vocab_range(self, modality: int) -> tuple[int, int] | None:
        """[lo, hi): the ids a position of `modality` may take when they are one contiguous block, else None
        (a loss or sampler then needs logits only over that slice of the vocabulary)."""
        ranges = self.__dict__.setdefault("_vocab_ranges", {})
        if modality not in ranges:
            ids = self.vocab_masks[modality].nonzero()[:, 0]
            contiguous = len(ids) > 0 and int(ids[-1]) - int(ids[0]) + 1 == len(ids)
            ranges[modality] = (int(ids[0]), int(ids[-1]) + 1) if contiguous else None
        return ranges[modality]

    def logit_positions(self, targets: Tensor) -> Tensor:
        """Positions whose hidden state predicts the given target positions (identity unless shifted)."""
        return targets

    def attention_mask(self, tokens: Tensor) -> Tensor | None:
        """[B, L] bool of positions others may attend to, or None when all may."""
        return None

    def scored_mask(self, x0: Tensor) -> Tensor | None:
        """[B, L] bool of positions whose clean token the loss may score, or None for all of them."""
        return None

    def scorable(self, x0: Tensor, noisable: Tensor) -> Tensor:
        """[B, L] bool: the noisable positions whose clean token a loss may score (`scored_mask` applied)."""
        scored = self.scored_mask(x0)
        return noisable if scored is None else noisable & scored

    def embedding_sources(self, checkpoint_rows: int) -> Tensor:
        """For each of the V embedding rows, the pretrained checkpoint row it starts from, or -1 for a new row.

        Default: row i comes from checkpoint row i where the checkpoint has one. The
        text tokenizer's own ids must all exist there (they are the LLM's words);
        added specials, the mask and image codes beyond the checkpoint are new rows.
        """
        needed = _pretrained_text_rows(self.text_tokenizer)
        if checkpoint_rows < needed:
            raise DataError(
                f"the checkpoint's vocabulary has {checkpoint_rows} rows but the text tokenizer uses ids up to "
                f"{needed - 1}; pick the tokenizer the checkpoint was trained with"
            )
        ids = torch.arange(self.vocab_size)
        return torch.where(ids < checkpoint_rows, ids, torch.full_like(ids, -1))

    def pack(self, image_codes: Tensor, text_ids: Tensor) -> Tensor:
        """Whole sequences [B, L] from codes [B, N] and packed report ids [B, T]."""
        raise NotImplementedError

    def _place(self, image_codes: Tensor, text_ids: Tensor, name: str) -> Tensor:
        """Sequences [B, L] holding the image codes (as ids) and report ids; fixed positions left for the caller."""
        batch = image_codes.shape[0]
        n, t = len(self.image_positions), len(self.text_positions)
        if image_codes.shape != (batch, n) or text_ids.shape != (batch, t):
            raise DataError(
                f"layout {name!r} expects image codes [B, {n}] and text ids [B, {t}], "
                f"got {tuple(image_codes.shape)} and {tuple(text_ids.shape)}"
            )
        tokens = torch.empty(batch, self.seq_len, dtype=torch.long)
        tokens[:, self.image_positions] = image_codes.long() + self.image_offset
        tokens[:, self.text_positions] = text_ids.long()
        return tokens

    def text_framing(self) -> tuple[list[int], list[int]]:
        """(ids before, ids after) each report in its segment, e.g. ([], [EOS]) or ([BOS], [])."""
        raise NotImplementedError

    def _segments(self, texts: list[str], framing: tuple[list[int], list[int]]) -> PackedText:
        """Reports as `prefix + ids + suffix` cut to T (the suffix kept), right-padded with the pad id."""
        t = len(self.text_positions)
        prefix, suffix = framing
        room = t - len(prefix) - len(suffix)
        ids = torch.full((len(texts), t), self.text_tokenizer.pad_id, dtype=torch.long)
        lengths = torch.zeros(len(texts), dtype=torch.long)
        truncated = 0
        for row, piece_ids in enumerate(self.text_tokenizer.encode(list(texts))):
            truncated += len(piece_ids) > room
            segment = [*prefix, *piece_ids[:room], *suffix]
            ids[row, : len(segment)] = torch.tensor(segment, dtype=torch.long)
            lengths[row] = len(segment)
        return PackedText(ids, truncated, lengths)

    def pack_text(self, texts: list[str]) -> PackedText:
        """Tokenize reports into the layout's fixed-length text segment."""
        return self._segments(texts, self.text_framing())

    def pack_text_prefix(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        """Report openings as (ids [B, T], known [B, T]): each opening where its report would start,
        the rest of the segment to be generated (a report to be finished)."""
        packed = self._segments(texts, (self.text_framing()[0], []))
        full = (packed.lengths >= packed.ids.shape[1]).nonzero()[:, 0].tolist()
        if full:
            raise DataError(
                f"report opening {full[0]} ({texts[full[0]][:40]!r}...) fills the whole "
                f"{packed.ids.shape[1]}-token report "
                f"segment, leaving nothing to generate; shorten it"
            )
        return packed.ids, torch.arange(packed.ids.shape[1])[None] < packed.lengths[:, None]

    def image_codes(self, tokens: Tensor) -> Tensor:
        """Image codes [B, N] (tokenizer ids) read from sequences [B, L].

        An id outside the image vocabulary (only MeDiM's raw unguided draws put one at an image position)
        becomes the nearest code, as MeDiM's own decoding clamps it.
        """
        codes = tokens[:, self.image_positions] - self.image_offset
        return codes.clamp(0, self.image_tokenizer.codebook_size - 1)

    def texts(self, tokens: Tensor) -> list[str]:
        """Report strings read from sequences [B, L]."""
        raise NotImplementedError


def _pretrained_text_rows(tokenizer: TextTokenizer) -> int:
    """Number of leading text ids that are the tokenizer's own pieces (added specials at the end excluded)."""
    rows = tokenizer.vocab_size
    added = set(tokenizer.special_ids.values())
    while rows - 1 in added:
        rows -= 1
    return rows


@LAYOUTS.register("compact")
class CompactLayout(SequenceLayout):
    """`<boi> image(N) <eoi> report(T)`: report ids, then <boi>/<eoi>/<mask>, then image codes.

    The report segment is the tokenized text, an EOS, then padding to T. Padding
    is an ordinary target (the model learns where a report ends), so every
    position attends to every other and no logit shift is used.
    """

    class Params(ComponentParams):
        max_text_tokens: int = Field(48, ge=2, description="T: report tokens per sequence, EOS included")
        pad_vocab_to: int = Field(8, ge=1, description="embedding rows are padded to a multiple of this")

    def __init__(self, params: Params, *, image_tokenizer: ImageTokenizer, text_tokenizer: TextTokenizer) -> None:
        self.params = params
        self.image_tokenizer = image_tokenizer
        self.text_tokenizer = text_tokenizer
        text_vocab = text_tokenizer.vocab_size
        self._assign_ids(text_vocab, image_tokenizer.codebook_size)
        used = max(self.image_offset + image_tokenizer.codebook_size, self.mask_id + 1, self.eoi_id + 1)
        self.vocab_size = -(-used // params.pad_vocab_to) * params.pad_vocab_to
        n, t = image_tokenizer.tokens_per_image, params.max_text_tokens
        self.seq_len = n + t + 2
        self.image_positions = torch.arange(1, 1 + n)
        self.text_positions = torch.arange(n + 2, n + 2 + t)
        self.position_modality = torch.full((self.seq_len,), FIXED)
        self.position_modality[self.image_positions] = IMAGE
        self.position_modality[self.text_positions] = TEXT
        self.vocab_masks = torch.zeros(2, self.vocab_size, dtype=torch.bool)
        self.vocab_masks[IMAGE, self.image_offset : self.image_offset + image_tokenizer.codebook_size] = True
        self.vocab_masks[TEXT, :text_vocab] = True

    def _assign_ids(self, text_vocab: int, codebook_size: int) -> None:
        """Set boi_id, eoi_id, mask_id and image_offset: here the three specials sit between text and image."""
        self.boi_id, self.eoi_id, self.mask_id = text_vocab, text_vocab + 1, text_vocab + 2
        self.image_offset = text_vocab + 3

    def text_framing(self) -> tuple[list[int], list[int]]:
        return [], [self.text_tokenizer.eos_id]

    def pack(self, image_codes: Tensor, text_ids: Tensor) -> Tensor:
        tokens = self._place(image_codes, text_ids, "compact")
        tokens[:, 0] = self.boi_id
        tokens[:, len(self.image_positions) + 1] = self.eoi_id
        return tokens

    def texts(self, tokens: Tensor) -> list[str]:
        rows = []
        for row in tokens[:, self.text_positions].tolist():
            end = row.index(self.text_tokenizer.eos_id) if self.text_tokenizer.eos_id in row else len(row)
            rows.append([i for i in row[:end] if i < self.text_tokenizer.vocab_size])
        return self.text_tokenizer.decode(rows)
