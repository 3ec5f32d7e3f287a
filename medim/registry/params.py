"""The base class of every component's `Params` model, and readable validation errors.

A component's `Params` is its whole YAML surface: unknown keys are refused
(`extra="forbid"`), values are checked when the config is loaded, and the model
is frozen so a built component cannot drift from what `resolved.yaml` records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

#: Error types whose message already says everything (no "(got ...)" is appended).
SELF_DESCRIBING = ("missing", "extra_forbidden", "medim_unknown_key", "medim_component")


class ComponentParams(BaseModel):
    """Base for component parameter models; subclass it as a nested `Params` class."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def validate_params(model: type[ComponentParams], values: Mapping[str, Any]) -> ComponentParams:
    """`model(**values)`; an unknown key is reported with the model's valid keys (pydantic's ValidationError)."""
    try:
        return model(**values)
    except ValidationError as exc:
        valid = ", ".join(model.model_fields) or "(none)"
        problems: list[InitErrorDetails] = []
        for error in exc.errors():
            if error["type"] == "extra_forbidden":
                kind = PydanticCustomError("medim_unknown_key", "unknown key; valid keys: {valid}", {"valid": valid})
                problems.append(InitErrorDetails(type=kind, loc=error["loc"], input=error["input"]))
            else:
                details = InitErrorDetails(type=error["type"], loc=error["loc"], input=error["input"])
                problems.append({**details, "ctx": error["ctx"]} if "ctx" in error else details)
        raise ValidationError.from_exception_data(exc.title, problems) from None


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """Turn a pydantic error into lines `key.path: problem (got value)`, one per problem."""
    lines = []
    for problem in exc.errors():
        location = ".".join(str(part) for part in (prefix, *problem["loc"]) if part != "")
        message = "unknown key" if problem["type"] == "extra_forbidden" else problem["msg"]
        shown = "" if problem["type"] in SELF_DESCRIBING else f" (got {_short(problem.get('input'))})"
        lines.append(f"{location or '<root>'}: {message}{shown}")
    return "\n".join(lines)


def fields_summary(params: type[BaseModel]) -> list[dict[str, Any]]:
    """Each field of a Params model as {name, type, default, description}, for `medim info`."""
    rows = []
    for name, field in params.model_fields.items():
        annotation = field.annotation
        plain = isinstance(annotation, type) and not getattr(annotation, "__args__", None)
        type_name = annotation.__name__ if plain else str(annotation).replace("typing.", "")
        rows.append(
            {
                "name": name,
                "type": type_name,
                "default": "<required>" if field.is_required() else field.get_default(call_default_factory=True),
                "description": field.description or "",
            }
        )
    return rows


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
