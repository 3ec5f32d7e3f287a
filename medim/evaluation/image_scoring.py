"""Image metrics in `medim eval`: FID, KID and the Inception Score (`eval.image_metrics`) of the images drawn from
held-out reports against the held-out images, beside a floor: real training images scored the same way.

FID and KID are biased at the few hundred images an evaluation usually has, so a number alone says
little; the floor (n real training images against the same n held-out images) is what a perfect
generator would get at this sample size. Each score has its bootstrap interval over test items. The
features are kept in `image_features.<system>.npz` (`ImageScores.save`), so `medim compare` can pair two runs
item by item. Everything the metrics need is checked before any generation starts
(`check_image_metrics`): a missing weights file or package is an error naming the fix, not a crash
after an hour of sampling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from medim.config.image_metrics import ImageMetricsConfig
from medim.evaluation.bootstrap import BootstrapSettings, intervals
from medim.evaluation.image_metrics import ImageScores, WeightsError, image_metrics
from medim.evaluation.image_metrics.weights import ImageMetricsSetupError
from medim.registry import FEATURE_EXTRACTORS

#: The file beside metrics.json holding each system's features (`ImageScores.save`), by system name.
FEATURES_FILE = "image_features.{system}.npz"
#: The system name of the floor: real training images in place of generated ones.
FLOOR = "baseline_real_train_images"
#: The score block of the Inception networks' metrics; domain encoders get a block each, by extractor name.
INCEPTION_BLOCK = "inception"
#: The registered extractors of the Inception metrics: FID's (pytorch-fid), KID's and the Inception Score's.
INCEPTIONS = ("pytorch_fid_inception", "torch_fidelity_inception")


def check_image_metrics(config: ImageMetricsConfig) -> None:
    """Raise, naming the fix, when a package or a weights file the configured metrics need is missing."""
    problems = config.problems()
    if problems:
        raise WeightsError("eval.image_metrics cannot run: " + " | ".join(problems))
    names = _extractors_used(config)
    missing = [problem for name in names for problem in FEATURE_EXTRACTORS.get(name).cls.missing_requirements()]
    if missing:
        raise ImageMetricsSetupError("eval.image_metrics cannot run: " + " | ".join(dict.fromkeys(missing)))


def _extractors_used(config: ImageMetricsConfig) -> list[str]:
    """The registered extractors the configured metrics run."""
    used = [INCEPTIONS[0]] if "fid" in config.metrics else []
    used += [INCEPTIONS[1]] if {"kid", "is"} & set(config.metrics) else []
    return used + [spec.name for spec in config.extractors]


def block_and_metric(key: str, settings: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """Where a key of ImageScores.values goes: `fid_xrv_densenet121` -> (`xrv_densenet121`, `fid`), `kid` ->
    (`inception`, `kid`)."""
    extractor = settings[key.removesuffix("_std")]["extractor"]
    if extractor in INCEPTIONS:
        return INCEPTION_BLOCK, key
    return extractor, key.replace(f"_{extractor}", "")


def image_metric_blocks(
    config: ImageMetricsConfig,
    systems: dict[str, np.ndarray],
    reference: np.ndarray,
    bootstrap: BootstrapSettings | None,
    out_dir: Path,
    *,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """{block: score block} of each system's images (uint8 [n, H, W, 3], item i for held-out image i) against
    `reference`; each system's features are saved into `out_dir` (FEATURES_FILE).

    A score block (metric_tables): `scores` {system: {metric: value}}, `intervals` {system: {metric: [low,
    high]}}, plus how they were computed: `settings`, `extractors` (weights file and SHA-256), `resampling`,
    `versions`, `n`.
    """
    blocks: dict[str, Any] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    for system, images in systems.items():
        scores = image_metrics(images, reference, config, device=device, progress=progress)
        scores.save(out_dir / FEATURES_FILE.format(system=system))
        found = intervals(scores.resampled, scores.n, bootstrap) if bootstrap is not None else {}
        for key, value in scores.values.items():
            name, metric = block_and_metric(key, scores.settings)
            block = blocks.setdefault(name, {"scores": {}, "intervals": {}, "n": scores.n, "settings": {}})
            block["scores"].setdefault(system, {})[metric] = value
            if key in found:
                block["intervals"].setdefault(system, {})[metric] = found[key]["ci95"]
            if key in scores.settings:
                block["settings"][metric] = {**scores.settings[key], "resampling": scores.resampling[key]}
                block["extractors"] = {
                    extractor: scores.extractors[extractor]
                    for extractor in {setting["extractor"] for setting in block["settings"].values()}
                }
            block["versions"] = scores.versions
    return blocks


def floor_images(train: Any, n: int, seed: int) -> np.ndarray | None:
    """n training images drawn without replacement (fixed seed), the floor's stand-in for generated images; None
    when the training split has fewer than n."""
    if len(train) < n:
        return None
    picks = np.sort(np.random.default_rng(seed).choice(len(train), size=n, replace=False))
    return np.asarray(train[picks])


def load_features(eval_dir: Path, system: str) -> ImageScores:
    """The image features `medim eval` saved for `system` in `eval_dir`."""
    return ImageScores.load(eval_dir / FEATURES_FILE.format(system=system))
