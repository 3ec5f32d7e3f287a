"""Sample galleries during training: a few validation pairs generated in every direction the task answers,
every `train.eval_every` steps, so a run can be looked at (not only its losses) while it trains.

Written by the first process into RUN_DIR/gallery/step_0000200/ as `medim eval` writes its own (a PNG per
direction, `samples.json`). Generation draws from per-sample seeds (`Direction.sample_seed`), never from the
training generators, so a run trains to the same weights with or without galleries.
"""

from __future__ import annotations

from pathlib import Path

from medim.backbones.base import Backbone
from medim.errors import DataError
from medim.evaluation.directions import DIRECTIONS, Direction
from medim.evaluation.evaluate import Outputs, generate_held_out, write_samples
from medim.experiment import Experiment
from medim.precision import generation_autocast
from medim.tasks.costs import DecodeStats

GALLERY_SPLIT = "val"


def gallery_dir(run_dir: Path, step: int) -> Path:
    """RUN_DIR/gallery/step_0000200: the gallery of step 200."""
    return Path(run_dir) / "gallery" / f"step_{step:07d}"


def write_training_gallery(experiment: Experiment, backbone: Backbone, run_dir: Path, step: int, count: int) -> Path:
    """Generate `count` validation samples per answerable direction with the run's decoding settings
    (`eval.*`, the sampler) and write them to `gallery_dir(run_dir, step)`."""
    held_out = experiment.dataset.split(GALLERY_SPLIT)
    count = min(count, len(held_out))
    cfg = experiment.config.eval.model_copy(
        update={"split": GALLERY_SPLIT, "num_samples": count, "joint_samples": count, "gallery_size": count}
    )
    device = next(backbone.parameters()).device
    outputs: dict[Direction, Outputs] = {}
    backbone.eval()
    for direction in DIRECTIONS:
        try:
            task = experiment.task.task_for(frozenset(direction.generated))
        except DataError:
            continue  # a direction the model was not trained for: `medim eval` says why; the gallery leaves it out
        with generation_autocast(device, cfg.autocast):
            outputs[direction] = generate_held_out(
                experiment, backbone, experiment.sampler, task, direction, count, cfg, DecodeStats(), False
            )
    out = gallery_dir(run_dir, step)
    write_samples(out, cfg, outputs, held_out)
    return out
