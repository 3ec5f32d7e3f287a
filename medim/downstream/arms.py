"""The two arms: the same report model trained on the real pairs (A) and on the real plus the generated pairs (B).

Both arms are the model experiment with the same seed, steps, batch and optimiser, placed in
OUTPUT_DIR/NAME/ as `arm_a_real` and `arm_b_real_generated`; only `data` differs: arm B's is a
`mixture` of the real data block (`real`) and the generated paired folder (`generated`).

Same tokenizers: a tokenizer that learns from data (the embedded k-means image codes, the trained
SentencePiece) is cached under its params and the identity of the corpus it is built with, and an
experiment builds that corpus from its own training split, so arm B would fit its tokenizers on
real + generated pairs. `share_tokenizers` instead fits arm B's on the real training pairs, as arm A's
are, and caches them under arm B's corpus key (a key only this experiment's generated folder makes),
so the builds of arm B that follow (training, and loading it to evaluate) read tokenizers learned
from the real pairs only; `same_tokenizers` then refuses to go on unless both arms' tokenizer
identities (the learned codebook's and SentencePiece model's hashes) are equal. `medim downstream`
does this before every build, so it also holds after the cache was cleared; arm B's run opened by
other commands (`medim eval`) needs that cache entry, which a run of `medim downstream` writes again.
Tokenizers read from files are the same for both arms anyway.
"""

from __future__ import annotations

import logging
from typing import Any

from medim.config import ExperimentConfig, validate_experiment
from medim.config.policy import weight_changes
from medim.downstream.config import AugmentationConfig
from medim.errors import ConfigError
from medim.experiment import Experiment
from medim.io import cache_root
from medim.runs import run_config
from medim.tokenizers.base import TokenizerCorpus
from medim.training.checkpoints import latest_checkpoint, trained_steps
from medim.training.trainer import train

logger = logging.getLogger(__name__)

#: Run names of the arms under OUTPUT_DIR/NAME/, by arm.
ARM_RUNS = {"a": "arm_a_real", "b": "arm_b_real_generated"}
#: What each arm trains on, for tables.
ARM_TITLES = {"a": "real only", "b": "real + generated"}


def arm_configs(config: AugmentationConfig, generated: dict[str, Any]) -> dict[str, ExperimentConfig]:
    """Each arm's validated experiment: the model experiment placed in the output folder, arm B on the mixture."""
    model = config.model_experiment()
    if model.train.max_minutes is not None:
        raise ConfigError(
            f"model: train.max_minutes is {model.train.max_minutes}, so an arm could stop early and the arms would "
            "not train for the same number of steps; remove it (~train.max_minutes in model.overrides, or "
            "~model.train.max_minutes on the command line)"
        )
    base = model.model_dump(mode="json")
    real = base["data"]
    weights = config.mixture.weights
    mixture = {"name": "mixture", "datasets": {"real": real, "generated": generated}, "weights": weights}
    data = {"a": real, "b": mixture}
    return {
        arm: validate_experiment(
            {**base, "name": name, "output_dir": str(config.out_dir), "data": data[arm]},
            f"downstream arm {arm.upper()} ({ARM_TITLES[arm]})",
        )
        for arm, name in ARM_RUNS.items()
    }


def share_tokenizers(real: ExperimentConfig, augmented: ExperimentConfig, progress: bool = True) -> None:
    """Prepare `augmented`'s data-trained tokenizers from `real`'s training pairs, under `augmented`'s cache key.

    The corpus identity is the one `build_experiment` gives `augmented`'s training split, so its builds find
    these tokenizers; with the same params and the same pairs they are fitted exactly as `real`'s (checked by
    `same_tokenizers`).
    """
    train_split = real.data.build().split("train", progress)
    corpus = TokenizerCorpus(
        images=train_split.images, texts=train_split.reports, identity=str(augmented.data.build().identity())
    )
    for path in ("tokenizers.image", "tokenizers.text"):
        tokenizer = augmented.component(path).build()
        if tokenizer.needs_corpus():
            tokenizer.prepare(corpus, cache_root())


def same_tokenizers(built: dict[str, Experiment]) -> dict[str, dict[str, Any]]:
    """The tokenizer identities both built arms share; a ConfigError naming the tokenizer that differs."""
    identities = {
        "image": {arm: experiment.image_tokenizer.identity() for arm, experiment in built.items()},
        "text": {arm: experiment.text_tokenizer.identity() for arm, experiment in built.items()},
    }
    for modality, by_arm in identities.items():
        if by_arm["a"] != by_arm["b"]:
            raise ConfigError(
                f"the arms' {modality} tokenizers differ (A: {by_arm['a']}, B: {by_arm['b']}), so they would not see "
                "the same tokens: arm B's cached tokenizer was not fitted on the real pairs; run again with --fresh"
            )
    return {modality: by_arm["a"] for modality, by_arm in identities.items()}


def train_arm(config: ExperimentConfig, progress: bool = True) -> int:
    """Train one arm to `train.steps` (resuming an interrupted run, reusing a finished one); returns its steps.

    A run directory trained with other settings is refused, naming them.
    """
    run_dir = config.run_dir
    if (run_dir / "resolved.yaml").is_file():
        changed = weight_changes(run_config(run_dir), config)
        if changed:
            raise ConfigError(
                f"{run_dir} was trained with other settings at {', '.join(changed)}; delete it, or run "
                "`medim downstream` with --fresh"
            )
    if trained_steps(run_dir) < config.train.steps:
        logger.info("training %s (%s)", config.name, run_dir)
        train(config, resume=latest_checkpoint(run_dir) is not None, progress=progress)
    else:
        logger.info("%s is already trained (%s)", config.name, run_dir)
    return trained_steps(run_dir)
