"""The `eval.image_metrics` block: which image metrics, the local weights files they read, their settings.

    eval:
      image_metrics:
        metrics: [fid, kid, is]
        inception_weights: /models/pt_inception-2015-12-05-6726825d.pth        # FID (pytorch-fid)
        fidelity_weights: /models/weights-inception-2015-12-05-6726825d.pth    # KID and IS (torch-fidelity)
        extractors:                                                            # optional domain encoders
          - {name: xrv_densenet121, weights: /models/<the variant's .pt file>}

Which file each metric reads: FID pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`; KID (its
2048-d features) and IS (its logits) torch-fidelity's `weights-inception-2015-12-05-6726825d.pth`,
one file serving both. The two files have the same keys and shapes (conversions of one TensorFlow
graph), so pytorch-fid's file can be given as `fidelity_weights` too; whether the two conversions
hold identical values was not checked here, so torch-fidelity's own file is the one to use for KID
and IS values that match torch-fidelity's. Nothing is ever downloaded.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator

from medim.config.components import ComponentSpec
from medim.registry import FEATURE_EXTRACTORS, Registry

#: Where the block sits in an experiment; errors name keys under it.
CONFIG_KEY = "eval.image_metrics"

ImageMetricName = Literal["fid", "kid", "is"]

#: The registered extractors behind FID, and behind KID and the Inception Score.
FID_EXTRACTOR, FIDELITY_EXTRACTOR = "pytorch_fid_inception", "torch_fidelity_inception"


class FeatureExtractorSpec(ComponentSpec):
    """An entry of `extractors:`, e.g. `{name: xrv_densenet121, weights: PATH}`."""

    registry: ClassVar[Registry] = FEATURE_EXTRACTORS


class ImageMetricsConfig(BaseModel):
    """FID (pytorch-fid), KID and Inception Score (torch-fidelity), optionally on domain encoders' features too."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metrics: tuple[ImageMetricName, ...] = Field(("fid", "kid", "is"), description="which image metrics to compute")
    inception_weights: str | None = Field(
        None, description="local path of pytorch-fid's pt_inception-2015-12-05-6726825d.pth (FID)"
    )
    fidelity_weights: str | None = Field(
        None, description="local path of torch-fidelity's weights-inception-2015-12-05-6726825d.pth (KID and IS)"
    )
    fid_dims: Literal[64, 192, 768, 2048] = Field(2048, description="pytorch-fid's feature block (2048 = pool3)")
    kid_subsets: PositiveInt = Field(100, description="KID subsets (torch-fidelity's default)")
    kid_subset_size: PositiveInt = Field(1000, description="KID subset size, capped at the number of images")
    is_splits: PositiveInt = Field(10, description="Inception Score splits (torch-fidelity's default)")
    batch_size: PositiveInt = Field(50, description="images per forward pass of a feature extractor")
    extractors: tuple[FeatureExtractorSpec, ...] = Field(
        (), description="domain encoders (registered feature_extractors) whose features get FID and KID too"
    )

    @field_validator("metrics")
    @classmethod
    def _some_distinct(cls, metrics: tuple[str, ...]) -> tuple[str, ...]:
        if not metrics or len(set(metrics)) != len(metrics):
            raise ValueError(f"name each of fid, kid, is at most once, at least one; got {list(metrics)}")
        return metrics

    @field_validator("extractors")
    @classmethod
    def _distinct_extractors(cls, extractors: tuple[FeatureExtractorSpec, ...]) -> tuple[FeatureExtractorSpec, ...]:
        names = [spec.name for spec in extractors]
        if len(set(names)) != len(names):
            raise ValueError(f"each extractor can be named once (its metrics are fid_NAME, kid_NAME); got {names}")
        return extractors

    def weights_files(self) -> list[tuple[str | None, str, str, str]]:
        """(configured path, expected file, config key, source) of every weights file the chosen metrics read."""
        files = []
        if "fid" in self.metrics:
            fid = FEATURE_EXTRACTORS.get(FID_EXTRACTOR).cls
            files.append((self.inception_weights, fid, f"{CONFIG_KEY}.inception_weights"))
        if {"kid", "is"} & set(self.metrics):
            fidelity = FEATURE_EXTRACTORS.get(FIDELITY_EXTRACTOR).cls
            files.append((self.fidelity_weights, fidelity, f"{CONFIG_KEY}.fidelity_weights"))
        for index, spec in enumerate(self.extractors):
            files.append((spec.params.weights, spec.entry_class(), f"{CONFIG_KEY}.extractors[{index}].weights"))
        return [(path, cls.weights_file, key, cls.weights_source) for path, cls, key in files]

    def problems(self) -> list[str]:
        """Every weights file that is not configured or not there, one sentence each; empty when all are."""
        # imported here: medim.evaluation.image_metrics imports this module
        from medim.evaluation.image_metrics.weights import WeightsError, local_weights

        problems = []
        for path, expected_file, key, source in self.weights_files():
            try:
                local_weights(path, expected_file=expected_file, key=key, source=source)
            except WeightsError as exc:
                problems.append(str(exc))
        return problems
