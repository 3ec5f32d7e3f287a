"""The validated experiment: one `ExperimentConfig` built from layered YAML and overrides.

Component blocks (`backbone:`, `sampler:`, ...) become typed `ComponentSpec`s (a name and
its validated `Params`, every default filled in); they dump back to flat blocks, so
`resolved.yaml` shows exactly what ran.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

from medim.config.components import (
    BackboneSpec,
    ComponentSpec,
    DatasetSpec,
    LayoutSpec,
    NoiseSpec,
    ObjectiveSpec,
    ReportMetricSpec,
    SamplerSpec,
    TaskSpec,
    TokenizerSpec,
)
from medim.config.image_metrics import ImageMetricsConfig
from medim.config.loading import (
    apply_overrides,
    changed_keys,
    find_experiment,
    load_layered,
    read_yaml,
)
from medim.config.modalities import ModalityName
from medim.errors import ConfigError
from medim.registry import TOKENIZERS, Registry
from medim.registry.params import describe_validation_error

#: Dotted path of each component block and the registry that validates it.
COMPONENT_BLOCKS: dict[str, Registry] = {
    "data": DatasetSpec.registry,
    "tokenizers.image": TokenizerSpec.registry,
    "tokenizers.text": TokenizerSpec.registry,
    "layout": LayoutSpec.registry,
    "backbone": BackboneSpec.registry,
    "noise": NoiseSpec.registry,
    "objective": ObjectiveSpec.registry,
    "sampler": SamplerSpec.registry,
    "task": TaskSpec.registry,
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainConfig(_Section):
    """Optimisation and bookkeeping of `medim train`."""

    steps: int = Field(1500, gt=0, description="optimizer steps in total")
    batch_size: int = Field(64, gt=0, description="global batch: samples per optimizer step over all processes")
    micro_batch_size: int | None = Field(
        None,
        gt=0,
        description="samples per process per forward; null = batch_size / processes; gradient accumulation = "
        "batch_size / (micro_batch_size x processes)",
    )
    lr: float = Field(2e-3, gt=0, description="peak learning rate")
    lr_schedule: Literal["cosine", "linear", "constant", "cosine_restarts", "warm_restarts"] = Field(
        "cosine",
        description="after warmup: cosine or linear decay to min_lr_ratio, constant; cosine_restarts "
        "(transformers' cosine_with_hard_restarts_schedule_with_warmup, the schedule MeDiM's configs name; "
        "lr_cycles cycles) or warm_restarts (torch's CosineAnnealingWarmRestarts after a linear warmup, the "
        "schedule MeDiM's code runs; cycles of lr_cycle_steps growing by lr_cycle_mult)",
    )
    lr_cycles: int = Field(1, gt=0, description="hard restarts of lr_schedule: cosine_restarts (its num_cycles)")
    lr_cycle_steps: int | None = Field(
        None, gt=0, description="lr_schedule: warm_restarts: the first cycle's length (T_0); null = steps - warmup"
    )
    lr_cycle_mult: int = Field(1, gt=0, description="lr_schedule: warm_restarts: each cycle this many times longer")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="final lr as a fraction of the peak (cosine decay)")
    warmup_steps: int = Field(100, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    betas: tuple[float, float] = (0.9, 0.98)
    grad_clip: float | None = Field(1.0, gt=0, description="max gradient norm; null disables clipping")
    eval_every: int = Field(250, gt=0, description="steps between validation-loss measurements")
    val_batches: int = Field(4, gt=0)
    checkpoint_every: int = Field(500, gt=0)
    keep_checkpoints: int = Field(2, gt=0, description="how many recent checkpoints stay on disk")
    log_every: int = Field(25, gt=0)
    max_minutes: float | None = Field(
        None, gt=0, description="stop (with a checkpoint) once training has run this long"
    )
    keep_every: int | None = Field(
        None, gt=0, description="also keep every checkpoint whose step is a multiple of this; null = none"
    )
    val_batch_size: int | None = Field(None, gt=0, description="rows per validation forward; null = batch_size")
    gallery_samples: int = Field(
        4,
        ge=0,
        description="validation pairs generated per direction every eval_every steps into RUN_DIR/gallery/ "
        "(with the run's eval.* decoding); 0 = none",
    )
    mixed_precision: Literal["no", "bf16", "fp16"] = Field(
        "no", description="autocast of training (fp16 with accelerate's loss scaler; needs a GPU)"
    )
    ema_decay: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="exponential moving average of the weights (saved, resumed, used for generation); null = off",
    )
    nonfinite: Literal["skip", "stop"] = Field(
        "skip",
        description="a non-finite loss or gradient: skip the update (counted) or stop naming the step and samples",
    )
    loggers: tuple[Literal["jsonl", "tensorboard", "wandb"], ...] = Field(
        ("jsonl",), description="metric sinks: train_log.jsonl (always), TensorBoard, Weights & Biases"
    )
    num_threads: int | None = Field(None, gt=0, description="torch CPU threads; null = torch default")
    fused_optimizer: bool = Field(
        True, description="AdamW's fused kernel (all parameters in one pass, CPU or GPU); false = torch's foreach"
    )
    compile: bool = Field(
        False,
        description="run the backbone under torch.compile: faster steps on a GPU after a compilation of minutes; "
        "slower on a small CPU (benchmarks/RESULTS.md)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.micro_batch_size is not None and self.micro_batch_size > self.batch_size:
            raise ValueError(
                f"train.micro_batch_size ({self.micro_batch_size}) exceeds train.batch_size ({self.batch_size}), "
                f"the global batch; choose a divisor of it"
            )
        if self.lr_cycles != 1 and self.lr_schedule != "cosine_restarts":
            raise ValueError(f"train.lr_cycles applies to lr_schedule: cosine_restarts, not {self.lr_schedule}")
        if (self.lr_cycle_steps is not None or self.lr_cycle_mult != 1) and self.lr_schedule != "warm_restarts":
            raise ValueError(
                f"train.lr_cycle_steps and train.lr_cycle_mult apply to lr_schedule: warm_restarts, not "
                f"{self.lr_schedule}"
            )
        if "jsonl" not in self.loggers or len(set(self.loggers)) != len(self.loggers):
            raise ValueError(
                f"train.loggers must name jsonl (train_log.jsonl, which resuming relies on) and each logger once, "
                f"got {list(self.loggers)}"
            )
        return self


class EvalConfig(_Section):
    """What `medim eval` generates and scores on the held-out split."""

    split: Literal["val", "test"] = "test"
    num_samples: int = Field(200, gt=0, description="held-out pairs used for image->text and text->image")
    joint_samples: int = Field(64, ge=0, description="unconditional image+report pairs to generate")
    num_steps: int = Field(32, gt=0, description="sampler steps per generation (also `medim generate`'s default)")
    modality_steps: dict[ModalityName, PositiveInt] = Field(
        default_factory=dict,
        description="per-modality step counts in joint generation, e.g. {image: 128, text: 64}; others use num_steps",
    )
    cfg_scale: float = Field(0.0, ge=0, description="classifier-free guidance weight w (0 = off)")
    autocast: Literal["none", "float16", "bfloat16"] = Field(
        "none",
        description="autocast dtype of the backbone's forward in generation and evaluation; "
        "MeDiM: float16 over float32 weights",
    )
    batch_size: int = Field(100, gt=0)
    classifier_epochs: int = Field(6, gt=0, description="epochs of the finding classifier that judges images")
    gallery_size: int = Field(16, ge=0)
    report_metrics: tuple[ReportMetricSpec, ...] = Field(
        default_factory=lambda: (ReportMetricSpec.model_validate({"name": "r2gen"}),),
        description="report-metric protocols scoring generated reports against the held-out ones (paper: MeDiM's "
        "NLTK/rouge numbers; r2gen: the chest X-ray literature's pycocoevalcap on R2Gen-cleaned text; coco: "
        "captioning's, PTB-tokenised); [] = none",
    )
    image_metrics: ImageMetricsConfig | None = Field(
        None,
        description="FID (pytorch-fid), KID and Inception Score (torch-fidelity) of text->image samples against the "
        "held-out images, from local weights files (the image-metrics extra); null = none",
    )
    bootstrap_resamples: int = Field(
        1000,
        ge=0,
        description="percentile-bootstrap resamples over test items for every score's 95 % interval (seeded by "
        "the run's seed); 0 = no intervals",
    )


class TokenizersConfig(_Section):
    """The image and text tokenizers (each a `tokenizers` component)."""

    image: TokenizerSpec
    text: TokenizerSpec


class ExperimentConfig(_Section):
    """One experiment: every component by name with its params, plus training and evaluation."""

    name: str = Field(description="run name; the run directory is output_dir/name")
    description: str = ""
    seed: int = 0
    output_dir: str = "runs"
    data: DatasetSpec
    tokenizers: TokenizersConfig
    layout: LayoutSpec
    backbone: BackboneSpec
    noise: NoiseSpec
    objective: ObjectiveSpec = Field(
        default_factory=lambda: ObjectiveSpec.model_validate({"name": "elbo"}),
        description="training loss and corruption",
    )
    sampler: SamplerSpec
    task: TaskSpec
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()

    @property
    def run_dir(self) -> Path:
        """Where `medim train` writes this experiment's outputs."""
        return Path(self.output_dir) / self.name

    def component(self, path: str) -> ComponentSpec:
        """The block at a dotted component path such as `tokenizers.image`."""
        node: Any = self
        for part in path.split("."):
            node = getattr(node, part)
        return node

    def to_yaml(self) -> str:
        """The full resolved config as YAML (what `resolved.yaml` holds)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def load_experiment(name_or_path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read, layer, override and validate an experiment; errors name the file and key path."""
    path = find_experiment(name_or_path)
    data, files = load_layered(path)
    data = apply_overrides(data, list(overrides or []), set(COMPONENT_BLOCKS))
    context = f"experiment {path}" + (f" (with overrides {' '.join(overrides)})" if overrides else "")
    return validate_experiment(data, context)


#: Keys older medim versions wrote into `resolved.yaml` that no longer exist, and why dropping them is safe.
RETIRED_KEYS = {
    ("eval", "temperature"): "it had no effect; the token temperature is sampler.temperature",
}


def load_resolved(path: str | Path) -> ExperimentConfig:
    """A run's `resolved.yaml`, validated; keys of older versions that had no effect are dropped, and
    sections added since (e.g. `objective`) take their defaults, which match what those versions did."""
    data = read_yaml(Path(path))
    for section, key in RETIRED_KEYS:
        if isinstance(data.get(section), dict):
            data[section].pop(key, None)
    return validate_experiment(data, context=str(path))


def with_overrides(
    config: ExperimentConfig, overrides: Sequence[str], context: str, only: Sequence[str] | None = None
) -> ExperimentConfig:
    """`config` with dotted overrides applied and validated; `only` names the top-level sections that may change."""
    if not overrides:
        return config
    before = config.model_dump(mode="json")
    updated = validate_experiment(
        apply_overrides(before, list(overrides), set(COMPONENT_BLOCKS)),
        f"{context} (with overrides {' '.join(overrides)})",
    )
    fixed = [
        k
        for k in changed_keys(before, updated.model_dump(mode="json"))
        if only is not None and k.split(".")[0] not in only
    ]
    if fixed:
        raise ConfigError(
            f"{context}: overrides may change only {', '.join(f'{s}.*' for s in only or ())} here, "
            f"not {', '.join(fixed)} (those define the trained model)"
        )
    return updated


def validate_experiment(data: dict[str, Any], context: str = "experiment") -> ExperimentConfig:
    """Validate a merged experiment dict, every section and component block at once; all problems in one error."""
    try:
        config = ExperimentConfig(**data)
    except ValidationError as exc:
        raise ConfigError(f"{context} is invalid:\n{describe_validation_error(exc)}") from None
    except TypeError as exc:
        raise ConfigError(f"{context} is invalid: {exc}") from None
    check_compatibility(config, context)
    return config


def check_compatibility(config: ExperimentConfig, context: str) -> None:
    """Cross-component checks that need no built component (the rest happen at build time)."""
    sampler = config.sampler.entry_class()
    noise = config.noise.entry_class()
    supported = getattr(sampler, "supported_noise", ())
    if noise.noise_kind not in supported:
        raise ConfigError(
            f"{context}: sampler {config.sampler.name!r} supports noise kinds {list(supported)}, "
            f"but noise {config.noise.name!r} is {noise.noise_kind!r}; choose a matching sampler or noise"
        )
    for path in ("tokenizers.image", "tokenizers.text"):
        spec = config.component(path)
        modality = spec.entry_class().modality
        expected = path.split(".")[1]
        if modality != expected:
            raise ConfigError(
                f"{context}: {path} names {spec.name!r}, which tokenizes "
                f"{modality}s, not {expected}s; choose one of: {', '.join(tokenizer_names(expected))}"
            )


def tokenizer_names(modality: str) -> list[str]:
    """Registered tokenizers of one modality (`image` or `text`)."""
    return [n for n in TOKENIZERS.names() if TOKENIZERS.get(n).cls.modality == modality]
