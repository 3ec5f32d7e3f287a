"""The feature-extractor contract behind FID and KID: uint8 images in, one feature vector per image out.

An extractor is a registered component (kind `feature_extractors`) built from a local weights file:
`Params.weights` is the file's path, `weights_file` the name of the released file (named in every
error), `weights_source` where that file is published. `extract(images)` runs the network in batches
under `torch.inference_mode` in eval mode and returns float32 arrays by output name; every extractor
gives "features" [N, D], and an Inception may add "logits" [N, C] (the Inception Score's input).

Plugging in another encoder (a chest X-ray DenseNet, a pathology ViT): subclass `FeatureExtractor`,
implement `_load(weights_path) -> nn.Module` and `_forward(images uint8 [B, 3, H, W]) -> {"features":
[B, D]}`, and register it, in medim with `@register_extractor("name")` in a module of
`medim/evaluation/image_metrics/extractors/`, or from another package through the entry-point group
`medim.feature_extractors`. Then `eval.image_metrics.extractors: [{name: NAME, weights: PATH}]` adds
`fid_NAME` and `kid_NAME` computed on its features. `requirements` names the optional packages it
imports, and an `example_params(folder)` hook that writes a weights file in the released format (random
values) lets `medim check NAME` run its conformance checks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from pydantic import Field
from tqdm import tqdm

from medim.evaluation.image_metrics.weights import ImageMetricsSetupError, import_optional, local_weights
from medim.registry import FEATURE_EXTRACTORS, ComponentParams

E = TypeVar("E", bound="FeatureExtractor")


def register_extractor(name: str) -> Callable[[type[E]], type[E]]:
    """Class decorator: register a FeatureExtractor under `name` and record the name on the class."""

    def decorator(cls: type[E]) -> type[E]:
        cls.name = name
        return FEATURE_EXTRACTORS.register(name)(cls)

    return decorator


class ExtractorParams(ComponentParams):
    """What every extractor takes: its local weights file."""

    weights: str | None = Field(None, description="local path of the weights file (medim never downloads weights)")


def check_images(images: Any, what: str) -> np.ndarray:
    """`images` as given when it is a uint8 array [N, H, W, 3] with N >= 1; an error naming the shape otherwise."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        got = f"{images.dtype} array of shape {list(images.shape)}" if isinstance(images, np.ndarray) else type(images)
        raise ValueError(f"image metrics take {what} as a uint8 array [N, H, W, 3] (RGB), got {got}")
    if len(images) == 0:
        raise ValueError(f"image metrics got no {what} (an array of shape {list(images.shape)})")
    return images


class FeatureExtractor:
    """An image encoder built from a local weights file; `features(images) -> [N, D]`."""

    #: The registered name: set on the class by `register_extractor`, or given when built (`name=`), as for a
    #: class registered through an entry point; metrics computed on its features are named after it.
    name: str
    #: The released weights file's name, named in errors.
    weights_file: ClassVar[str]
    #: Where that file is published, named in errors.
    weights_source: ClassVar[str]
    #: The optional packages it imports, as (module, package) pairs.
    requirements: ClassVar[tuple[tuple[str, str], ...]] = ()

    Params = ExtractorParams

    def __init__(
        self,
        params: ExtractorParams,
        *,
        device: str | torch.device = "cpu",
        where: str = "weights",
        name: str | None = None,
    ) -> None:
        """Load the network from `params.weights` onto `device`; `where` is the config key named in errors, `name`
        the registered name when the class does not carry it."""
        self.name = name or getattr(type(self), "name", type(self).__name__)
        self.params = params
        self.device = torch.device(device)
        self.where = where
        self.weights_path = local_weights(
            params.weights, expected_file=self.weights_file, key=where, source=self.weights_source
        )
        self.model = self._load(self.weights_path).to(self.device).eval()

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Facts for `medim info`: the weights file it needs and where it is published."""
        return {"weights_file": cls.weights_file, "weights_source": cls.weights_source}

    @classmethod
    def missing_requirements(cls) -> list[str]:
        """Why each optional package it needs cannot be imported here (with the fix); empty when all can."""
        missing = []
        for module, package in cls.requirements:
            try:
                import_optional(module, package)
            except ImageMetricsSetupError as exc:
                missing.append(str(exc))
        return missing

    def _load(self, weights: Path) -> torch.nn.Module:
        """The network with the weights of `weights` (an existing file)."""
        raise NotImplementedError

    def _forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """uint8 images [B, 3, H, W] on `self.device` -> {"features": [B, D], ...}."""
        raise NotImplementedError

    def extract(self, images: np.ndarray, *, batch_size: int = 50, progress: bool = False) -> dict[str, np.ndarray]:
        """Every output of the network for uint8 images [N, H, W, 3], as float32 arrays [N, ...] by name."""
        check_images(images, "images")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        parts: dict[str, list[np.ndarray]] = defaultdict(list)
        starts = range(0, len(images), batch_size)
        with torch.inference_mode():
            for start in tqdm(starts, disable=not progress, desc=f"{self.name} features", unit="batch"):
                # NCHW and contiguous, as torchvision's ToTensor hands images to pytorch-fid's network
                batch = torch.from_numpy(images[start : start + batch_size]).permute(0, 3, 1, 2).contiguous()
                for key, value in self._forward(batch.to(self.device)).items():
                    parts[key].append(value.to(torch.float32).cpu().numpy())
        return {key: np.concatenate(chunks) for key, chunks in parts.items()}

    def features(self, images: np.ndarray, *, batch_size: int = 50, progress: bool = False) -> np.ndarray:
        """Features [N, D] (float32) of uint8 images [N, H, W, 3]."""
        return self.extract(images, batch_size=batch_size, progress=progress)["features"]
