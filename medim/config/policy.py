"""What a config key means for a trained model: the one rule trainer, runs and sweeps share.

Every dotted key of an experiment falls in one class:
    label        `name`, `description`: say nothing about the model
    decoding     `sampler.*`, `eval.*`: how a trained model generates and is scored
    bookkeeping  `train.{log_every, eval_every, checkpoint_every, keep_checkpoints, max_minutes, ...}`
                 (`BOOKKEEPING_TRAIN_KEYS`): when to log, validate and save; the weights do not depend on them
    duration     `train.steps`: how long to train; a resumed run may extend it
    model        everything else: data, tokenizers, layout, backbone, noise, objective,
                 task, the optimiser, the seed
Two runs train the same model when they agree on `model` and `duration` keys
(`training_identity`); a run's weights fit a config that agrees on `model` keys
(`weight_changes`), which is what resuming, decoding overrides and sweeps check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from medim.config.loading import changed_keys, flatten
from medim.io import stable_hash

if TYPE_CHECKING:
    from medim.config.schema import ExperimentConfig

KeyClass = Literal["label", "decoding", "bookkeeping", "duration", "model"]

#: Top-level sections that only say how a trained model decodes and is evaluated.
DECODING_SECTIONS = ("sampler", "eval")
#: Top-level keys that only name and describe a run.
LABEL_KEYS = ("name", "description")
#: `train` keys that never change the weights (when to log, validate, checkpoint, stop for the day; where metrics
#: go; how a non-finite step is handled; how the global batch is cut into micro-batches, which moves the weights
#: only by float summation order).
BOOKKEEPING_TRAIN_KEYS = (
    "log_every",
    "eval_every",
    "checkpoint_every",
    "keep_checkpoints",
    "keep_every",
    "max_minutes",
    "loggers",
    "nonfinite",
    "micro_batch_size",
    "val_batch_size",
    "gallery_samples",
)
#: `train` keys that change the weights only by training longer, which a resumed run may do.
DURATION_TRAIN_KEYS = ("steps",)
#: What `medim train --resume` accepts as changed: how long and how often, never what.
RESUMABLE_TRAIN_KEYS = BOOKKEEPING_TRAIN_KEYS + DURATION_TRAIN_KEYS


def key_class(dotted: str) -> KeyClass:
    """The class of one dotted config key (module docstring)."""
    section, _, rest = dotted.partition(".")
    if section in LABEL_KEYS:
        return "label"
    if section in DECODING_SECTIONS:
        return "decoding"
    if section == "train":
        field = rest.split(".")[0]
        if field in BOOKKEEPING_TRAIN_KEYS:
            return "bookkeeping"
        if field in DURATION_TRAIN_KEYS:
            return "duration"
    return "model"


def weight_changes(trained: ExperimentConfig, config: ExperimentConfig) -> list[str]:
    """Keys at which `config` differs from the one a run was trained with in what its weights are."""
    changed = changed_keys(trained.model_dump(mode="json"), config.model_dump(mode="json"))
    return [key for key in changed if key_class(key) == "model"]


def training_identity(config: ExperimentConfig) -> str:
    """A hash of what a config trains: its `model` and `duration` keys (two configs with equal hashes share weights)."""
    flat = flatten(config.model_dump(mode="json"))
    return stable_hash({key: value for key, value in flat.items() if key_class(key) in ("model", "duration")})
