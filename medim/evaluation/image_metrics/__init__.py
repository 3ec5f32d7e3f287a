"""Image metrics with local weights: FID exactly as pytorch-fid computes it, KID and IS as torch-fidelity does.

    scores = image_metrics(generated, reference, ImageMetricsConfig(inception_weights=..., fidelity_weights=...))
    scores.values               # {"fid": ..., "kid": ..., "kid_std": ..., "inception_score": ..., ...}
    scores.resampled(rows)      # the same metrics on resampled test items, for bootstrap intervals

FID is the paper's number (MeDiM reports pytorch-fid): pytorch-fid's own network, input handling and
`calculate_frechet_distance` run on features medim extracts in batches from uint8 arrays. KID and the
Inception Score come from torch-fidelity (fidelity.py says why not torchmetrics). Weights are read
from local files named in the config (config.py lists which file each metric needs); nothing is ever
downloaded, and a missing file is an error naming the file and the config key. Any registered
feature extractor (extractor.py: the contract and how to plug one in; extractors/: the built-ins,
e.g. a chest X-ray DenseNet) adds FID and KID on its own features.

The packages come with the `image-metrics` extra (`pip install 'medim[image-metrics]'`); they are
imported only when a metric runs, so this package imports without them.
"""

from medim.config.image_metrics import CONFIG_KEY, FeatureExtractorSpec, ImageMetricsConfig
from medim.evaluation.image_metrics.compute import image_metrics
from medim.evaluation.image_metrics.extractor import (
    FEATURE_EXTRACTORS,
    ExtractorParams,
    FeatureExtractor,
    register_extractor,
)
from medim.evaluation.image_metrics.scores import ImageScores
from medim.evaluation.image_metrics.weights import ImageMetricsSetupError, WeightsError

__all__ = [
    "CONFIG_KEY",
    "FEATURE_EXTRACTORS",
    "ExtractorParams",
    "FeatureExtractor",
    "FeatureExtractorSpec",
    "ImageMetricsConfig",
    "ImageMetricsSetupError",
    "ImageScores",
    "WeightsError",
    "image_metrics",
    "register_extractor",
]
