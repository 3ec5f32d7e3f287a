"""MeDiM's released checkpoint: the accelerate `save_state` folder of its modified GemmaForCausalLM.

The folder holds `model.safetensors` (or `pytorch_model.bin`) plus optimizer and
random states, but no config: the model is Liquid_V1_7B's Gemma cut to its first
layers (10), its embedding resized to 40196 rows, with a timestep MLP and AdaLN
that a stock Gemma ignores. Key names, and where they go in a `liquid` backbone:

    model.embed_tokens.weight                      -> model.embed_tokens.weight  [40196, 3072]
    model.layers.{i}.<attention / MLP / norms>     -> model.layers.{i}.<same>
    model.layers.{i}.adaLN_modulation.{weight,bias}-> adaln.{i}.linear.{weight,bias}
    model.time_embedder.mlp.{0,2}.{weight,bias}    -> time_embedder.mlp.{0,2}.{weight,bias}
    model.norm.weight                              -> model.norm.weight
    lm_head.weight (usually dropped as tied)       -> tied to the embedding

Prefixes added by torch.compile (`_orig_mod.`) or DDP (`module.`) are removed.
MeDiM's arithmetic is the raw AdaLN gate, so the backbone must use `adaln_gate: raw`.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor

from medim.backbones.denoiser import DTYPES, DecoderDenoiser
from medim.errors import ConfigError, DataError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_WRAPPER_PREFIXES = ("_orig_mod.", "module.")
_LAYER = re.compile(r"^model\.layers\.(\d+)\.")


def release_weights_file(directory: str | Path) -> Path:
    """The weights file of a released checkpoint folder, with a clear error when there is none."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"--checkpoint {str(directory)!r} is not a directory (expected MeDiM's saved state folder)")
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return directory / name
    found = ", ".join(sorted(p.name for p in directory.iterdir())) or "nothing"
    raise DataError(f"--checkpoint {str(directory)!r} has none of {', '.join(WEIGHT_FILES)} (found: {found})")


def read_release(directory: str | Path) -> dict[str, Tensor]:
    """The released state dict, wrapper prefixes removed."""
    path = release_weights_file(directory)
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # safetensors/torch raise many unrelated types for a damaged file
        raise DataError(f"cannot read {path}: {exc}") from None
    return {_strip_wrappers(k): v for k, v in state.items()}


def release_num_layers(state: dict[str, Tensor]) -> int:
    """Number of decoder layers in the released state dict."""
    layers = {int(m.group(1)) for k in state if (m := _LAYER.match(k))}
    if not layers:
        raise DataError("the checkpoint has no 'model.layers.N.*' tensors; it is not MeDiM's modified Gemma")
    return max(layers) + 1


def load_release(backbone: DecoderDenoiser, state: dict[str, Tensor]) -> None:
    """Put MeDiM's released weights into a `liquid` backbone built with `empty_weights()`."""
    params = backbone.params
    has_adaln = any(".adaLN_modulation." in k for k in state)
    problems = []
    if has_adaln and not params.adaln:
        problems.append("it has AdaLN weights: set backbone.adaln: true")
    if has_adaln and params.adaln_gate != "raw":
        problems.append("MeDiM multiplies by the raw AdaLN gate: set backbone.adaln_gate: raw")
    if any(k.startswith("model.time_embedder.") for k in state) and not params.timestep_embedding:
        problems.append("it has a timestep embedding: set backbone.timestep_embedding: true")
    if problems:
        raise ConfigError("the backbone does not match MeDiM's released checkpoint; " + "; ".join(problems))
    mapped = {_medim_name(k): v for k, v in state.items() if k != "lm_head.weight"}
    if "lm_head.weight" in state:
        _check_head(backbone, state["lm_head.weight"], mapped.get("model.embed_tokens.weight"))
        if backbone.head is not None:
            mapped["head.weight"] = state["lm_head.weight"]
    dtype = DTYPES[params.dtype]
    mapped = {k: v.to(dtype) for k, v in mapped.items()}
    expected = dict(backbone.state_dict())
    missing = sorted(set(expected) - set(mapped))
    unexpected = sorted(set(mapped) - set(expected))
    wrong = [
        f"{k} {list(mapped[k].shape)} vs {list(expected[k].shape)}"
        for k in expected
        if k in mapped and mapped[k].shape != expected[k].shape
    ]
    if missing or unexpected or wrong:
        raise DataError(
            "MeDiM's released weights do not fit this backbone: "
            + "; ".join(
                f"{label}: {', '.join(items[:6])}{' ...' if len(items) > 6 else ''}"
                for label, items in (
                    ("missing", missing),
                    ("unexpected", unexpected),
                    ("shape (checkpoint vs model)", wrong),
                )
                if items
            )
            + " (the layout must give 40196 rows: Llama-2 text + <boi>/<eoi>/<eos> + mask + 8192 image codes)"
        )
    backbone.load_state_dict(mapped, strict=True, assign=True)


def _strip_wrappers(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def _medim_name(key: str) -> str:
    if key.startswith("model.time_embedder."):
        return key[len("model.") :]
    match = _LAYER.match(key)
    if match and ".adaLN_modulation." in key:
        return f"adaln.{match.group(1)}.linear." + key.rsplit(".", 1)[1]
    return key


def _check_head(backbone: DecoderDenoiser, head: Tensor, embedding: Tensor | None) -> None:
    if backbone.head is None and embedding is not None and not torch.equal(head, embedding):
        raise ConfigError("the checkpoint's lm_head differs from its embedding, but the backbone ties them")
