"""pytorch-fid's FID Inception: the features behind FID as MeDiM (and most image-generation papers) report it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from unittest import mock

import torch
from pydantic import Field
from torch.nn.functional import adaptive_avg_pool2d

from medim.evaluation.image_metrics.extractor import ExtractorParams, FeatureExtractor, register_extractor
from medim.evaluation.image_metrics.weights import import_optional, load_state_dict, wrong_weights


@register_extractor("pytorch_fid_inception")
class PytorchFidInception(FeatureExtractor):
    """pytorch-fid's InceptionV3 for FID (TensorFlow's FID graph: FIDInceptionA/C/E blocks and its weights).

    Built by pytorch-fid's own `InceptionV3` class; images go in as pytorch-fid feeds image files: uint8
    divided by 255 (torchvision's ToTensor), resized bilinearly to 299x299 (no antialiasing) and scaled
    to [-1, 1] inside the network. `dims` picks pytorch-fid's feature block (2048: pool3, the standard;
    64/192/768 are spatially averaged, as pytorch-fid's `--dims` does).
    """

    weights_file = "pt_inception-2015-12-05-6726825d.pth"
    weights_source = (
        "published with pytorch-fid at pytorch_fid.inception.FID_WEIGHTS_URL; pytorch-fid keeps its copy in "
        "$TORCH_HOME/hub/checkpoints/, by default ~/.cache/torch/hub/checkpoints/"
    )

    requirements = (("pytorch_fid.inception", "pytorch-fid"),)

    class Params(ExtractorParams):
        dims: Literal[64, 192, 768, 2048] = Field(2048, description="pytorch-fid's feature block (2048 = pool3)")

    @classmethod
    def example_params(cls, folder: Path) -> dict[str, Any]:
        """A weights file in pytorch-fid's format (its state dict, random values) for the conformance checks."""
        torch.save(random_inception_state_dict(), folder / cls.weights_file)
        return {"weights": str(folder / cls.weights_file)}

    def _load(self, weights: Path) -> torch.nn.Module:
        inception = import_optional("pytorch_fid.inception", "pytorch-fid")
        state_dict = load_state_dict(weights, key=self.where, expected_file=self.weights_file)
        block = inception.InceptionV3.BLOCK_INDEX_BY_DIM[self.params.dims]
        # pytorch-fid fetches its weights with `load_state_dict_from_url` while building the network; handing it
        # the local file's tensors instead means no download can start, whatever $TORCH_HOME holds.
        with mock.patch.object(inception, "load_state_dict_from_url", lambda url, progress=True: state_dict):
            try:
                return inception.InceptionV3([block])
            except RuntimeError as exc:  # load_state_dict: missing, unexpected or mis-shaped keys
                raise wrong_weights(weights, key=self.where, expected_file=self.weights_file, exc=exc) from None

    def _forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        pred = self.model(images.to(torch.float32).div(255))[0]
        if pred.shape[2:] != (1, 1):  # blocks below pool3, averaged as pytorch-fid's get_activations does
            pred = adaptive_avg_pool2d(pred, output_size=(1, 1))
        return {"features": pred.squeeze(3).squeeze(2)}


def random_inception_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict of pytorch-fid's FID Inception with random weights: the keys and shapes of the released file."""
    inception = import_optional("pytorch_fid.inception", "pytorch-fid")
    no_download = mock.patch.object(inception, "load_state_dict_from_url", lambda url, progress=True: {})
    keep_random = mock.patch.object(inception.torchvision.models.Inception3, "load_state_dict", lambda self, sd: None)
    with torch.random.fork_rng(devices=[]), no_download, keep_random:
        torch.manual_seed(seed)
        return inception.fid_inception_v3().state_dict()
