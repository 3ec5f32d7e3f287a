"""The downstream-augmentation experiment as YAML: which run generates, which report model is trained, how it is scored.

    name: augmentation
    output_dir: runs/downstream            # everything goes to OUTPUT_DIR/NAME/
    generator: {run: runs/quickstart, num_pairs: 2000, overrides: [eval.num_steps=40]}
    model: {experiment: quickstart, overrides: [task=image_to_text, train.steps=500]}
    mixture: {weights: size}
    evaluation: {protocol: paper, resamples: 1000, seed: 0}

Overrides on the command line are dotted keys of this file (`generator.num_pairs=64`), except that a
key under `model.` naming a section of the model experiment, or under `generator.` naming a decoding
section of the generator run (`sampler`, `eval`), is passed on to it: `model.train.steps=10` appends
`train.steps=10` to `model.overrides`, `generator.eval.num_steps=8` to `generator.overrides`, and
`~model.train.max_minutes` deletes that key there. The model's data block is the set of real pairs;
its `eval` section says how both arms decode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medim.config import ExperimentConfig, load_experiment
from medim.config.loading import apply_overrides, find_experiment, load_layered
from medim.config.policy import DECODING_SECTIONS
from medim.errors import ConfigError
from medim.registry.params import describe_validation_error


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GeneratorConfig(_Section):
    """The trained run that draws image-report pairs from nothing, and how many it draws."""

    run: str = Field("runs/quickstart", description="a medim run directory whose task generates image and text")
    num_pairs: int = Field(2000, gt=0, description="generated pairs added to the real training pairs (arm B)")
    holdout_pairs: int = Field(
        8,
        gt=0,
        description="further generated pairs in the folder's val/ and test/ (a paired folder needs every split); "
        "arm B's validation loss sees them, no score does",
    )
    overrides: list[str] = Field(
        default_factory=list, description="decoding overrides of the run: sampler=..., eval.num_steps=..."
    )


class ModelConfig(_Section):
    """The image->text report model both arms train: an experiment whose data block holds the real pairs."""

    experiment: str = Field("quickstart", description="a bundled experiment name or a YAML path")
    overrides: list[str] = Field(default_factory=list, description="key.path=value overrides of that experiment")


class MixtureConfig(_Section):
    """How arm B draws from its two members, `real` and `generated`."""

    weights: Literal["size"] | dict[Literal["real", "generated"], float] = Field(
        "size", description="size: in proportion to the members' sizes; or {real: w, generated: w}"
    )


class EvaluationConfig(_Section):
    """How both arms' test reports are scored."""

    protocol: str = Field("paper", description="report-metric protocol: paper (MeDiM's), r2gen or coco")
    metrics: tuple[str, ...] = Field(
        ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor"), min_length=1, description="the table's report metrics"
    )
    resamples: int = Field(1000, gt=0, description="paired-bootstrap resamples of the test items")
    seed: int = Field(0, description="seed of the bootstrap's resamples")


class AugmentationConfig(_Section):
    """One downstream-augmentation experiment (module docstring)."""

    name: str = "augmentation"
    description: str = ""
    output_dir: str = "runs/downstream"
    generator: GeneratorConfig = GeneratorConfig()
    model: ModelConfig = ModelConfig()
    mixture: MixtureConfig = MixtureConfig()
    evaluation: EvaluationConfig = EvaluationConfig()

    @property
    def out_dir(self) -> Path:
        """Where this experiment writes: the generated pairs, both arms' runs, the results."""
        return Path(self.output_dir) / self.name

    def model_experiment(self) -> ExperimentConfig:
        """The report model's validated experiment (arm A's, before it is placed in `out_dir`)."""
        return load_experiment(self.model.experiment, list(self.model.overrides))


#: Blocks whose keys that are not their own fields but sections of the run or experiment they name are overrides of
#: it: the generator run's decoding sections, any section of the model experiment.
FORWARDING_BLOCKS: dict[str, tuple[type[_Section], tuple[str, ...]]] = {
    "generator": (GeneratorConfig, DECODING_SECTIONS),
    "model": (ModelConfig, tuple(ExperimentConfig.model_fields)),
}


def load_augmentation(name_or_path: str | Path, overrides: list[str] | None = None) -> AugmentationConfig:
    """Read (with `defaults:` layering), override and validate an augmentation file; errors name file and key."""
    path = find_experiment(name_or_path)
    data, _ = load_layered(path)
    own, forwarded = split_overrides(list(overrides or []))
    data = apply_overrides(data, own, set())
    for block, extra in forwarded.items():
        section = data.setdefault(block, {})
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: {block} must be a mapping, got {section!r}")
        section["overrides"] = [*(section.get("overrides") or []), *extra]
    context = f"downstream experiment {path}" + (f" (with overrides {' '.join(overrides)})" if overrides else "")
    try:
        return AugmentationConfig(**data)
    except ValidationError as exc:
        raise ConfigError(f"{context} is invalid:\n{describe_validation_error(exc)}") from None
    except TypeError as exc:
        raise ConfigError(f"{context} is invalid: {exc}") from None


def split_overrides(overrides: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """(overrides of the file itself, {block: overrides passed on to what the block names}) (module docstring)."""
    own: list[str] = []
    forwarded: dict[str, list[str]] = {}
    for override in overrides:
        deleting = override.startswith("~")
        key = override[1:] if deleting else override
        block, _, rest = key.partition(".")
        field = rest.partition("=")[0].split(".")[0]
        own_fields, target_sections = FORWARDING_BLOCKS.get(block, (_Section, ()))
        if rest and field not in own_fields.model_fields and field in target_sections:
            forwarded.setdefault(block, []).append(("~" if deleting else "") + rest)
        else:
            own.append(override)
    return own, forwarded
