"""Inception weights in pytorch-fid's exact state-dict format, made here, and small test images.

The real files (pytorch-fid's pt_inception-2015-12-05-6726825d.pth, torch-fidelity's
weights-inception-2015-12-05-6726825d.pth) are never downloaded. The tests build pytorch-fid's own
FID Inception (its `fid_inception_v3`, with the weight download replaced by nothing), initialise it
randomly, and set each BatchNorm's running statistics from one forward pass over test images at
299x299, so activations keep a sensible scale through the ~90 layers (with the default statistics
they shrink to ~1e-8 and every FID rounds to 0). Its `state_dict()` is saved under both names.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

FID_FILE = "pt_inception-2015-12-05-6726825d.pth"
FIDELITY_FILE = "weights-inception-2015-12-05-6726825d.pth"


def blob_images(n: int, seed: int, size: int = 64) -> np.ndarray:
    """n uint8 RGB images [n, size, size, 3]: a few flat-coloured discs on black, drawn from `seed`."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    images = np.zeros((n, size, size, 3), dtype=np.uint8)
    for image in images:
        for _ in range(3):
            cy, cx = rng.uniform(0.15 * size, 0.85 * size, 2)
            radius = rng.uniform(0.06 * size, 0.22 * size)
            image[(yy - cy) ** 2 + (xx - cx) ** 2 < radius**2] = rng.integers(0, 256, 3, dtype=np.uint8)
    return images


def with_noise(images: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """`images` plus Gaussian pixel noise of standard deviation `sigma`, clipped back to uint8."""
    noise = np.random.default_rng(seed).normal(0.0, sigma, images.shape)
    return np.clip(images + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def make_images() -> Callable[..., np.ndarray]:
    """`blob_images(n, seed, size=64)`."""
    return blob_images


@pytest.fixture(scope="session")
def add_noise() -> Callable[[np.ndarray, float, int], np.ndarray]:
    """`with_noise(images, sigma, seed)`."""
    return with_noise


@pytest.fixture(scope="session")
def inception_state_dict() -> dict[str, torch.Tensor]:
    """pytorch-fid's FID Inception, randomly initialised with calibrated BatchNorm statistics, as a state dict."""
    inception = pytest.importorskip("pytorch_fid.inception")
    torch.manual_seed(0)
    no_weights = mock.patch.object(inception, "load_state_dict_from_url", lambda url, progress=True: {})
    no_loading = mock.patch.object(inception.torchvision.models.Inception3, "load_state_dict", lambda self, sd: None)
    with no_weights, no_loading:
        network = inception.fid_inception_v3()
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # running statistics = this pass's batch statistics
    pixels = torch.from_numpy(blob_images(2, seed=99)).permute(0, 3, 1, 2).float() / 255
    network.train()
    with torch.no_grad():
        network(torch.nn.functional.interpolate(pixels, size=(299, 299), mode="bilinear") * 2 - 1)
    return network.state_dict()


@pytest.fixture(scope="session")
def weights_dir(inception_state_dict: dict[str, torch.Tensor], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the state dict as pytorch-fid's and as torch-fidelity's file."""
    folder = tmp_path_factory.mktemp("inception-weights")
    torch.save(inception_state_dict, folder / FID_FILE)
    os.link(folder / FID_FILE, folder / FIDELITY_FILE)
    return folder


@pytest.fixture(scope="session")
def fid_weights(weights_dir: Path) -> Path:
    return weights_dir / FID_FILE


@pytest.fixture(scope="session")
def fidelity_weights(weights_dir: Path) -> Path:
    return weights_dir / FIDELITY_FILE
