"""The model a demo serves: a run's newest checkpoint, one checkpoint folder, or MeDiM's released weights.

It is loaded once and kept on the device. For a run it follows training: when the
run has written a newer checkpoint, the next request loads it first. When the model
cannot be loaded (a run without a checkpoint yet, weights that do not fit the run's
layout) the server still starts and the page shows why; requests get that message
until a usable checkpoint appears.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from medim.backbones.base import Backbone
from medim.config import load_experiment
from medim.data.paired import FindingLabels
from medim.errors import ConfigError, DataError, MedimError, RegistryError
from medim.experiment import Experiment, check_decoding
from medim.generate import pick_device
from medim.quickstart import QUICKSTART
from medim.registry import SAMPLERS
from medim.runs import load_run, open_release, open_run, run_config
from medim.samplers.base import Sampler
from medim.training.checkpoints import (
    checkpoint_problem,
    checkpoint_step,
    folder_step,
    latest_checkpoint,
    step_folders,
)

logger = logging.getLogger(__name__)

#: Test-split pairs offered as examples on the page (their true finding labels are shown beside generated reports).
EXAMPLES = 8


@dataclass(frozen=True)
class DemoSource:
    """Where the weights come from: a run directory, a checkpoint folder of a run, or MeDiM's released checkpoint
    (a folder of its files, in the backbone of `experiment`)."""

    run_dir: Path | None = None
    checkpoint: Path | None = None
    experiment: str = "paper/medim"
    overrides: tuple[str, ...] = ()

    def describe(self) -> str:
        """The source in words, for the page's header."""
        if self.run_dir is not None:
            return f"run `{self.run_dir}`"
        return f"checkpoint `{self.checkpoint}`"

    def run_of_checkpoint(self) -> Path | None:
        """The run directory holding `checkpoint` (RUN/checkpoints/step_N), or None for a released checkpoint."""
        if self.checkpoint is None:
            return None
        run = self.checkpoint.parent.parent
        return run if self.checkpoint.parent.name == "checkpoints" and (run / "resolved.yaml").is_file() else None


def demo_source(
    run_dir: Path | None, checkpoint: Path | None, experiment: str = "paper/medim", overrides: Sequence[str] = ()
) -> DemoSource:
    """The source `medim demo` was given: a run, a checkpoint, or (neither) the quickstart's run; refuses a path
    that does not exist, or both."""
    if run_dir is not None and checkpoint is not None:
        raise DataError("give a run directory or --checkpoint, not both")
    if checkpoint is not None:
        if not checkpoint.is_dir():
            raise DataError(
                f"--checkpoint {str(checkpoint)!r} is not a folder; give a run's checkpoint folder "
                f"(RUN/checkpoints/step_N) or MeDiM's released checkpoint folder"
            )
        return DemoSource(checkpoint=checkpoint, experiment=experiment, overrides=tuple(overrides))
    if run_dir is None:
        run_dir = load_experiment(QUICKSTART).run_dir
        if not run_dir.is_dir():
            raise DataError(
                f"no quickstart run at {run_dir}: run `make quickstart` (or `medim quickstart`) first, "
                f"or give a run directory"
            )
    elif not run_dir.is_dir():
        raise DataError(f"run directory {str(run_dir)!r} does not exist")
    return DemoSource(run_dir=run_dir, overrides=tuple(overrides))


@dataclass(frozen=True)
class Example:
    """A test-split pair offered on the page."""

    report: str
    image: np.ndarray
    labels: frozenset[str] | None


@dataclass
class LoadedModel:
    """Everything a generation needs, loaded."""

    experiment: Experiment
    backbone: Backbone
    device: torch.device
    checkpoint: Path | None
    step: int | None
    samplers: dict[str, Sampler]
    examples: list[Example] = field(default_factory=list)
    #: true finding labels of the example images, by a hash of the picture as the model sees it
    labels_by_image: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def finding_labels(self) -> FindingLabels | None:
        """The report parser of the run's data, when it has one."""
        dataset = self.experiment.dataset
        return None if dataset is None else dataset.finding_labels()

    def true_labels(self, image: np.ndarray) -> frozenset[str] | None:
        """The labels of an example image (as the model sees it), None for any other image."""
        return self.labels_by_image.get(image_key(image))


def image_key(image: np.ndarray) -> str:
    """A hash that identifies a picture exactly (as the model sees it)."""
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


class DemoModel:
    """The served model (module docstring); `get()` returns it loaded, or raises the reason it is not."""

    def __init__(self, source: DemoSource, device: str = "auto") -> None:
        self.source = source
        self.device = pick_device(device)
        self.lock = threading.Lock()
        self.loaded: LoadedModel | None = None
        self.problem: str | None = None
        self._newest_folder: str | None = None  # the run's newest step folder when a load was last tried
        self._tried = False
        self.refresh()

    def get(self) -> LoadedModel:
        """The loaded model (a newer checkpoint of the run loaded first), or a `DataError` saying why there is none."""
        self.refresh()
        if self.loaded is None:
            raise DataError(self.problem or "no model is loaded")
        return self.loaded

    def refresh(self) -> None:
        """Load the model if it is not loaded yet, or if its run has written a newer checkpoint since."""
        with self.lock:
            newest = self._newest_step_folder()
            if self._tried and newest == self._newest_folder:
                return  # each checkpoint is tried once: a broken one is not rebuilt on every request
            self._tried, self._newest_folder = True, newest
            try:
                self.loaded = self._load()
                self.problem = None
            except MedimError as exc:
                if self.loaded is not None:  # keep serving the weights that loaded before
                    logger.warning("%s: newer checkpoint %s not loaded: %s", self.source.describe(), newest, exc)
                    return
                self.problem = f"{self.source.describe()} cannot be served: {exc}"
                logger.warning(self.problem)

    def status(self) -> str:
        """One line for the page: what is served, from which step and on which device, or why nothing is."""
        if self.loaded is None:
            return f"⚠️ {self.problem}"
        loaded = self.loaded
        config = loaded.experiment.config
        step = "" if loaded.step is None else f" at step {loaded.step:,} of {config.train.steps:,}"
        follows = " (a newer checkpoint of the run is loaded on the next request)" if self.source.run_dir else ""
        return (
            f"Serving {self.source.describe()}{step}{follows}: experiment `{config.name}`, "
            f"{loaded.experiment.task.describe_roles()}, on {loaded.device.type}."
        )

    def _newest_step_folder(self) -> str | None:
        """The newest step folder's name in the run (a cheap check for new checkpoints), None for other sources."""
        folders = [] if self.source.run_dir is None else step_folders(self.source.run_dir)
        return folders[-1][1].name if folders else None

    def _load(self) -> LoadedModel:
        source = self.source
        checkpoint: Path | None = None
        if source.run_dir is not None:
            checkpoint = latest_checkpoint(source.run_dir)
            if checkpoint is None:
                raise DataError(
                    f"run {source.run_dir} has no checkpoint yet: it is still training its first steps (or was never "
                    f"trained); the demo loads its first checkpoint as soon as one is written, so submit again then"
                )
            experiment, backbone = load_run(source.run_dir, overrides=source.overrides)
        elif (run := source.run_of_checkpoint()) is not None:
            checkpoint = source.checkpoint
            step = folder_step(checkpoint)
            if step is None:
                raise DataError(f"{checkpoint} is not a checkpoint folder (named step_NNNNNNN) of a run")
            problem = checkpoint_problem(checkpoint, step, legacy_ok=True)
            if problem is not None:
                raise DataError(f"checkpoint {checkpoint} is not usable: {problem}")
            experiment, backbone = open_run(run, run_config(run), checkpoint=checkpoint)
        else:
            if source.checkpoint is None or not source.checkpoint.is_dir():
                raise DataError(f"{source.checkpoint} is not a folder; give a run directory or a checkpoint folder")
            experiment, backbone = open_release(source.checkpoint, source.experiment, source.overrides)
        backbone.to(self.device)
        loaded = LoadedModel(
            experiment,
            backbone,
            self.device,
            checkpoint,
            None if checkpoint is None else checkpoint_step(checkpoint),
            usable_samplers(experiment),
        )
        _add_examples(loaded)
        logger.info("demo: %s", checkpoint or source.checkpoint)
        return loaded


def usable_samplers(experiment: Experiment) -> dict[str, Sampler]:
    """Every registered sampler that can decode this model, by name (the run's own first, with its settings)."""
    configured = experiment.config.sampler.name
    samplers = {configured: experiment.sampler}
    noise_kind = experiment.noise.noise_kind
    for name in SAMPLERS.names():
        if name == configured or noise_kind not in getattr(SAMPLERS.get(name).cls, "supported_noise", ()):
            continue
        try:
            sampler = SAMPLERS.build(
                {"name": name}, f"sampler {name}", mask_id=experiment.layout.mask_id, noise=experiment.noise
            )
            check_decoding(experiment.objective, sampler, experiment.config)
        except (ConfigError, RegistryError, ValueError):
            continue  # needs settings of its own, or decodes another kind of model
        samplers[name] = sampler
    return samplers


def _add_examples(loaded: LoadedModel) -> None:
    """The first test-split pairs as examples, and the true labels of those images."""
    dataset = loaded.experiment.dataset
    if dataset is None:
        return
    split = dataset.split("test")
    tokenizer = loaded.experiment.image_tokenizer
    for index in range(min(EXAMPLES, len(split))):
        image = np.asarray(split.images[index])
        labels = None if split.labels is None else split.labels[index]
        loaded.examples.append(Example(split.reports[index], image, labels))
        if labels is not None:
            seen = tokenizer.preprocess(Image.fromarray(image))
            loaded.labels_by_image[image_key(seen)] = labels
