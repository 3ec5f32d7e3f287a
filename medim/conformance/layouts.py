"""Layout checks (`medim.tokenizers.layouts.SequenceLayout`): positions, vocabularies, packing and reading back.

A layout is built over the environment's tokenizers, or over those its class's optional
`example_tokenizers()` hook names by modality (MeDiM's layout needs Llama-2's tokenizer, say), each
built from its own `example_params`.
Four corpus pairs are packed into sequences and read back: image codes and reports must come back
as they went in, and every packed token must be one its position may hold.
"""

from __future__ import annotations

import torch

from medim.config.modalities import FIXED, IMAGE, TEXT
from medim.conformance.checks import Check, Subject, example_params, require, shape
from medim.registry import TOKENIZERS, ComponentParams
from medim.tokenizers.base import Tokenizer
from medim.tokenizers.layouts import SequenceLayout

#: Corpus pairs packed by the checks.
PAIRS = 4


class LayoutSubject(Subject):
    """A layout over the environment's tokenizers (or the ones its `example_tokenizers` hook names by modality)."""

    noun = "layout"

    def construct(self, params: ComponentParams) -> SequenceLayout:
        tokenizers: dict[str, Tokenizer] = {"image": self.env.image_tokenizer, "text": self.env.text_tokenizer}
        hook = getattr(self.entry.cls, "example_tokenizers", None)
        for modality, name in (hook() if callable(hook) else {}).items():
            entry = TOKENIZERS.get(name)
            params_of = example_params(entry, TOKENIZERS, self.example_folder(f"tokenizer-{name}"), {})
            tokenizers[modality] = self.env.prepare(entry.cls(params_of))
        return self.entry.cls(params, image_tokenizer=tokenizers["image"], text_tokenizer=tokenizers["text"])


def _builds(subject: LayoutSubject) -> str:
    layout = subject.component
    require(
        isinstance(layout, SequenceLayout),
        f"{subject.label}: must be a medim.tokenizers.layouts.SequenceLayout, got {type(layout).__name__}",
    )
    return (
        f"{layout.vocab_size} ids, {layout.seq_len} positions ({len(layout.image_positions)} image, "
        f"{len(layout.text_positions)} text), mask id {layout.mask_id}"
    )


def _positions(subject: LayoutSubject) -> str:
    layout = subject.component
    image, text, length = layout.image_positions, layout.text_positions, layout.seq_len
    n = layout.image_tokenizer.tokens_per_image
    require(
        len(image) == n,
        f"{subject.label}: image_positions must hold one position per image code, tokens_per_image = {n} "
        f"(SequenceLayout.image_positions), got {len(image)}",
    )
    every = torch.cat([image, text])
    require(
        bool(((every >= 0) & (every < length)).all()) and len(set(every.tolist())) == len(every),
        f"{subject.label}: image and text positions must be distinct positions within the sequence [0, {length}) "
        f"(SequenceLayout.image_positions, text_positions), got {len(every) - len(set(every.tolist()))} shared and "
        f"range [{every.min()}, {every.max()}]",
    )
    expected = torch.full((length,), FIXED)
    expected[image], expected[text] = IMAGE, TEXT
    modality = layout.position_modality
    require(
        tuple(modality.shape) == (length,) and torch.equal(modality, expected),
        f"{subject.label}: position_modality [L] must say IMAGE at image positions, TEXT at text positions and "
        f"FIXED elsewhere (SequenceLayout.position_modality), got {shape(modality)} with "
        f"{int((modality != expected).sum()) if modality.shape == expected.shape else length} disagreements",
    )
    return f"{len(image)} image and {len(text)} text positions within {length}, disjoint"


def _vocabulary(subject: LayoutSubject) -> str:
    layout = subject.component
    masks, size = layout.vocab_masks, layout.vocab_size
    require(
        tuple(masks.shape) == (2, size) and masks.dtype == torch.bool,
        f"{subject.label}: vocab_masks must be bool [2, V] = [2, {size}] (SequenceLayout.vocab_masks), "
        f"got {masks.dtype} {shape(masks)}",
    )
    both = int((masks[IMAGE] & masks[TEXT]).sum())
    require(
        both == 0,
        f"{subject.label}: the image and text vocabularies must be disjoint (a report position never draws an "
        f"image code; SequenceLayout.vocab_masks), got {both} ids allowed to both",
    )
    inside = 0 <= layout.mask_id < size
    require(
        inside and not bool(masks[:, layout.mask_id].any()),
        f"{subject.label}: the mask id must be one of the {size} vocabulary ids and one no position may take "
        f"(SequenceLayout.mask_id), got mask id {layout.mask_id}"
        + (", which a position may take" if inside else ", outside the vocabulary"),
    )
    return f"{int(masks[IMAGE].sum())} image ids and {int(masks[TEXT].sum())} text ids, disjoint, mask excluded"


def _round_trip(subject: LayoutSubject) -> str:
    layout, corpus = subject.component, subject.env.corpus
    codes = layout.image_tokenizer.encode(corpus.images[:PAIRS])
    reports = list(corpus.texts[:PAIRS])
    tokens = layout.pack(codes, layout.pack_text(reports).ids)
    require(
        tuple(tokens.shape) == (PAIRS, layout.seq_len),
        f"{subject.label}: pack must return sequences [B, L] = [{PAIRS}, {layout.seq_len}] (SequenceLayout.pack), "
        f"got {shape(tokens)}",
    )
    require(
        torch.equal(layout.image_codes(tokens), codes),
        f"{subject.label}: image_codes(pack(codes, ...)) must give the codes back (SequenceLayout.image_codes), "
        f"got {int((layout.image_codes(tokens) != codes).sum())} different codes",
    )
    for want, got in zip(reports, layout.texts(tokens)):
        require(
            " ".join(got.split()) == want,
            f"{subject.label}: texts(pack(..., pack_text(reports))) must give the reports back "
            f"(SequenceLayout.texts), got {got!r} for {want!r}",
        )
    generated = (layout.position_modality >= 0).nonzero()[:, 0]
    inside = bool(((tokens >= 0) & (tokens < layout.vocab_size)).all())
    allowed = inside and bool(layout.allowed_vocab(generated).gather(1, tokens[:, generated].T).all())
    require(
        allowed,
        f"{subject.label}: every packed image code and report id must be an id its position may hold "
        f"(SequenceLayout.allowed_vocab), got ids outside the position's vocabulary",
    )
    return f"{PAIRS} pairs packed {shape(tokens)} and read back"


def _logit_positions(subject: LayoutSubject) -> str:
    layout = subject.component
    targets = torch.cat([layout.image_positions, layout.text_positions])
    read = layout.logit_positions(targets)
    require(
        read.shape == targets.shape and bool(((read >= 0) & (read < layout.seq_len)).all()),
        f"{subject.label}: logit_positions must map each target position to a position in [0, {layout.seq_len}) "
        f"(SequenceLayout.logit_positions), got {shape(read)} in [{read.min()}, {read.max()}]",
    )
    shifted = int((read != targets).sum())
    return f"{'identity' if not shifted else f'{shifted} positions read shifted'}, within the sequence"


def _masks(subject: LayoutSubject) -> str:
    layout = subject.component
    tokens = subject.env.sequences(PAIRS, layout)
    seen = []
    for what in ("attention_mask", "scored_mask"):
        mask = getattr(layout, what)(tokens)
        require(
            mask is None or (mask.dtype == torch.bool and tuple(mask.shape) == tuple(tokens.shape)),
            f"{subject.label}: {what} must be None or bool [B, L] = {shape(tokens)} (SequenceLayout.{what}), "
            f"got {getattr(mask, 'dtype', type(mask).__name__)} {shape(mask) if hasattr(mask, 'shape') else ''}",
        )
        seen.append(f"{what} {'None' if mask is None else shape(mask)}")
    return ", ".join(seen)


SUBJECT = LayoutSubject
CHECKS: tuple[Check[LayoutSubject], ...] = (
    Check("builds", _builds),
    Check("image and text positions", _positions),
    Check("vocabulary masks", _vocabulary),
    Check("pack, then read codes and reports back", _round_trip),
    Check("logit positions within the sequence", _logit_positions),
    Check("attention and scored masks", _masks),
)
