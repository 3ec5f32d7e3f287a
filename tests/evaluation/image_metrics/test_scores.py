"""ImageScores: resampling checks its input, and save/load carries the features for a later paired comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medim.errors import DataError
from medim.evaluation.image_metrics import ImageScores


def scores(n_generated: int = 12, n_reference: int = 12) -> ImageScores:
    rng = np.random.default_rng(21)
    generated = rng.normal(size=(n_generated, 8)).astype(np.float32)
    reference = rng.normal(0.3, 1.0, size=(n_reference, 8)).astype(np.float32)
    return ImageScores(
        values={"fid": 1.5},
        settings={"fid": {"metric": "fid", "extractor": "inception"}},
        extractors={"inception": {"weights": "/w.pth", "sha256": "00", "params": {"dims": 2048}}},
        versions={"pytorch-fid": "0.3.0"},
        features={"inception": (generated, reference)},
    )


def test_save_then_load_gives_the_same_scores_and_resamples(tmp_path: Path) -> None:
    original = scores()
    original.save(tmp_path / "image_metrics.npz")
    loaded = ImageScores.load(tmp_path / "image_metrics.npz")
    assert loaded == original  # values, settings, extractors, versions
    np.testing.assert_array_equal(loaded.features["inception"][0], original.features["inception"][0])
    rows = np.random.default_rng(22).integers(0, 12, size=(5, 12))
    np.testing.assert_array_equal(loaded.resampled(rows)["fid"], original.resampled(rows)["fid"])
    assert set(original.resampled(np.arange(12))) == {"fid"}
    assert original.to_json()["resampling"]["fid"].startswith("pytorch-fid's Fréchet distance")


def test_loading_something_else_names_the_file(tmp_path: Path) -> None:
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(DataError, match="other.npz is not an image-metrics file"):
        ImageScores.load(other)


@pytest.mark.parametrize(
    "indices, message",
    [
        (np.array([0.5, 1.0]), "item indices as integers"),
        (np.zeros((2, 0), dtype=int), r"shape \[n\] or \[R, n\] with n >= 1"),
        (np.array([0, 12]), r"indices outside 0..11: 0..12"),
    ],
)
def test_bad_indices_are_refused(indices: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        scores().resampled(indices)


def test_resampling_needs_sets_paired_by_item() -> None:
    with pytest.raises(ValueError, match=r"paired by item, got sizes \[10, 12\]"):
        scores(n_reference=10).resampled(np.arange(10))
