"""What a user asks a task to generate, checked in one place, and what comes back.

A `GenerationRequest` is the same for every task: images (optionally with pixel
masks of what to redraw), whole reports or report openings, a count, or an explicit
wish for unconditional samples. From it follow the modalities it *gives* (an image
without a mask, a whole report) and the ones it asks to be *generated* (the rest,
including a masked image or a report to finish). A task answers a request whose
given and generated modalities are its own conditioning and noised ones
(`MaskedDiffusionTask.task_for`).

`GenerationPrompt` is the token-level form a task builds from a request: sequences
[B, L] and which of their positions are known.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from medim.config.modalities import FIXED, MODALITY_CODES, describe_generation
from medim.errors import DataError
from medim.tokenizers.layouts import SequenceLayout


@dataclass(frozen=True)
class GenerationRequest:
    """`count` samples given `images` [B, S, S, 3] uint8 (redrawn under `regenerate` [B, S, S] bool masks),
    whole `reports` or `report_openings` to finish; `unconditional` asks for samples from nothing.

    Build it with `GenerationRequest.of(...)`, which checks it and infers the count.
    """

    count: int
    images: np.ndarray | None = None
    regenerate: np.ndarray | None = None
    reports: tuple[str, ...] | None = None
    report_openings: tuple[str, ...] | None = None
    unconditional: bool = False

    @classmethod
    def of(
        cls,
        *,
        count: int | None = None,
        images: np.ndarray | None = None,
        regenerate: np.ndarray | None = None,
        reports: Sequence[str] | None = None,
        report_openings: Sequence[str] | None = None,
        unconditional: bool = False,
    ) -> GenerationRequest:
        """A checked request; `count` defaults to the number of images, reports or openings given."""
        sizes = {
            what: len(value)
            for what, value in (
                ("images", images),
                ("regenerate masks", regenerate),
                ("reports", reports),
                ("report openings", report_openings),
            )
            if value is not None
        }
        if count is None:
            if not sizes:
                raise DataError("say how many samples to generate (count) when nothing is given")
            count = next(iter(sizes.values()))
        request = cls(
            count=count,
            images=None if images is None else np.asarray(images),
            regenerate=None if regenerate is None else np.asarray(regenerate, dtype=bool),
            reports=None if reports is None else tuple(reports),
            report_openings=None if report_openings is None else tuple(report_openings),
            unconditional=unconditional,
        )
        request.check(sizes)
        return request

    def check(self, sizes: dict[str, int]) -> None:
        """Refuse requests that are empty, inconsistent or ask for nothing (module docstring)."""
        if self.count < 1:
            raise DataError(f"the number of samples must be at least 1, got {self.count}")
        for what, size in sizes.items():
            if size != self.count:
                raise DataError(f"{size} {what} given for {self.count} samples; give one per sample")
        for what, texts in (("report", self.reports), ("report opening", self.report_openings)):
            for index, text in enumerate(texts or ()):
                if not isinstance(text, str) or not text.strip():
                    raise DataError(
                        f"{what} {index} is empty; give its text, or ask for unconditional samples explicitly"
                    )
        if self.reports is not None and self.report_openings is not None:
            raise DataError("give whole reports or report openings, not both")
        if self.regenerate is not None:
            self._check_masks()
        given_anything = any(v is not None for v in (self.images, self.reports, self.report_openings))
        if self.unconditional and given_anything:
            raise DataError("an unconditional request takes no images, reports or openings")
        if not self.unconditional and not given_anything:
            raise DataError(
                "nothing is given to generate from; give images, reports or report openings, "
                "or ask for unconditional samples explicitly"
            )
        if not self.generated():
            raise DataError(
                "images and whole reports are both given, so nothing is left to generate; "
                "mask the image region to redraw or give report openings instead"
            )

    def _check_masks(self) -> None:
        if self.images is None:
            raise DataError("regenerate masks need the images they apply to")
        if self.regenerate.shape != self.images.shape[:3]:
            raise DataError(
                f"regenerate masks of shape {tuple(self.regenerate.shape)} do not fit images of shape "
                f"{tuple(self.images.shape)}; give one [S, S] mask per image"
            )
        empty = [i for i, mask in enumerate(self.regenerate) if not mask.any()]
        if empty:
            raise DataError(f"regenerate mask {empty[0]} selects no pixel: nothing to redraw (True = redraw)")

    def given(self) -> frozenset[str]:
        """Modalities given whole: an image without a mask, a whole report."""
        given = set()
        if self.images is not None and self.regenerate is None:
            given.add("image")
        if self.reports is not None:
            given.add("text")
        return frozenset(given)

    def generated(self) -> frozenset[str]:
        """Modalities (at least partly) generated: every one not given whole."""
        return frozenset(MODALITY_CODES) - self.given()

    def describe(self) -> str:
        """`text given image`: what the request asks, in words."""
        return describe_generation(self.generated())


@dataclass(frozen=True)
class Generated:
    """What a generation returns: the sequences [B, L] and, for each generated modality, its decoded form."""

    tokens: Tensor
    images: np.ndarray | None = None
    reports: list[str] | None = None


class GenerationPrompt:
    """What is given to a generation: sequences [B, L] and which of their positions are known [B, L]."""

    def __init__(self, layout: SequenceLayout, batch: int, device: torch.device) -> None:
        self.layout = layout
        codes = torch.zeros(batch, len(layout.image_positions), dtype=torch.long)
        text = torch.zeros(batch, len(layout.text_positions), dtype=torch.long)
        self.tokens = layout.pack(codes, text).to(device)
        self.known = (layout.position_modality == FIXED).expand(batch, -1).clone().to(device)
        self.tokens[~self.known] = layout.mask_id

    @classmethod
    def from_request(cls, layout: SequenceLayout, request: GenerationRequest, device: torch.device) -> GenerationPrompt:
        """The prompt holding everything `request` gives."""
        prompt = cls(layout, request.count, device)
        if request.reports is not None:
            prompt.with_reports(list(request.reports))
        if request.report_openings is not None:
            prompt.with_report_openings(list(request.report_openings))
        if request.images is not None:
            prompt.with_images(request.images, request.regenerate)
        return prompt

    def with_reports(self, reports: list[str]) -> GenerationPrompt:
        """Give whole reports."""
        self._check_count("reports", len(reports))
        text = self.layout.text_positions
        self.tokens[:, text] = self.layout.pack_text(list(reports)).ids.to(self.tokens.device)
        self.known[:, text] = True
        return self

    def with_report_openings(self, openings: list[str]) -> GenerationPrompt:
        """Give the first words of each report; the rest of it is generated."""
        self._check_count("report openings", len(openings))
        text = self.layout.text_positions
        ids, known = (x.to(self.tokens.device) for x in self.layout.pack_text_prefix(list(openings)))
        self.tokens[:, text] = torch.where(known, ids, self.tokens[:, text])
        self.known[:, text] |= known
        return self

    def with_images(self, images: np.ndarray, regenerate: np.ndarray | None = None) -> GenerationPrompt:
        """Give images [B, S, S, 3]; with pixel masks `regenerate` [B, S, S], the codes under the mask are generated."""
        self._check_count("images", len(images))
        if regenerate is not None:
            self._check_count("regenerate masks", len(regenerate))
        layout = self.layout
        device = self.tokens.device
        codes = layout.image_tokenizer.encode(images) + layout.image_offset
        self.tokens[:, layout.image_positions] = codes.to(device)
        keep = torch.ones(len(images), len(layout.image_positions), dtype=torch.bool)
        if regenerate is not None:
            keep = ~layout.image_tokenizer.token_mask(regenerate)
        self.known[:, layout.image_positions] = keep.to(device)
        return self

    def _check_count(self, what: str, count: int) -> None:
        if count != self.tokens.shape[0]:
            raise DataError(f"{count} {what} given for {self.tokens.shape[0]} samples; give one per sample")
