"""Feature-extractor checks (`medim.evaluation.image_metrics.extractor.FeatureExtractor`): weights, shapes, batching.

An extractor is built from the weights file its `example_params(folder)` hook writes in the released
format (random values). It must name the file it needs and refuse a missing one with an error naming
that file, give one finite float32 feature vector per uint8 image whatever the image size, give each
image the same features whatever batch it comes in, and refuse images that are not uint8 RGB. When
an optional package it imports is missing here, the first check says which and how to install it,
and the rest are skipped.

Whether a built-in's features equal its reference implementation's is tested against that
implementation in tests/evaluation/image_metrics/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medim.conformance.checks import Check, Subject, require
from medim.evaluation.image_metrics.extractor import FeatureExtractor
from medim.evaluation.image_metrics.weights import WeightsError
from medim.registry import ComponentParams

#: Image sides the features are asked for: a small square and a larger one (extractors resize inside).
SIDES = (32, 80)
#: Images a side; batch invariance compares one batch of all with batches of one.
COUNT = 3
#: Agreement asked between batched and one-at-a-time features (float32 convolutions differ by batch layout).
TOLERANCE = 1e-4


def _images(side: int, seed: int) -> np.ndarray:
    """COUNT uint8 RGB images [COUNT, side, side, 3]: smooth gradients with noise, drawn from `seed`."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, side)[None, :, None] * rng.uniform(0.2, 1.0, (COUNT, 1, 1, 3))[:, 0][:, None]
    noisy = ramp + rng.normal(0, 20, (COUNT, side, side, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


class FeatureExtractorSubject(Subject):
    """A feature extractor built on CPU from its example weights file."""

    noun = "feature extractor"

    def construct(self, params: ComponentParams) -> FeatureExtractor:
        return self.entry.cls(params, device="cpu", where=f"{self.entry.name}.weights", name=self.entry.name)

    def missing(self) -> list[str]:
        """Why its optional packages cannot be imported here; empty when they can."""
        check = getattr(self.entry.cls, "missing_requirements", None)
        return check() if callable(check) else []

    def can_build(self) -> bool:
        return not self.missing()


def _builds(subject: FeatureExtractorSubject) -> str:
    missing = subject.missing()
    if missing:
        return f"cannot build here, the other checks skipped: {'; '.join(missing)}"
    extractor = subject.component
    require(
        isinstance(extractor, FeatureExtractor),
        f"{subject.label}: must be a medim.evaluation.image_metrics.extractor.FeatureExtractor, got "
        f"{type(extractor).__name__}",
    )
    named = {key: getattr(type(extractor), key, None) for key in ("weights_file", "weights_source")}
    require(
        all(isinstance(value, str) and value for value in named.values()),
        f"{subject.label}: needs `weights_file` (the released file's name) and `weights_source` (where it is "
        f"published) as non-empty strings, got {named}",
    )
    return f"from {Path(str(subject.params.weights)).name} (released as {named['weights_file']})"


def _refuses_missing_weights(subject: FeatureExtractorSubject) -> str:
    absent = subject.example_folder("missing_weights") / "absent.pth"
    params = subject.params.model_copy(update={"weights": str(absent)})
    try:
        subject.construct(params)
    except WeightsError as exc:
        require(
            subject.entry.cls.weights_file in str(exc),
            f"{subject.label}: the error for a missing weights file must name the file it expects "
            f"({subject.entry.cls.weights_file}), got: {exc}",
        )
        return "a missing file is a WeightsError naming the expected file"
    require(False, f"{subject.label}: building from {absent} (absent) must raise WeightsError, it built")
    return ""


def _features(subject: FeatureExtractorSubject) -> dict[int, np.ndarray]:
    return {side: subject.component.features(_images(side, seed=side), batch_size=COUNT) for side in SIDES}


def _features_per_image(subject: FeatureExtractorSubject) -> str:
    found = _features(subject)
    shapes = {side: features.shape for side, features in found.items()}
    dims = {shape[1] if len(shape) == 2 else None for shape in shapes.values()}
    require(
        all(len(shape) == 2 and shape[0] == COUNT for shape in shapes.values()) and len(dims) == 1,
        f"{subject.label}: features(images [N, H, W, 3]) must be [N, D] with the same D for every image size, got "
        f"{ {f'{side}x{side}': list(shape) for side, shape in shapes.items()} }",
    )
    bad = [side for side, features in found.items() if features.dtype != np.float32 or not np.isfinite(features).all()]
    require(not bad, f"{subject.label}: features must be finite float32, got otherwise at sides {bad}")
    return f"[{COUNT}, {dims.pop()}] float32 at {' and '.join(f'{side}x{side}' for side in SIDES)}"


def _batch_invariant(subject: FeatureExtractorSubject) -> str:
    images = _images(SIDES[0], seed=SIDES[0])
    together = subject.component.features(images, batch_size=COUNT)
    alone = subject.component.features(images, batch_size=1)
    scale = max(float(np.abs(together).max()), 1e-12)
    gap = float(np.abs(together - alone).max()) / scale
    require(
        gap <= TOLERANCE,
        f"{subject.label}: an image's features must not depend on its batch: batch_size={COUNT} vs 1 differ by "
        f"{gap:.2e} relative to the largest feature (allowed {TOLERANCE:g}); eval mode, no batch statistics",
    )
    return f"batches of {COUNT} and of 1 agree to {gap:.1e}"


def _refuses_bad_images(subject: FeatureExtractorSubject) -> str:
    images = _images(SIDES[0], seed=1)
    bad: dict[str, Any] = {
        "float images": images.astype(np.float32),
        "grayscale [N, H, W]": images[..., 0],
        "no images": images[:0],
    }
    accepted = []
    for what, value in bad.items():
        try:
            subject.component.features(value)
        except ValueError:
            continue
        accepted.append(what)
    require(
        not accepted,
        f"{subject.label}: features() must raise ValueError for input that is not uint8 RGB [N >= 1, H, W, 3] "
        f"(FeatureExtractor.extract checks with check_images), it accepted: {', '.join(accepted)}",
    )
    return ", ".join(bad) + " refused"


SUBJECT = FeatureExtractorSubject
CHECKS: tuple[Check[FeatureExtractorSubject], ...] = (
    Check("builds from its weights file", _builds),
    Check("refuses a missing weights file", _refuses_missing_weights, FeatureExtractorSubject.can_build),
    Check("one feature vector per image", _features_per_image, FeatureExtractorSubject.can_build),
    Check("features do not depend on the batch", _batch_invariant, FeatureExtractorSubject.can_build),
    Check("refuses images that are not uint8 RGB", _refuses_bad_images, FeatureExtractorSubject.can_build),
)
