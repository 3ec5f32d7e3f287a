"""FID equals pytorch-fid's own computation on the same images and weights; it is ~0 for a set against itself
and grows with noise; resamples recompute it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medim.evaluation.image_metrics import ImageMetricsConfig, image_metrics
from medim.evaluation.image_metrics.extractors.pytorch_fid_inception import PytorchFidInception
from medim.evaluation.image_metrics.frechet import FrechetResampler, frechet_distance

fid_score = pytest.importorskip("pytorch_fid.fid_score", reason="needs the image-metrics extra")


def write_pngs(images: np.ndarray, folder: Path) -> Path:
    """Lossless files named so pytorch-fid's sorted listing keeps the array's order."""
    folder.mkdir()
    for index, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{index:04d}.png")
    return folder


@pytest.fixture
def torch_home(fid_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pytorch-fid's own lookup finds the weights where it caches them: $TORCH_HOME/hub/checkpoints/."""
    checkpoints = tmp_path / "torch-home" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / PytorchFidInception.weights_file).write_bytes(fid_weights.read_bytes())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


def test_fid_equals_pytorch_fid_given_the_same_image_files_and_weights(
    make_images, fid_weights: Path, torch_home: None, tmp_path: Path
) -> None:
    generated, reference = make_images(16, seed=1), make_images(16, seed=2)
    expected = fid_score.calculate_fid_given_paths(
        [str(write_pngs(generated, tmp_path / "gen")), str(write_pngs(reference, tmp_path / "ref"))],
        batch_size=8,
        device="cpu",
        dims=64,
        num_workers=0,
    )
    config = ImageMetricsConfig(metrics=("fid",), inception_weights=str(fid_weights), fid_dims=64, batch_size=8)
    scores = image_metrics(generated, reference, config)
    assert expected > 0.01
    assert scores.values == {"fid": pytest.approx(expected, rel=1e-12, abs=0)}


def test_pool3_features_equal_pytorch_fid_activations(make_images, fid_weights: Path, torch_home: None, tmp_path: Path):
    images = make_images(2, seed=3)
    files = sorted(write_pngs(images, tmp_path / "images").iterdir())
    model = fid_score.InceptionV3([3])  # pytorch-fid loads the weights from $TORCH_HOME itself
    expected = fid_score.get_activations(files, model, batch_size=2, dims=2048, device="cpu", num_workers=0)
    extractor = PytorchFidInception(PytorchFidInception.Params(weights=str(fid_weights)))
    features = extractor.features(images, batch_size=2)
    assert features.shape == (2, 2048)
    np.testing.assert_array_equal(features.astype(np.float64), expected)


@pytest.mark.slow
def test_fid_at_2048_dims_equals_pytorch_fid(make_images, fid_weights: Path, torch_home: None, tmp_path: Path) -> None:
    """The paper's setting: pool3 features and pytorch-fid's sqrtm on 2048 x 2048 covariances (a minute each)."""
    generated, reference = make_images(6, seed=4), make_images(6, seed=5)
    expected = fid_score.calculate_fid_given_paths(
        [str(write_pngs(generated, tmp_path / "gen")), str(write_pngs(reference, tmp_path / "ref"))],
        batch_size=6,
        device="cpu",
        dims=2048,
        num_workers=0,
    )
    config = ImageMetricsConfig(metrics=("fid",), inception_weights=str(fid_weights), batch_size=6)
    assert image_metrics(generated, reference, config).values["fid"] == pytest.approx(expected, rel=1e-12, abs=0)


def test_fid_of_a_set_against_itself_is_zero_and_grows_with_noise(make_images, add_noise, fid_weights: Path) -> None:
    extractor = PytorchFidInception(PytorchFidInception.Params(weights=str(fid_weights), dims=64))
    clean = make_images(16, seed=6)
    reference = extractor.features(clean)
    fids = [frechet_distance(reference, reference)]
    for sigma in (10.0, 30.0, 60.0):
        fids.append(frechet_distance(extractor.features(add_noise(clean, sigma, 7)), reference))
    assert abs(fids[0]) < 1e-6 * fids[1]
    assert fids[1] > 0.01 and fids[1] < fids[2] < fids[3], fids


@pytest.mark.parametrize("n, d", [(40, 16), (12, 32)], ids=["more-images-than-dims", "fewer-images-than-dims"])
def test_resampled_fid_equals_pytorch_fid_on_the_resampled_features(n: int, d: int) -> None:
    rng = np.random.default_rng(8)
    mixing = rng.normal(size=(d, d))
    generated = (rng.normal(size=(n, d)) @ mixing).astype(np.float32)
    reference = (rng.normal(size=(n, d)) @ mixing + 0.5).astype(np.float32)
    rows = np.vstack([np.arange(n), rng.integers(0, n, size=(3, n))])
    expected = [frechet_distance(generated[row], reference[row]) for row in rows]
    np.testing.assert_allclose(FrechetResampler(generated, reference)(rows), expected, rtol=1e-6)
