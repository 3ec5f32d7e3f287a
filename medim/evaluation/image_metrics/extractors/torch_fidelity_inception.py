"""torch-fidelity's Inception: the features of KID and the logits of the Inception Score."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from medim.evaluation.image_metrics.extractor import FeatureExtractor, register_extractor
from medim.evaluation.image_metrics.extractors.pytorch_fid_inception import random_inception_state_dict
from medim.evaluation.image_metrics.weights import import_optional, load_state_dict, wrong_weights


@register_extractor("torch_fidelity_inception")
class TorchFidelityInception(FeatureExtractor):
    """torch-fidelity's `inception-v3-compat` (TensorFlow's Inception graph, TF1-style bilinear resize to 299).

    "features" are its 2048-d pool features (torch-fidelity's default layer for KID) and "logits" its
    1008 logits without the fc bias (`logits_unbiased`, its default layer for the Inception Score).
    The weights file has the same keys and shapes as pytorch-fid's (both are conversions of the same
    TensorFlow graph), so pytorch-fid's file loads here too; torch-fidelity's own file is the default.
    """

    weights_file = "weights-inception-2015-12-05-6726825d.pth"
    weights_source = (
        "published with torch-fidelity at torch_fidelity.feature_extractor_inceptionv3.URL_INCEPTION_V3; "
        "torch-fidelity keeps its copy in $TORCH_HOME/hub/checkpoints/"
    )

    requirements = (("torch_fidelity.feature_extractor_inceptionv3", "torch-fidelity"), ("pytorch_fid", "pytorch-fid"))

    @classmethod
    def example_params(cls, folder: Path) -> dict[str, Any]:
        """A weights file with the released file's keys and shapes (random values) for the conformance checks."""
        torch.save(random_inception_state_dict(), folder / cls.weights_file)
        return {"weights": str(folder / cls.weights_file)}

    def _load(self, weights: Path) -> torch.nn.Module:
        module = import_optional("torch_fidelity.feature_extractor_inceptionv3", "torch-fidelity")
        # torch-fidelity unpickles the file with weights_only=False: check first that it is plain tensors
        load_state_dict(weights, key=self.where, expected_file=self.weights_file)
        try:  # given a path, torch-fidelity reads that file and never downloads
            return module.FeatureExtractorInceptionV3(
                "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(weights)
            )
        except RuntimeError as exc:  # load_state_dict: missing, unexpected or mis-shaped keys
            raise wrong_weights(weights, key=self.where, expected_file=self.weights_file, exc=exc) from None

    def _forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features, logits = self.model(images)
        return {"features": features, "logits": logits}
