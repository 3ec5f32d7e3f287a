"""Precision of generation and evaluation: the backbone's forward under autocast, as MeDiM runs it.

MeDiM keeps float32 weights and runs its forward under float16 autocast (its `bf16` setting
is turned into fp16 by its main.py): matrix products in float16, reductions and norms in
float32. Casting the weights themselves to bfloat16 (`backbone.dtype`) halves their memory but
moves the logits further (measured on a tiny release: 2.6 % relative for bfloat16 weights,
0.1 % for float16 autocast over float32 weights). `eval.autocast` picks the autocast dtype of
generation and evaluation; training keeps `train.mixed_precision` (accelerate).
"""

from __future__ import annotations

import warnings
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import nn

from medim.errors import ConfigError

#: `eval.autocast` values and the dtypes they autocast to ("none": the weights' own dtype).
AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"none": None, "float16": torch.float16, "bfloat16": torch.bfloat16}


def generation_autocast(device: torch.device | str, name: str) -> AbstractContextManager[Any]:
    """A context that runs the backbone's forward on `device` under autocast to `name` ("none": as it is).

    Checked when called, not when entered, so a device that cannot autocast to `name` is refused
    before anything is generated or written.
    """
    if name not in AUTOCAST_DTYPES:
        raise ConfigError(f"eval.autocast must be one of {', '.join(map(repr, AUTOCAST_DTYPES))}, not {name!r}")
    dtype = AUTOCAST_DTYPES[name]
    if dtype is None:
        return nullcontext()
    device_type = torch.device(device).type
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            context = torch.autocast(device_type, dtype=dtype)
        except RuntimeError as exc:  # an unknown device type, or CUDA without bfloat16
            raise ConfigError(
                f"eval.autocast {name!r}: the {device_type} device cannot autocast to {name}: {exc}"
            ) from None
    # torch disables autocast (with a warning) instead of raising for a dtype the device lacks
    if not getattr(context, "_enabled", True):
        reason = "; ".join(str(w.message).splitlines()[0] for w in caught) or "autocast is disabled"
        raise ConfigError(
            f"eval.autocast {name!r}: the {device_type} device cannot autocast to {name} ({reason}); "
            f"set eval.autocast to another value or 'none'"
        )
    return context


def weights_dtype(module: nn.Module) -> str:
    """The dtype of `module`'s floating-point parameters ('float32', or e.g. 'bfloat16+float32' when mixed)."""
    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in module.parameters() if p.is_floating_point()})
    return "+".join(dtypes) or "none"


def precision_record(module: nn.Module, autocast: str) -> dict[str, str]:
    """What a generation ran in: {'weights': dtype, 'autocast': eval.autocast} (for request.json and logs)."""
    return {"weights": weights_dtype(module), "autocast": autocast}


def describe_precision(record: dict[str, str]) -> str:
    """E.g. 'float32 weights, float16 autocast (MeDiM's)' or 'bfloat16 weights, no autocast'."""
    autocast = "no autocast" if record["autocast"] == "none" else f"{record['autocast']} autocast"
    medims = record == {"weights": "float32", "autocast": "float16"}
    return f"{record['weights']} weights, {autocast}" + (" (MeDiM's)" if medims else "")
