"""Tokenizer checks (`medim.tokenizers.base`): image tokenizers' codes and pictures, text tokenizers' round trips.

A tokenizer is prepared as an experiment prepares it: one that learns (`needs_corpus()`) is trained
on the synthetic corpus, drawn at its own image size; a file-backed one loads its files.

Image tokenizers: codes [B, tokens_per_image] in [0, codebook_size), the same for the same image
whatever else is in the batch, decoded to uint8 [B, S, S, 3]; `token_mask` gives [B, tokens_per_image].
A tokenizer that declares `CODE_ROUND_TRIP` (a class attribute, True) promises encode(decode(codes))
== codes for the codes it produces, up to codes that decode to the same pixels (duplicate codebook
rows): a nearest-codebook quantizer whose decoder pastes the codebook back guarantees it, a learned
VQGAN decoder need not.

Text tokenizers: plain one-line reports come back exactly from decode(encode(...)); ids and special
ids lie within vocab_size.
"""

from __future__ import annotations

import numpy as np
import torch

from medim.conformance.artifacts import REPORTS, synthetic_corpus
from medim.conformance.checks import Check, Subject, require, shape
from medim.registry import ComponentParams
from medim.tokenizers.base import ImageTokenizer, TextTokenizer, Tokenizer

#: The class attribute by which an image tokenizer declares that its codes round-trip (module docstring).
CODE_ROUND_TRIP = "code_round_trip"
#: Images encoded by the image checks.
IMAGES = 6


class TokenizerSubject(Subject):
    """A tokenizer, prepared by the environment as an experiment would prepare it."""

    noun = "tokenizer"

    def construct(self, params: ComponentParams) -> Tokenizer:
        return self.env.prepare(self.entry.cls(params))

    @property
    def modality(self) -> str:
        return getattr(self.entry.cls, "modality", "")

    def images(self) -> np.ndarray:
        """IMAGES synthetic images at the tokenizer's image size."""
        return synthetic_corpus(self.component.image_size, images=IMAGES, seed=1).images


def _builds(subject: TokenizerSubject) -> str:
    tokenizer = subject.component
    base = ImageTokenizer if subject.modality == "image" else TextTokenizer
    require(
        isinstance(tokenizer, base),
        f"{subject.label}: a tokenizer of modality {subject.modality!r} must be a medim.tokenizers.base."
        f"{base.__name__}, got {type(tokenizer).__name__}",
    )
    if subject.modality == "image":
        return f"{tokenizer.codebook_size} codes, {tokenizer.tokens_per_image} per {tokenizer.image_size}-pixel image"
    return f"{tokenizer.vocab_size} ids (pad {tokenizer.pad_id}, eos {tokenizer.eos_id}, bos {tokenizer.bos_id})"


def _codes(subject: TokenizerSubject) -> str:
    tokenizer = subject.component
    codes = tokenizer.encode(subject.images())
    expected = (IMAGES, tokenizer.tokens_per_image)
    require(
        isinstance(codes, torch.Tensor) and codes.dtype == torch.long and tuple(codes.shape) == expected,
        f"{subject.label}: encode must return a LongTensor [B, tokens_per_image] = {list(expected)} "
        f"(ImageTokenizer.encode), got {type(codes).__name__} {getattr(codes, 'dtype', '')} "
        f"{shape(codes) if hasattr(codes, 'shape') else ''}",
    )
    low, high = int(codes.min()), int(codes.max())
    require(
        low >= 0 and high < tokenizer.codebook_size,
        f"{subject.label}: codes must lie in [0, codebook_size) = [0, {tokenizer.codebook_size}) "
        f"(ImageTokenizer.encode), got {low}..{high}",
    )
    return f"codes {shape(codes)} in [{low}, {high}]"


def _deterministic(subject: TokenizerSubject) -> str:
    tokenizer, images = subject.component, subject.images()
    batch = tokenizer.encode(images)
    again = tokenizer.encode(images)
    require(
        torch.equal(batch, again),
        f"{subject.label}: encode must be deterministic (ImageTokenizer.encode), got "
        f"{int((batch != again).sum())} codes that differ between two calls",
    )
    alone = torch.cat([tokenizer.encode(images[i : i + 1]) for i in range(len(images))])
    require(
        torch.equal(batch, alone),
        f"{subject.label}: an image's codes must not depend on the other images of its batch (ImageTokenizer.encode), "
        f"got {int((batch != alone).sum())} codes that differ between one batch and one image at a time",
    )
    return "same codes on every call and for every batch"


def _decode(subject: TokenizerSubject) -> str:
    tokenizer = subject.component
    pictures = tokenizer.decode(tokenizer.encode(subject.images()))
    size = tokenizer.image_size
    expected = (IMAGES, size, size, 3)
    require(
        isinstance(pictures, np.ndarray) and pictures.dtype == np.uint8 and pictures.shape == expected,
        f"{subject.label}: decode must return uint8 images [B, S, S, 3] = {list(expected)} (ImageTokenizer.decode), "
        f"got {type(pictures).__name__} {getattr(pictures, 'dtype', '')} "
        f"{shape(pictures) if hasattr(pictures, 'shape') else ''}",
    )
    return f"uint8 images {shape(pictures)}"


def _token_mask(subject: TokenizerSubject) -> str:
    tokenizer = subject.component
    size = tokenizer.image_size
    pixels = np.zeros((2, size, size), dtype=bool)
    pixels[0, : size // 2, : size // 2] = True
    mask = tokenizer.token_mask(pixels)
    expected = (2, tokenizer.tokens_per_image)
    require(
        isinstance(mask, torch.Tensor) and mask.dtype == torch.bool and tuple(mask.shape) == expected,
        f"{subject.label}: token_mask must return bool [B, tokens_per_image] = {list(expected)} "
        f"(ImageTokenizer.token_mask), got {getattr(mask, 'dtype', type(mask).__name__)} "
        f"{shape(mask) if hasattr(mask, 'shape') else ''}",
    )
    require(
        bool(mask[0].any()) and not bool(mask[1].any()),
        f"{subject.label}: token_mask must mark the codes under True pixels and only those "
        f"(ImageTokenizer.token_mask), got {int(mask[0].sum())} codes for a quarter of the image and "
        f"{int(mask[1].sum())} for an empty mask",
    )
    return f"{int(mask[0].sum())} of {tokenizer.tokens_per_image} codes under a quarter of the image"


def _round_trip(subject: TokenizerSubject) -> str:
    tokenizer = subject.component
    codes = tokenizer.encode(subject.images())
    pictures = tokenizer.decode(codes)
    again = tokenizer.encode(pictures)
    changed = int((codes != again).sum())
    require(
        changed == 0 or np.array_equal(tokenizer.decode(again), pictures),
        f"{subject.label}: declares {CODE_ROUND_TRIP}, so encode(decode(codes)) must equal codes, up to codes "
        f"that decode to the same pixels (medim.conformance.tokenizers), got {changed} of {codes.numel()} codes "
        f"changed, and their pictures too",
    )
    duplicates = f" ({changed} swapped for codes with the same pixels)" if changed else ""
    return f"{codes.numel()} codes survive decode and encode{duplicates}"


def _text_round_trip(subject: TokenizerSubject) -> str:
    tokenizer = subject.component
    ids = tokenizer.encode(list(REPORTS))
    require(
        len(ids) == len(REPORTS) and all(isinstance(i, int) for row in ids for i in row),
        f"{subject.label}: encode must return one list of int ids per text (TextTokenizer.encode), got {ids!r:.120}",
    )
    outside = [i for row in ids for i in row if not 0 <= i < tokenizer.vocab_size]
    require(
        not outside,
        f"{subject.label}: encoded ids must lie in [0, vocab_size) = [0, {tokenizer.vocab_size}) "
        f"(TextTokenizer.encode), got {outside[:5]}",
    )
    texts = tokenizer.decode(ids)
    require(
        len(texts) == len(REPORTS),
        f"{subject.label}: decode must return one text per id list (TextTokenizer.decode), got {len(texts)} "
        f"for {len(REPORTS)}",
    )
    for want, got in zip(REPORTS, texts):
        require(
            got == want,
            f"{subject.label}: decode(encode(texts)) must give plain one-line reports back exactly "
            f"(TextTokenizer.decode), got {got!r} for {want!r}",
        )
    return f"{len(REPORTS)} reports round-trip exactly"


def _special_ids(subject: TokenizerSubject) -> str:
    tokenizer = subject.component
    roles = {"pad_id": tokenizer.pad_id, "eos_id": tokenizer.eos_id}
    if tokenizer.bos_id is not None:
        roles["bos_id"] = tokenizer.bos_id
    roles.update({f"special {text!r}": i for text, i in tokenizer.special_ids.items()})
    outside = {role: i for role, i in roles.items() if not (isinstance(i, int) and 0 <= i < tokenizer.vocab_size)}
    require(
        not outside,
        f"{subject.label}: special ids must lie in [0, vocab_size) = [0, {tokenizer.vocab_size}) "
        f"(TextTokenizer), got {outside}",
    )
    return ", ".join(f"{role} {i}" for role, i in roles.items())


def _image(subject: TokenizerSubject) -> bool:
    return subject.modality == "image"


def _text(subject: TokenizerSubject) -> bool:
    return subject.modality == "text"


def _declares_round_trip(subject: TokenizerSubject) -> bool:
    return _image(subject) and bool(getattr(subject.entry.cls, CODE_ROUND_TRIP, False))


SUBJECT = TokenizerSubject
CHECKS: tuple[Check[TokenizerSubject], ...] = (
    Check("builds and prepares", _builds),
    Check("encode gives codes [B, N] in [0, K)", _codes, _image),
    Check("codes are deterministic and batch-independent", _deterministic, _image),
    Check("decode gives uint8 images [B, S, S, 3]", _decode, _image),
    Check("token_mask gives [B, N]", _token_mask, _image),
    Check("codes round-trip", _round_trip, _declares_round_trip),
    Check("reports round-trip", _text_round_trip, _text),
    Check("special ids within vocab_size", _special_ids, _text),
)
