"""torchxrayvision's chest X-ray DenseNet-121: a domain encoder for FID and KID on chest radiographs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.nn.functional import interpolate

from medim.evaluation.image_metrics.extractor import FeatureExtractor, register_extractor
from medim.evaluation.image_metrics.weights import WeightsError, import_optional

#: The torchxrayvision weights this extractor loads: the DenseNet trained on all of its chest X-ray datasets.
VARIANT = "densenet121-res224-all"
#: The released file of that variant (torchxrayvision finds weights by this file name).
WEIGHTS_FILE = "nih-pc-chex-mimic_ch-google-openi-kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt"
#: The input side torchxrayvision's DenseNets were trained at.
RESOLUTION = 224


@register_extractor("xrv_densenet121")
class XrvDenseNet(FeatureExtractor):
    """torchxrayvision's DenseNet-121 `densenet121-res224-all`: 1024-d features (`features2`) of chest X-rays.

    Input handling as torchxrayvision documents it: RGB uint8 scaled to [-1024, 1024]
    (`xrv.datasets.normalize(img, 255)`), averaged to one channel, resized to 224x224 with the model's
    own antialiased bilinear resize. Needs the `torchxrayvision` package. Its weights file is a whole
    pickled model that torchxrayvision unpickles (`weights_only=False`): give only a file you trust.
    Importing torchxrayvision silences Python warnings process-wide (its `warnings.filterwarnings("ignore")`).
    """

    weights_file = WEIGHTS_FILE
    weights_source = f"torchxrayvision's release of {VARIANT} (torchxrayvision.models.model_urls['{VARIANT}'])"

    requirements = (("torchxrayvision", "torchxrayvision"),)

    @classmethod
    def example_params(cls, folder: Path) -> dict[str, Any]:
        """A weights file in the released format (a whole pickled DenseNet, random values) for conformance checks."""
        xrv = import_optional("torchxrayvision", "torchxrayvision")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            torch.save(xrv.models.DenseNet(num_classes=18).eval(), folder / WEIGHTS_FILE)
        return {"weights": str(folder / WEIGHTS_FILE)}

    def _load(self, weights: Path) -> torch.nn.Module:
        xrv = import_optional("torchxrayvision", "torchxrayvision")
        if weights.name != WEIGHTS_FILE:
            raise WeightsError(
                f"{self.where} = {str(weights)!r}: torchxrayvision finds {VARIANT} by its file name, so the file must "
                f"be named {WEIGHTS_FILE}"
            )
        # the file exists under the name torchxrayvision looks for, so it loads it and downloads nothing
        return xrv.models.DenseNet(weights=VARIANT, cache_dir=str(weights.parent))

    def _forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        pixels = (2 * (images.to(torch.float32) / 255) - 1.0) * 1024  # xrv.datasets.normalize(img, 255)
        gray = pixels.mean(dim=1, keepdim=True)
        if gray.shape[-2:] != (RESOLUTION, RESOLUTION):
            gray = interpolate(gray, size=(RESOLUTION, RESOLUTION), mode="bilinear", antialias=True)
        return {"features": self.model.features2(gray)}
