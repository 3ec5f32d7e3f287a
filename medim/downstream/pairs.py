"""Arm B's extra data: image-report pairs a trained run draws from nothing, written as a paired folder.

The run answers the joint direction (`image_and_text`, as `medim eval` generates it): pair i draws
from the run's per-sample seed i of that direction, so the same run, decoding and count always give
the same pairs, whatever the batch size. They are written with `export_paired_folder` (PNG + same-name
.txt in train/ val/ test/), whose `export.json` records how they were made; a later call reuses the
folder while that record matches and refuses it, naming the fix, when it does not.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from medim.data.paired import PairedDataset, PairedSplit
from medim.data.paired_folder import export_paired_folder
from medim.downstream.config import GeneratorConfig
from medim.errors import ConfigError, DataError
from medim.evaluation.directions import IMAGE_AND_TEXT
from medim.evaluation.evaluate import generate_held_out
from medim.precision import generation_autocast
from medim.runs import load_run
from medim.tasks.costs import DecodeStats
from medim.training.checkpoints import checkpoint_step, latest_checkpoint

logger = logging.getLogger(__name__)

#: What a generated folder's `export.json` says it holds.
EXPORT_RECORD = "export.json"


class GeneratedPairs(PairedDataset):
    """Generated pairs held in memory: `train` the first `num_train`, `val` and `test` the rest (both the same)."""

    def __init__(
        self, images: np.ndarray, reports: list[str], num_train: int, identity: dict[str, Any], domain: str
    ) -> None:
        self.image_size = int(images.shape[1])
        self._parts = {"train": slice(0, num_train), "held_out": slice(num_train, len(reports))}
        self._images, self._reports, self._identity, self._domain = images, reports, identity, domain

    def split(self, name: str, progress: bool = False) -> PairedSplit:
        part = self._parts["train" if name == "train" else "held_out"]
        reports = self._reports[part]
        return PairedSplit(self._images[part], reports, None, [self._domain] * len(reports))

    def identity(self) -> dict[str, Any]:
        return self._identity


def generated_pairs_block(config: GeneratorConfig, out: Path, *, progress: bool = True) -> dict[str, Any]:
    """The `data:` block of the pairs `config.run` generates, written to `out` unless already there as asked."""
    run = Path(config.run)
    if not (run / "resolved.yaml").is_file():
        raise DataError(
            f"generator.run {str(run)!r} is not a trained medim run (no resolved.yaml); make the default one with "
            f"`medim quickstart` (about 11 minutes on 2 CPU cores), or name another: generator.run=RUN_DIR"
        )
    checkpoint = latest_checkpoint(run)
    if checkpoint is None:
        raise DataError(f"generator.run {str(run)!r} has no checkpoint yet; train it first (medim train ... --resume)")
    experiment, backbone = load_run(run, progress, config.overrides)
    cfg = experiment.config.eval
    identity = {
        "generator_run": str(run.resolve()),
        "checkpoint": str(checkpoint.resolve()),
        "checkpoint_step": checkpoint_step(checkpoint),
        "direction": IMAGE_AND_TEXT.name,
        "seed": experiment.config.seed,
        "count": config.num_pairs + config.holdout_pairs,
        "num_train": config.num_pairs,
        "sampler": experiment.config.sampler.block(),
        "decoding": {"num_steps": cfg.num_steps, "modality_steps": cfg.modality_steps, "autocast": cfg.autocast},
    }
    identity = json.loads(json.dumps(identity))  # as export.json stores it, to compare with a stored record
    record = out / EXPORT_RECORD
    if record.is_file():
        stored = json.loads(record.read_text(encoding="utf-8"))
        if stored.get("source") == identity:
            logger.info("reusing the %d generated pairs in %s", identity["count"], out)
            return stored["data"]
        raise ConfigError(
            f"{out} holds pairs generated otherwise ({record}); delete it, or run `medim downstream` with --fresh"
        )
    if out.exists():
        shutil.rmtree(out)  # an export that stopped before its record: begin again
    try:
        task = experiment.task.task_for(frozenset(IMAGE_AND_TEXT.generated))
    except DataError as exc:
        raise ConfigError(f"generator.run {str(run)!r} cannot draw image-report pairs from nothing: {exc}") from None
    count = identity["count"]
    logger.info("generating %d image-report pairs with %s (step %d)", count, run, identity["checkpoint_step"])
    with generation_autocast(next(backbone.parameters()).device, cfg.autocast):
        images, reports = generate_held_out(
            experiment, backbone, experiment.sampler, task, IMAGE_AND_TEXT, count, cfg, DecodeStats(), progress
        )
    domains = set(experiment.dataset.split("train").domains)
    domain = domains.pop() if len(domains) == 1 else "unspecified"
    pairs = GeneratedPairs(images, reports, config.num_pairs, identity, domain)
    return export_paired_folder(pairs, out, progress=progress)
