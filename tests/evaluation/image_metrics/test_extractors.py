"""Feature extractors beyond Inception: a plugged-in encoder gets its own FID, and the chest X-ray DenseNet
loads torchxrayvision's released format from a local file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medim.evaluation.image_metrics import (
    FEATURE_EXTRACTORS,
    FeatureExtractor,
    ImageMetricsConfig,
    WeightsError,
    image_metrics,
    register_extractor,
)
from medim.evaluation.image_metrics.frechet import frechet_distance

pytest.importorskip("pytorch_fid", reason="needs the image-metrics extra")


@register_extractor("tests_pooled_pixels")
class PooledPixels(FeatureExtractor):
    """A stand-in domain encoder: a linear map of 4x4-average-pooled pixels, its weights read from a local file."""

    weights_file = "pooled-pixels.pt"
    weights_source = "written by the test"

    @classmethod
    def example_params(cls, folder: Path) -> dict[str, str]:  # so the conformance suite can check it, as a plugin
        torch.save(torch.nn.Linear(48, 6).state_dict(), folder / cls.weights_file)
        return {"weights": str(folder / cls.weights_file)}

    def _load(self, weights: Path) -> torch.nn.Module:
        layer = torch.nn.Linear(48, 6)
        layer.load_state_dict(torch.load(weights, weights_only=True))
        return layer

    def _forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        pooled = torch.nn.functional.adaptive_avg_pool2d(images.float() / 255, 4).flatten(1)
        return {"features": self.model(pooled)}


def test_a_registered_extractor_named_in_the_config_gets_its_own_fid(
    make_images, fid_weights: Path, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    torch.save(torch.nn.Linear(48, 6).state_dict(), tmp_path / "pooled-pixels.pt")
    config = ImageMetricsConfig(
        metrics=("fid",),
        inception_weights=str(fid_weights),
        fid_dims=64,
        extractors=[{"name": "tests_pooled_pixels", "weights": str(tmp_path / "pooled-pixels.pt")}],
    )
    generated, reference = make_images(8, seed=31), make_images(8, seed=32)
    scores = image_metrics(generated, reference, config)
    encoder = FEATURE_EXTRACTORS.build({"name": "tests_pooled_pixels", "weights": str(tmp_path / "pooled-pixels.pt")})
    expected = frechet_distance(encoder.features(generated), encoder.features(reference))
    assert set(scores.values) == {"fid", "fid_tests_pooled_pixels"}
    assert scores.values["fid_tests_pooled_pixels"] == pytest.approx(expected, rel=1e-12)
    assert scores.extractors["tests_pooled_pixels"]["weights"] == str(tmp_path / "pooled-pixels.pt")
    assert scores.resampled(np.arange(8))["fid_tests_pooled_pixels"] == pytest.approx(expected, rel=1e-6)


def test_xrv_densenet_loads_torchxrayvision_weights_from_a_local_file(make_images, tmp_path: Path) -> None:
    xrv = pytest.importorskip("torchxrayvision")
    from medim.evaluation.image_metrics.extractors.xrv_densenet import VARIANT, WEIGHTS_FILE, XrvDenseNet

    torch.manual_seed(0)
    torch.save(xrv.models.DenseNet(num_classes=18).eval(), tmp_path / WEIGHTS_FILE)  # released format: a whole model
    images = make_images(2, seed=33)
    features = XrvDenseNet(XrvDenseNet.Params(weights=str(tmp_path / WEIGHTS_FILE))).features(images)

    model = xrv.models.DenseNet(weights=VARIANT, cache_dir=str(tmp_path))  # torchxrayvision's own loading
    with torch.no_grad():  # torchxrayvision's documented input: normalize to [-1024, 1024], one channel
        pixels = torch.from_numpy(np.stack([xrv.datasets.normalize(image, 255).mean(2)[None] for image in images]))
        expected = model.features2(pixels).numpy()
    assert features.shape == (2, 1024)
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5)

    (tmp_path / "renamed.pt").write_bytes((tmp_path / WEIGHTS_FILE).read_bytes())
    with pytest.raises(WeightsError, match=f"the file must be named {WEIGHTS_FILE}"):
        XrvDenseNet(XrvDenseNet.Params(weights=str(tmp_path / "renamed.pt")))
