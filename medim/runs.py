"""Opening trained weights for generation: a medim run directory, or MeDiM's released checkpoint."""

from __future__ import annotations

from pathlib import Path

from collections.abc import Sequence

from medim.backbones.base import Backbone
from medim.backbones.denoiser import DecoderDenoiser
from medim.backbones.medim_release import load_release, read_release, release_num_layers
from medim.config import load_experiment, validate_experiment, with_overrides
from medim.config.loading import read_yaml
from medim.errors import ConfigError, DataError
from medim.experiment import Experiment, build_experiment
from medim.training.checkpoints import latest_checkpoint, load_model_weights


#: Config sections that may differ from the trained run's when generating or evaluating with it.
DECODING_SECTIONS = ("sampler", "eval")


def load_run(run_dir: str | Path, progress: bool = False, overrides: Sequence[str] = ()) -> tuple[Experiment, Backbone]:
    """The experiment of `run_dir` and its backbone with the newest checkpoint's weights, in eval mode.

    `overrides` (e.g. `sampler=ancestral`, `eval.num_steps=64`) may change how it decodes,
    never what was trained.
    """
    run_dir = Path(run_dir)
    resolved = run_dir / "resolved.yaml"
    if not resolved.is_file():
        raise DataError(f"{run_dir} is not a medim run directory (no resolved.yaml); train one with `medim train`")
    config = validate_experiment(read_yaml(resolved), context=str(resolved))
    config = with_overrides(config, overrides, f"run {run_dir}", only=DECODING_SECTIONS)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise DataError(f"run {run_dir} has no checkpoint yet; train it (or resume it) first")
    experiment = build_experiment(config, progress=progress)
    backbone = experiment.build_backbone(empty=True)  # a pretrained backbone's files are not read again
    load_model_weights(backbone, checkpoint)
    return experiment, backbone.eval()


def open_release(
    checkpoint_dir: str | Path, experiment: str = "paper/medim", overrides: Sequence[str] = ()
) -> tuple[Experiment, Backbone]:
    """MeDiM's released checkpoint in the backbone of `experiment` (default: the paper's), in eval mode.

    The number of layers is read from the checkpoint; the layout and tokenizers come
    from the experiment (their files are named there or in `overrides`). No dataset is built.
    """
    state = read_release(checkpoint_dir)
    config = load_experiment(experiment, [*overrides, f"backbone.num_layers={release_num_layers(state)}"])
    built = build_experiment(config, progress=False, data=False)
    backbone = built.build_backbone(empty=True)
    if not isinstance(backbone, DecoderDenoiser):
        raise ConfigError(
            f"MeDiM's released checkpoint needs a decoder backbone such as 'liquid', not {config.backbone['name']!r}"
        )
    load_release(backbone, state)
    return built, backbone.eval()
