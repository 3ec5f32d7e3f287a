"""A small CNN that judges which findings a 64x64 RGB image shows.

It is the referee for image generation: train it on real images with their
ground-truth finding labels, then score generated images by comparing its
predictions with the findings of the report they were drawn from. It is kept
small (~100k parameters) so it trains in seconds on a CPU.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from medim.errors import DataError
from medim.io import atomic_write

_WIDTHS = (8, 32, 64, 128)  # output channels of the stride-2 conv blocks
_POOLED_GRID = 2  # features are pooled to a 2x2 grid, not a vector: left/right matters
_MAX_SHIFT = 2  # pixels of random translation when augmenting
_FORMAT = "medim.finding_classifier/v1"


class FindingNet(nn.Module):
    """Conv-BN-ReLU stride-2 blocks, average pool to a coarse grid, linear to K logits.

    Pooling to a 2x2 grid instead of a single vector keeps where a feature was
    seen, so the head can tell e.g. ``effusion_left`` from ``effusion_right``.
    """

    def __init__(self, num_labels: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        in_channels = 3
        for width in _WIDTHS:
            blocks += [
                nn.Conv2d(in_channels, width, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            in_channels = width
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(_POOLED_GRID)
        self.head = nn.Linear(in_channels * _POOLED_GRID**2, num_labels)
        self.to(memory_format=torch.channels_last)  # markedly faster convolutions on CPU

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Map float images [B, 3, H, W] scaled to [0, 1] to logits [B, K]."""
        return self.head(self.pool(self.features(images - 0.5)).flatten(1))

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Initialise all weights from ``generator`` so training is reproducible."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.01, generator=generator)
                nn.init.zeros_(module.bias)


def _check_images(images: np.ndarray, image_size: tuple[int, int] | None = None) -> None:
    """Reject anything but uint8 [N, H, W, 3], of the given H, W when known."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(f"images must be a uint8 array [N, H, W, 3], got dtype {images.dtype} shape {images.shape}")
    if image_size is not None and images.shape[1:3] != image_size:
        raise ValueError(
            f"images are {images.shape[1]}x{images.shape[2]}, "
            f"but the classifier was trained on {image_size[0]}x{image_size[1]}"
        )


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


def _augmented(images: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    """Like :func:`_to_tensor`, with light, laterality-preserving augmentation.

    Each image is shifted by up to ``_MAX_SHIFT`` px (edges repeated) and its
    brightness and contrast are jittered by up to 5% and 10%. No flips or
    rotations: they would swap left and right findings.
    """
    size, height, width, _ = images.shape
    padded = np.pad(images, ((0, 0), (_MAX_SHIFT,) * 2, (_MAX_SHIFT,) * 2, (0, 0)), mode="edge")
    shifts = torch.randint(0, 2 * _MAX_SHIFT + 1, (size, 2), generator=generator).tolist()
    shifted = np.stack([image[dy : dy + height, dx : dx + width] for image, (dy, dx) in zip(padded, shifts)])
    batch = _to_tensor(shifted)
    contrast = 1 + 0.2 * (torch.rand(size, 1, 1, 1, generator=generator) - 0.5)
    brightness = 0.1 * (torch.rand(size, 1, 1, 1, generator=generator) - 0.5)
    mean = batch.mean(dim=(1, 2, 3), keepdim=True)
    # (batch - mean) * contrast + mean + brightness, written to stay in place
    return batch.mul_(contrast).add_(mean * (1 - contrast) + brightness).clamp_(0, 1)


class FindingClassifier:
    """A trained :class:`FindingNet` with the label names and image size it expects."""

    def __init__(self, network: FindingNet, label_names: Sequence[str], image_size: tuple[int, int]) -> None:
        self.network = network.eval()
        self.label_names = tuple(label_names)
        self.image_size = image_size

    @torch.no_grad()
    def predict_proba(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Probability of each finding, float32 [N, K], for uint8 images [N, H, W, 3]."""
        _check_images(images, self.image_size)
        chunks = [
            torch.sigmoid(self.network(_to_tensor(images[start : start + batch_size])))
            for start in range(0, len(images), batch_size)
        ]
        if not chunks:
            return np.zeros((0, len(self.label_names)), dtype=np.float32)
        return torch.cat(chunks).numpy()

    def predict(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Whether each finding is shown (probability >= 0.5), bool [N, K]."""
        return self.predict_proba(images, batch_size) >= 0.5

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write weights, label names and image size to ``path`` atomically."""
        checkpoint = {
            "format": _FORMAT,
            "state_dict": self.network.state_dict(),
            "label_names": list(self.label_names),
            "image_size": list(self.image_size),
        }
        atomic_write(Path(path), lambda tmp: torch.save(checkpoint, tmp))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FindingClassifier:
        """Read a classifier written by :meth:`save`.

        Raises DataError naming ``path`` if it is missing, unreadable or not a
        finding-classifier checkpoint.
        """
        path = Path(path)
        if not path.is_file():
            raise DataError(f"finding classifier checkpoint {path} does not exist")
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(checkpoint, dict) or checkpoint.get("format") != _FORMAT:
                raise ValueError(f"expected a dict with format {_FORMAT!r}")
            label_names = checkpoint["label_names"]
            network = FindingNet(len(label_names))
            network.load_state_dict(checkpoint["state_dict"])
            height, width = checkpoint["image_size"]
        except Exception as error:  # any failure here means the file is not usable
            raise DataError(
                f"finding classifier checkpoint {path} is malformed (not written by FindingClassifier.save?): {error}"
            ) from error
        return cls(network, label_names, (int(height), int(width)))


def train_finding_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    label_names: Sequence[str] | None = None,
    epochs: int = 8,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    augment: bool = True,
    progress: bool = False,
) -> FindingClassifier:
    """Train a classifier on uint8 images [N, H, W, 3] and bool labels [N, K].

    AdamW with a one-cycle learning-rate schedule and BCE-with-logits loss.
    Initialisation, shuffling and augmentation draw from one generator seeded
    with ``seed``, so equal inputs give equal weights (on the same thread
    count). ``label_names`` default to ``finding_0 .. finding_{K-1}``.
    """
    _check_images(images)
    if labels.dtype != np.bool_ or labels.ndim != 2 or len(labels) != len(images):
        raise ValueError(
            f"labels must be a bool array [N, K] with N = {len(images)} images, "
            f"got dtype {labels.dtype} shape {labels.shape}"
        )
    if len(images) == 0 or epochs < 1 or batch_size < 1:
        raise ValueError(
            f"need at least one image, epoch and batch element, "
            f"got {len(images)} images, epochs={epochs}, batch_size={batch_size}"
        )
    num_labels = labels.shape[1]
    if label_names is None:
        label_names = [f"finding_{i}" for i in range(num_labels)]
    names = tuple(label_names)
    if len(names) != num_labels:
        raise ValueError(f"got {len(names)} label names for {num_labels} label columns")

    generator = torch.Generator().manual_seed(seed)
    network = FindingNet(num_labels)
    network.reset_parameters(generator)
    targets = torch.from_numpy(labels).float()
    total_steps = epochs * -(-len(images) // batch_size)
    optimizer = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps)

    network.train()
    with tqdm(total=total_steps, desc="finding classifier", disable=not progress) as bar:
        for _ in range(epochs):
            order = torch.randperm(len(images), generator=generator)
            for start in range(0, len(images), batch_size):
                batch_index = order[start : start + batch_size]
                chosen = images[batch_index.numpy()]
                batch = _augmented(chosen, generator) if augment else _to_tensor(chosen)
                loss = F.binary_cross_entropy_with_logits(network(batch), targets[batch_index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                bar.update()
                bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
    return FindingClassifier(network, names, (images.shape[1], images.shape[2]))
