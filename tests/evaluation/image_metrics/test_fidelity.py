"""KID and the Inception Score equal torch-fidelity's own API on the same images and weights; resamples too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medim.evaluation.image_metrics import ImageMetricsConfig, ImageScores, image_metrics
from medim.evaluation.image_metrics.extractors.pytorch_fid_inception import PytorchFidInception
from medim.evaluation.image_metrics.extractors.torch_fidelity_inception import TorchFidelityInception

torch_fidelity = pytest.importorskip("torch_fidelity", reason="needs the image-metrics extra")
from torch_fidelity.metric_isc import isc_features_to_metric  # noqa: E402
from torch_fidelity.metric_kid import kid_features_to_metric  # noqa: E402


class UInt8Images(torch.utils.data.Dataset):
    """Images as torch-fidelity takes a Dataset: uint8 tensors [3, H, W]."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = torch.from_numpy(images).permute(0, 3, 1, 2)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


def test_kid_and_inception_score_equal_torch_fidelity_calculate_metrics(make_images, fidelity_weights: Path) -> None:
    n, splits = 6, 3  # each image runs the full Inception at 299x299 twice (here and in torch-fidelity)
    generated, reference = make_images(n, seed=11), make_images(n, seed=12)
    expected = torch_fidelity.calculate_metrics(
        input1=UInt8Images(generated),
        input2=UInt8Images(reference),
        isc=True,
        kid=True,
        isc_splits=splits,
        kid_subset_size=n,
        feature_extractor_weights_path=str(fidelity_weights),
        cuda=False,
        cache=False,
        save_cpu_ram=True,
        verbose=False,
    )
    config = ImageMetricsConfig(metrics=("kid", "is"), fidelity_weights=str(fidelity_weights), is_splits=splits)
    scores = image_metrics(generated, reference, config)
    assert scores.values == pytest.approx(
        {
            "kid": expected["kernel_inception_distance_mean"],
            "kid_std": expected["kernel_inception_distance_std"],
            "inception_score": expected["inception_score_mean"],
            "inception_score_std": expected["inception_score_std"],
        },
        rel=1e-6,
        abs=1e-12,
    )
    assert scores.settings["kid"]["subset_size"] == n  # torch-fidelity's 1000, capped at the n images
    assert scores.values["inception_score"] > 1.0


def test_pytorch_fid_weights_file_fits_torch_fidelity_network(fid_weights: Path) -> None:
    """The finding behind `fidelity_weights`: one conversion of the TF graph loads into either network, strictly."""
    network = TorchFidelityInception(TorchFidelityInception.Params(weights=str(fid_weights))).model
    reference = torch.load(fid_weights, weights_only=True)
    assert network.state_dict().keys() == reference.keys()
    assert all(torch.equal(network.state_dict()[key], value) for key, value in reference.items())
    assert PytorchFidInception.weights_file != TorchFidelityInception.weights_file


def synthetic_scores(n: int, subset_size: int, seed: int = 13) -> ImageScores:
    """Scores built from random features (realistic scale: post-ReLU pool features ~0.5) without any network."""
    rng = np.random.default_rng(seed)
    generated = np.abs(rng.normal(0.4, 0.3, size=(n, 32))).astype(np.float32)
    reference = np.abs(rng.normal(0.5, 0.3, size=(n, 32))).astype(np.float32)
    logits = rng.normal(0.0, 2.0, size=(n, 20)).astype(np.float32)
    return ImageScores(
        values={},
        settings={
            "kid": {"metric": "kid", "extractor": "inception", "subsets": 100, "subset_size": subset_size},
            "inception_score": {"metric": "is", "extractor": "inception", "splits": 4},
        },
        extractors={},
        versions={},
        features={"inception": (generated, reference)},
        logits=logits,
    )


def test_resampled_kid_and_is_equal_torch_fidelity_on_the_resampled_items() -> None:
    scores = synthetic_scores(n=24, subset_size=24)
    rows = np.vstack([np.arange(24), np.random.default_rng(14).integers(0, 24, size=(3, 24))])
    resampled = scores.resampled(rows)
    generated, reference = scores.features["inception"]
    for row, kid, inception_score in zip(rows, resampled["kid"], resampled["inception_score"]):
        one_subset = kid_features_to_metric(
            torch.from_numpy(generated[row]), torch.from_numpy(reference[row]), kid_subsets=1, kid_subset_size=24
        )
        assert kid == pytest.approx(one_subset["kernel_inception_distance_mean"], rel=1e-4)
        expected_is = isc_features_to_metric(torch.from_numpy(scores.logits[row]), 4, True, 2020)
        assert inception_score == expected_is["inception_score_mean"]
    assert scores.exactly_resampled == {"kid", "inception_score"}
    assert synthetic_scores(n=24, subset_size=10).exactly_resampled == {"inception_score"}
