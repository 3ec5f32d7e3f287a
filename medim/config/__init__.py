"""Experiments as YAML: layering, overrides and the validated `ExperimentConfig`."""

from medim.config.loading import find_experiment, list_experiments
from medim.config.schema import (
    COMPONENT_BLOCKS,
    EvalConfig,
    ExperimentConfig,
    TrainConfig,
    load_experiment,
    load_resolved,
    validate_experiment,
    with_overrides,
)

__all__ = [
    "COMPONENT_BLOCKS",
    "EvalConfig",
    "ExperimentConfig",
    "TrainConfig",
    "find_experiment",
    "list_experiments",
    "load_experiment",
    "load_resolved",
    "validate_experiment",
    "with_overrides",
]
