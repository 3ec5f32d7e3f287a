"""The finding classifier learns a toy quadrant problem, saves, loads and is reproducible."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from medim.errors import DataError
from medim.evaluation.finding_classifier import (
    FindingClassifier,
    FindingNet,
    train_finding_classifier,
)

QUADRANTS = ("top_left", "top_right", "bottom_left", "bottom_right")
SIZE = 64


def quadrant_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy dark images with a bright 10 px square in each labelled quadrant.

    Left and right quadrants differ only in position, so learning them shows the
    classifier (and its augmentation) keeps laterality.
    """
    rng = np.random.default_rng(seed)
    images = rng.normal(50, 15, (count, SIZE, SIZE, 3)).clip(0, 255).astype(np.uint8)
    labels = rng.random((count, len(QUADRANTS))) < 0.4
    half = SIZE // 2
    for index, row in enumerate(labels):
        for quadrant in np.flatnonzero(row):
            top = (quadrant // 2) * half + rng.integers(4, half - 14)
            left = (quadrant % 2) * half + rng.integers(4, half - 14)
            images[index, top : top + 10, left : left + 10] = rng.integers(150, 230)
    return images, labels


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Train on one thread, restoring the caller's setting afterwards.

    The model is small, and on a busy machine two threads waiting on each other
    make these tests several times slower.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def trained() -> FindingClassifier:
    images, labels = quadrant_images(512, seed=0)
    return train_finding_classifier(
        images,
        labels,
        label_names=QUADRANTS,
        epochs=6,
        batch_size=64,
        lr=3e-3,
        seed=0,
        augment=True,
    )


def test_parameter_count_is_small() -> None:
    assert 50_000 <= sum(p.numel() for p in FindingNet(10).parameters()) <= 150_000


def test_learns_quadrants_on_held_out_images(trained: FindingClassifier) -> None:
    images, labels = quadrant_images(200, seed=1)
    predicted = trained.predict(images)
    assert predicted.shape == labels.shape and predicted.dtype == np.bool_
    assert (predicted == labels).mean() > 0.9
    assert trained.label_names == QUADRANTS


def test_predict_thresholds_probabilities(trained: FindingClassifier) -> None:
    images, _ = quadrant_images(20, seed=2)
    proba = trained.predict_proba(images, batch_size=7)
    assert proba.shape == (20, 4) and np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_array_equal(trained.predict(images), proba >= 0.5)


def test_save_load_round_trip(trained: FindingClassifier, tmp_path: Path) -> None:
    path = tmp_path / "classifier.pt"
    trained.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["classifier.pt"]
    loaded = FindingClassifier.load(path)
    images, _ = quadrant_images(50, seed=3)
    np.testing.assert_array_equal(loaded.predict_proba(images), trained.predict_proba(images))
    assert loaded.label_names == QUADRANTS
    assert loaded.image_size == (SIZE, SIZE)


def test_same_seed_gives_same_model_and_other_seed_differs() -> None:
    images, labels = quadrant_images(64, seed=4)

    def train(seed: int) -> np.ndarray:
        model = train_finding_classifier(images, labels, epochs=1, batch_size=32, seed=seed, augment=True)
        return model.predict_proba(images)

    first = train(seed=7)
    np.testing.assert_array_equal(first, train(seed=7))
    assert not np.array_equal(first, train(seed=8))


def test_load_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.pt"
    with pytest.raises(DataError, match="nowhere.pt"):
        FindingClassifier.load(path)


def test_load_malformed_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="garbage.pt.*malformed"):
        FindingClassifier.load(path)


def test_rejects_images_of_another_size(trained: FindingClassifier) -> None:
    with pytest.raises(ValueError, match="32x32"):
        trained.predict(np.zeros((1, 32, 32, 3), dtype=np.uint8))


def test_rejects_mismatched_labels() -> None:
    images, labels = quadrant_images(8, seed=5)
    with pytest.raises(ValueError, match="bool array"):
        train_finding_classifier(images, labels[:4], epochs=1)
