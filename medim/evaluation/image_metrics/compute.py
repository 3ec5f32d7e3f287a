"""`image_metrics`: generated vs reference images -> FID, KID, IS (and domain-encoder FID/KID) with their features.

Each network runs once per image set; every metric is then computed from the kept features by its
reference implementation (frechet.py: pytorch-fid; fidelity.py: torch-fidelity), so the same
features serve the reported values and the bootstrap's resamples (scores.py).
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

import numpy as np
import torch

from medim.config.image_metrics import CONFIG_KEY, ImageMetricsConfig
from medim.errors import ConfigError
from medim.evaluation.image_metrics.extractor import FeatureExtractor, check_images
from medim.evaluation.image_metrics.extractors.pytorch_fid_inception import PytorchFidInception
from medim.evaluation.image_metrics.extractors.torch_fidelity_inception import TorchFidelityInception
from medim.evaluation.image_metrics.fidelity import SEED, inception_score, kernel_inception_distance
from medim.evaluation.image_metrics.frechet import frechet_distance
from medim.evaluation.image_metrics.scores import ImageScores
from medim.evaluation.image_metrics.weights import WeightsError, sha256

#: Packages whose versions metrics.json records.
PACKAGES = ("pytorch-fid", "torch-fidelity", "torch", "torchvision", "scipy", "numpy", "torchxrayvision")


def _extractors(config: ImageMetricsConfig, device: str | torch.device) -> list[FeatureExtractor]:
    """The networks the chosen metrics need, each built from its local weights file."""
    extractors: list[FeatureExtractor] = []
    if "fid" in config.metrics:
        params = PytorchFidInception.Params(weights=config.inception_weights, dims=config.fid_dims)
        extractors.append(PytorchFidInception(params, device=device, where=f"{CONFIG_KEY}.inception_weights"))
    if {"kid", "is"} & set(config.metrics):
        params = TorchFidelityInception.Params(weights=config.fidelity_weights)
        extractors.append(TorchFidelityInception(params, device=device, where=f"{CONFIG_KEY}.fidelity_weights"))
    for index, spec in enumerate(config.extractors):
        extractors.append(spec.build(device=device, where=f"{CONFIG_KEY}.extractors[{index}].weights", name=spec.name))
    return extractors


def _metrics_of(extractor: FeatureExtractor, config: ImageMetricsConfig) -> list[tuple[str, str]]:
    """(value name, metric kind) computed on `extractor`'s features, in table order."""
    if isinstance(extractor, PytorchFidInception):
        return [("fid", "fid")]
    if isinstance(extractor, TorchFidelityInception):
        return [("kid", "kid")] if "kid" in config.metrics else []
    return [(f"{kind}_{extractor.name}", kind) for kind in ("fid", "kid") if kind in config.metrics]


def _setting(kind: str, extractor: str, config: ImageMetricsConfig, n: int) -> dict[str, Any]:
    """How a metric of `kind` is computed, for metrics.json and for recomputing it on resamples."""
    if kind == "fid":
        return {"metric": "fid", "extractor": extractor, "implementation": "pytorch-fid calculate_frechet_distance"}
    if kind == "kid":
        return {
            "metric": "kid",
            "extractor": extractor,
            "implementation": "torch-fidelity kid_features_to_metric",
            "kernel": "polynomial (x.y / d + 1)^3",
            "subsets": config.kid_subsets,
            "subset_size": min(config.kid_subset_size, n),
            "seed": SEED,
        }
    return {
        "metric": "is",
        "extractor": extractor,
        "implementation": "torch-fidelity isc_features_to_metric (logits_unbiased)",
        "splits": config.is_splits,
        "seed": SEED,
    }


def _versions() -> dict[str, str]:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def image_metrics(
    generated: np.ndarray,
    reference: np.ndarray,
    config: ImageMetricsConfig,
    *,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> ImageScores:
    """FID, KID and IS of uint8 images [n, H, W, 3] against references [n', H', W', 3], as `config` asks.

    generated[i] and reference[i] should be test item i (a text-to-image sample and its real image) for
    `resampled` to bootstrap over items; the values themselves compare the two sets as sets. Every
    weights file is checked before any network runs; a missing one is a WeightsError naming the file
    and its config key.
    """
    check_images(generated, "generated images")
    check_images(reference, "reference images")
    problems = config.problems()
    if problems:
        raise WeightsError("image metrics cannot run: " + " | ".join(problems))
    if ({"fid", "kid"} & set(config.metrics)) and min(len(generated), len(reference)) < 2:
        raise ValueError(f"FID and KID need at least 2 images a set, got {len(generated)} and {len(reference)}")
    if "is" in config.metrics and len(generated) < config.is_splits:
        raise ConfigError(
            f"the Inception Score splits the generated images into is_splits={config.is_splits} parts, but there "
            f"are only {len(generated)}; set {CONFIG_KEY}.is_splits to at most {len(generated)}"
        )
    values: dict[str, float] = {}
    settings: dict[str, dict[str, Any]] = {}
    extractors: dict[str, dict[str, Any]] = {}
    features: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    logits = None
    n = min(len(generated), len(reference))
    for extractor in _extractors(config, device):
        extractors[extractor.name] = {
            "weights": str(extractor.weights_path),
            "sha256": sha256(extractor.weights_path),
            "params": extractor.params.model_dump(exclude={"weights"}),
        }
        metrics = _metrics_of(extractor, config)
        outputs = extractor.extract(generated, batch_size=config.batch_size, progress=progress)
        if metrics:  # an IS-only run needs no reference features
            reference_features = extractor.features(reference, batch_size=config.batch_size, progress=progress)
            features[extractor.name] = (outputs["features"], reference_features)
        for name, kind in metrics:
            settings[name] = _setting(kind, extractor.name, config, n)
            if kind == "fid":
                values[name] = frechet_distance(*features[extractor.name])
            else:
                values[name], values[f"{name}_std"] = kernel_inception_distance(
                    *features[extractor.name], subsets=config.kid_subsets, subset_size=config.kid_subset_size
                )
        if isinstance(extractor, TorchFidelityInception) and "is" in config.metrics:
            logits = outputs["logits"]
            values["inception_score"], values["inception_score_std"] = inception_score(logits, splits=config.is_splits)
            settings["inception_score"] = _setting("is", extractor.name, config, n)
    return ImageScores(
        values=values, settings=settings, extractors=extractors, versions=_versions(), features=features, logits=logits
    )
