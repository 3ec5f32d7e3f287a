"""Opening a trained run directory: its resolved config, components and latest weights."""

from __future__ import annotations

from pathlib import Path

from medim.backbones.base import Backbone
from medim.config import validate_experiment
from medim.config.loading import read_yaml
from medim.errors import DataError
from medim.experiment import Experiment, build_experiment
from medim.training.checkpoints import latest_checkpoint, load_model_weights


def load_run(run_dir: str | Path, progress: bool = False) -> tuple[Experiment, Backbone]:
    """The experiment of `run_dir` and its backbone with the newest checkpoint's weights, in eval mode."""
    run_dir = Path(run_dir)
    resolved = run_dir / "resolved.yaml"
    if not resolved.is_file():
        raise DataError(f"{run_dir} is not a medim run directory (no resolved.yaml); train one with `medim train`")
    config = validate_experiment(read_yaml(resolved), context=str(resolved))
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise DataError(f"run {run_dir} has no checkpoint yet; train it (or resume it) first")
    experiment = build_experiment(config, progress=progress)
    backbone = experiment.build_backbone()
    load_model_weights(backbone, checkpoint)
    return experiment, backbone.eval()
