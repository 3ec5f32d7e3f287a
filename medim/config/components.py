"""Component blocks as typed, validated values: a registered name and that component's `Params`.

In YAML a component is a flat block, `backbone: {name: hf_decoder, hidden_size: 128}`.
In an `ExperimentConfig` it is a `ComponentSpec`: `config.backbone.name` is the
name and `config.backbone.params` the validated `Params` object (every default
filled in), so code reads typed attributes, never dict keys. It dumps back to the
flat block, so `resolved.yaml` round-trips unchanged.

Each block kind is a subclass naming its registry; pydantic validates every block of
an experiment in one pass, so all problems are reported at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, SerializationInfo, SerializeAsAny, model_serializer, model_validator
from pydantic_core import PydanticCustomError

from medim.errors import RegistryError
from medim.registry import (
    BACKBONES,
    DATASETS,
    LAYOUTS,
    NOISE,
    OBJECTIVES,
    REPORT_METRICS,
    SAMPLERS,
    TASKS,
    TOKENIZERS,
    ComponentParams,
    Registry,
)
from medim.registry.params import validate_params


class ComponentSpec(BaseModel):
    """A validated component block: `name` (registered) and `params` (its `Params`, defaults filled in)."""

    model_config = ConfigDict(frozen=True)
    #: The registry the block's name is looked up in (set by each subclass).
    registry: ClassVar[Registry]

    name: str
    params: SerializeAsAny[ComponentParams]

    @model_validator(mode="wrap")
    @classmethod
    def _from_block(cls, value: Any, handler: Any) -> ComponentSpec:
        """Accept a flat `{name: ..., **params}` block (or another spec) and validate it by its registry."""
        if isinstance(value, ComponentSpec):
            value = value.block()
        if not isinstance(value, Mapping) or "name" not in value:
            raise PydanticCustomError(
                "medim_component",
                "expected a block with a `name:` key naming one of {kind} ({names}), got {got}",
                {"kind": cls.registry.kind, "names": ", ".join(cls.registry.names()), "got": repr(value)},
            )
        try:
            entry = cls.registry.get(value["name"])
        except RegistryError as exc:
            raise PydanticCustomError("medim_component", "{message}", {"message": str(exc)}) from None
        params = validate_params(entry.params, {k: v for k, v in value.items() if k != "name"})
        return cls.model_construct(name=entry.name, params=params)

    @model_serializer
    def _flat(self, info: SerializationInfo) -> dict[str, Any]:
        return {"name": self.name, **self.params.model_dump(mode=info.mode)}

    def block(self) -> dict[str, Any]:
        """The flat YAML block `{name: ..., **params}` (JSON-able values)."""
        return self.model_dump(mode="json")

    def entry_class(self) -> type:
        """The registered class this block builds."""
        return self.registry.get(self.name).cls

    def build(self, **runtime: Any) -> Any:
        """The component, constructed as `cls(params, **runtime)`."""
        return self.entry_class()(self.params, **runtime)


class DatasetSpec(ComponentSpec):
    """A `data:` block."""

    registry: ClassVar[Registry] = DATASETS


class TokenizerSpec(ComponentSpec):
    """A `tokenizers.image:` or `tokenizers.text:` block."""

    registry: ClassVar[Registry] = TOKENIZERS


class LayoutSpec(ComponentSpec):
    """A `layout:` block."""

    registry: ClassVar[Registry] = LAYOUTS


class BackboneSpec(ComponentSpec):
    """A `backbone:` block."""

    registry: ClassVar[Registry] = BACKBONES


class NoiseSpec(ComponentSpec):
    """A `noise:` block."""

    registry: ClassVar[Registry] = NOISE


class ObjectiveSpec(ComponentSpec):
    """An `objective:` block."""

    registry: ClassVar[Registry] = OBJECTIVES


class SamplerSpec(ComponentSpec):
    """A `sampler:` block."""

    registry: ClassVar[Registry] = SAMPLERS


class TaskSpec(ComponentSpec):
    """A `task:` block."""

    registry: ClassVar[Registry] = TASKS


class ReportMetricSpec(ComponentSpec):
    """An entry of `eval.report_metrics`: a report-metric protocol (`paper`, `r2gen`, `coco`)."""

    registry: ClassVar[Registry] = REPORT_METRICS
