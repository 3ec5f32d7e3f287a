"""Opening trained weights for generation: a medim run directory, or MeDiM's released checkpoint."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from medim.backbones.base import Backbone
from medim.backbones.denoiser import DecoderDenoiser
from medim.backbones.medim_release import load_release, read_release, release_num_layers
from medim.config import (
    ExperimentConfig,
    load_experiment,
    load_resolved,
    with_overrides,
)
from medim.config.policy import DECODING_SECTIONS, weight_changes
from medim.errors import ConfigError, DataError
from medim.experiment import Experiment, build_experiment
from medim.training.checkpoints import checkpoint_step, latest_checkpoint, load_model_weights

logger = logging.getLogger(__name__)

#: Which weights of a checkpoint to decode with: the EMA when the run kept one (`auto`), or as named.
WeightsChoice = Literal["auto", "ema", "model"]


def load_run(
    run_dir: str | Path, progress: bool = False, overrides: Sequence[str] = (), *, weights: WeightsChoice = "auto"
) -> tuple[Experiment, Backbone]:
    """The experiment of `run_dir` and its backbone with the newest complete checkpoint's weights, in eval mode.

    `overrides` (e.g. `sampler=ancestral`, `eval.num_steps=64`) may change how it decodes,
    never what was trained. A run trained with `train.ema_decay` decodes with the moving average of its
    weights unless `weights="model"`. A damaged newest checkpoint is skipped with a warning.
    """
    config = with_overrides(run_config(run_dir), overrides, f"run {run_dir}", only=DECODING_SECTIONS)
    return open_run(run_dir, config, progress, weights=weights)


def run_config(run_dir: str | Path) -> ExperimentConfig:
    """The validated config a run was trained with (its `resolved.yaml`)."""
    resolved = Path(run_dir) / "resolved.yaml"
    if not resolved.is_file():
        raise DataError(f"{run_dir} is not a medim run directory (no resolved.yaml); train one with `medim train`")
    return load_resolved(resolved)


def open_run(
    run_dir: str | Path,
    config: ExperimentConfig,
    progress: bool = False,
    *,
    weights: WeightsChoice = "auto",
    checkpoint: Path | None = None,
) -> tuple[Experiment, Backbone]:
    """`run_dir`'s newest weights (or those of its `checkpoint` folder) in the experiment `config`, which may differ
    from the run's only in how it decodes.

    `weights`: `auto` (the EMA when the run was trained with train.ema_decay), `ema` or `model`.
    """
    run_dir = Path(run_dir)
    differs = weight_changes(run_config(run_dir), config)
    if differs:
        raise ConfigError(
            f"run {run_dir} was trained with other settings at {', '.join(differs)}; its weights do not fit"
        )
    checkpoint = latest_checkpoint(run_dir) if checkpoint is None else checkpoint
    if checkpoint is None:
        raise DataError(f"run {run_dir} has no checkpoint yet; train it (or resume it) first")
    experiment = build_experiment(config, progress=progress)
    backbone = experiment.build_backbone(empty=True)  # a pretrained backbone's files are not read again
    ema = weights == "ema" or (weights == "auto" and config.train.ema_decay is not None)
    load_model_weights(backbone, checkpoint, ema=ema)
    if ema:
        logger.info(
            "decoding with the EMA weights (train.ema_decay=%s) of step %d", config.train.ema_decay,
            checkpoint_step(checkpoint),
        )  # fmt: skip
    return experiment, backbone.eval()


def open_release(
    checkpoint_dir: str | Path, experiment: str = "paper/medim", overrides: Sequence[str] = ()
) -> tuple[Experiment, Backbone]:
    """MeDiM's released checkpoint in the backbone of `experiment` (default: the paper's), in eval mode.

    The number of layers is read from the checkpoint's key names; the layout and tokenizers come
    from the experiment (their files are named there or in `overrides`). No dataset is built. The
    weights are read only once their names and shapes fit the backbone, one tensor at a time in the
    backbone's dtype (`backbone.dtype`; paper/medim: float32, as MeDiM), so the peak memory is about one copy.
    """
    state = read_release(checkpoint_dir)
    config = load_experiment(experiment, [*overrides, f"backbone.num_layers={release_num_layers(state)}"])
    built = build_experiment(config, progress=False, data=False)
    backbone = built.build_backbone(empty=True)
    if not isinstance(backbone, DecoderDenoiser):
        raise ConfigError(
            f"MeDiM's released checkpoint needs a decoder backbone such as 'liquid', not {config.backbone.name!r}"
        )
    load_release(backbone, state)
    return built, backbone.eval()
