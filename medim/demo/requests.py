"""One demo request and its answer, independent of the web page that sends them.

A `DemoRequest` holds what one user asked in one of the app's modes; `prepared` turns
it, checked, into the per-sample parts of a `GenerationRequest`. Requests whose
`batch_key` is equal differ only in their inputs and seed, so waiting ones are
answered by one generation (each sample draws from its own seed, so nobody's
result depends on who else was waiting).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np
from PIL import Image

from medim.demo.inputs import cut_notice, model_picture, painted_region, report_text
from medim.errors import DataError
from medim.experiment import Experiment
from medim.tasks.request import GenerationRequest


class Mode(str, Enum):
    """What the user asks for (the app's tabs)."""

    REPORT_TO_IMAGE = "report_to_image"  # a report -> an image
    IMAGE_TO_REPORT = "image_to_report"  # an image -> a report
    PAIR = "pair"  # an optional first sentence -> an image-report pair (joint generation)
    FINISH_REPORT = "finish_report"  # an image and the kept start of a report -> the rest of the report
    REDRAW_REGION = "redraw_region"  # an image with a painted region (and optionally a report) -> the region redrawn


@dataclass(frozen=True)
class Decoding:
    """How to decode: the sampler (by registered name), its steps, the guidance weight and the seed."""

    sampler: str
    steps: int
    cfg_scale: float
    seed: int

    def check(self) -> None:
        """Refuse settings no sampler can use."""
        if self.steps < 1:
            raise DataError(f"steps must be at least 1, got {self.steps}")
        if not self.cfg_scale >= 0:  # also refuses nan
            raise DataError(f"guidance must be a weight >= 0 (0 = off), got {self.cfg_scale}")
        if self.seed < 0:
            raise DataError(f"the seed must be a whole number >= 0, got {self.seed}")


@dataclass(frozen=True)
class DemoRequest:
    """One user's request: the mode, its inputs (a picture as uploaded, painted layers, text) and the decoding."""

    mode: Mode
    decoding: Decoding
    text: str | None = None
    picture: Image.Image | None = None
    painted: tuple[np.ndarray, ...] = ()


@dataclass(frozen=True)
class PreparedRequest:
    """A checked request as one sample of a `GenerationRequest` (arrays without the batch axis)."""

    request: DemoRequest
    image: np.ndarray | None = None
    region: np.ndarray | None = None
    report: str | None = None
    opening: str | None = None
    notices: tuple[str, ...] = ()

    @property
    def batch_key(self) -> tuple:
        """Requests with equal keys are answered by one generation."""
        parts = tuple(value is not None for value in (self.image, self.region, self.report, self.opening))
        return (
            self.request.mode,
            self.request.decoding.sampler,
            self.request.decoding.steps,
            self.request.decoding.cfg_scale,
            parts,
        )


@dataclass
class DemoResult:
    """The answer: the image and/or report, what the parser reads in the report, the denoising as it went,
    and notices; or only `error`, the message to show."""

    image: np.ndarray | None = None
    report: str | None = None
    given_image: np.ndarray | None = None
    findings: frozenset[str] | None = None
    true_findings: frozenset[str] | None = None
    image_states: list[np.ndarray] = field(default_factory=list)
    report_states: list[str] = field(default_factory=list)
    notices: tuple[str, ...] = ()
    seconds: float = 0.0
    error: str | None = None


def prepare(request: DemoRequest, experiment: Experiment) -> PreparedRequest:
    """The request checked against the model (a `DataError` names what is wrong)."""
    request.decoding.check()
    layout, tokenizer = experiment.layout, experiment.image_tokenizer
    mode = request.mode
    if mode is Mode.REPORT_TO_IMAGE:
        report = report_text(request.text)
        return PreparedRequest(request, report=report, notices=_notices(cut_notice(layout, report)))
    if mode is Mode.PAIR:
        opening = (request.text or "").strip() or None
        notice = None if opening is None else cut_notice(layout, opening, "first sentence")
        return PreparedRequest(request, opening=opening, notices=_notices(notice))
    image = model_picture(request.picture, tokenizer)
    if mode is Mode.IMAGE_TO_REPORT:
        return PreparedRequest(request, image=image)
    if mode is Mode.FINISH_REPORT:
        opening = report_text(request.text, "start of the report to keep")
        return PreparedRequest(request, image=image, opening=opening)
    region = painted_region(list(request.painted), request.picture.size, tokenizer.image_size)
    report = (request.text or "").strip() or None
    notice = None if report is None else cut_notice(layout, report)
    return PreparedRequest(request, image=image, region=region, report=report, notices=_notices(notice))


def generation_request(batch: list[PreparedRequest]) -> GenerationRequest:
    """One `GenerationRequest` for requests of one batch key, a sample each, in order."""

    def stacked(values: list) -> list | None:
        return None if values[0] is None else values

    first = batch[0]
    images = stacked([p.image for p in batch])
    regions = stacked([p.region for p in batch])
    return GenerationRequest.of(
        count=len(batch),
        images=None if images is None else np.stack(images),
        regenerate=None if regions is None else np.stack(regions),
        reports=stacked([p.report for p in batch]),
        report_openings=stacked([p.opening for p in batch]),
        unconditional=first.request.mode is Mode.PAIR and first.opening is None,
    )


def _notices(*notices: str | None) -> tuple[str, ...]:
    return tuple(n for n in notices if n)
