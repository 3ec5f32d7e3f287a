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

Loading is lean, because the release is 3.5B float32 parameters (13 GiB): `read_release`
reads only the file's header (safetensors) or pickle (a zip `.bin`, memory-mapped), so the
layer count and every key and shape check are known before a tensor is read; `load_release`
then reads one tensor at a time, casts it to the backbone's dtype and assigns it. A tensor already
in that dtype stays backed by the file's memory map (nothing is copied); a cast copies one tensor
and releases its mapping: the peak resident memory is the weights in the backbone's dtype plus one
tensor (`benchmarks/release_load.py` measures it).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from torch import Tensor

from medim.backbones.denoiser import DTYPES, DecoderDenoiser, DenoiserParams
from medim.errors import ConfigError, DataError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_WRAPPER_PREFIXES = ("_orig_mod.", "module.")
_LAYER = re.compile(r"^model\.layers\.(\d+)\.")
_HEAD = "lm_head.weight"
_EMBEDDING = "model.embed_tokens.weight"
#: safetensors' dtype names (the header's "dtype") as torch dtypes.
_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReleaseTensor:
    """What the file's header says about one tensor: its key in the file (prefixes included), shape, dtype."""

    stored: str
    shape: tuple[int, ...]
    dtype: torch.dtype


class ReleaseWeights(Mapping[str, Tensor]):
    """The tensors of a released weights file by name (wrapper prefixes removed), opened but not read.

    Names, shapes and dtypes come from the header; indexing (or `read`) reads one tensor into memory
    of its own, reopening the file so that nothing read before stays mapped.
    """

    def __init__(self, path: Path, tensors: dict[str, ReleaseTensor]) -> None:
        self.path = path
        self.tensors = tensors

    def __getitem__(self, key: str) -> Tensor:
        return self.read(key)

    def __contains__(self, key: object) -> bool:  # Mapping's default would read the tensor
        return key in self.tensors

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def shape(self, key: str) -> tuple[int, ...]:
        """A tensor's shape, from the header."""
        return self.tensors[key].shape

    def dtype(self, key: str) -> torch.dtype:
        """A tensor's stored dtype, from the header."""
        return self.tensors[key].dtype

    def read(self, key: str, dtype: torch.dtype | None = None) -> Tensor:
        """One tensor cast to `dtype` (default: as stored). Without a cast it stays backed by the file's
        memory map (no copy: the pages are read when used, and the page cache may drop them); a cast copies
        it out, and the mapping of the stored tensor is released with the file."""
        entry = self.tensors[key]
        try:
            with _tensor_reader(self.path) as get:
                return get(entry.stored).to(dtype or entry.dtype)
        except Exception as exc:  # safetensors/torch raise many unrelated types for a damaged file
            raise DataError(f"cannot read {key!r} from {self.path}: {exc}") from None


def release_weights_file(directory: str | Path) -> Path:
    """The weights file of a released checkpoint folder, with a clear error when there is none."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"--checkpoint {str(directory)!r} is not a directory (expected MeDiM's saved state folder)")
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return directory / name
    names = sorted(p.name for p in directory.iterdir())
    found = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "") or "nothing"
    raise DataError(f"--checkpoint {str(directory)!r} has none of {', '.join(WEIGHT_FILES)} (found: {found})")


def read_release(directory: str | Path) -> ReleaseWeights:
    """The released weights, wrapper prefixes removed, opened but not read (names, shapes and dtypes only)."""
    path = release_weights_file(directory)
    try:
        header = _safetensors_header(path) if path.suffix == ".safetensors" else _bin_header(path)
    except DataError:
        raise
    except Exception as exc:  # safetensors/torch raise many unrelated types for a damaged file
        raise DataError(f"cannot read {path}: {exc}") from None
    return ReleaseWeights(path, {_strip_wrappers(entry.stored): entry for entry in header})


def release_num_layers(state: Mapping[str, Tensor]) -> int:
    """Number of decoder layers in the released state dict (from its key names alone)."""
    layers = {int(m.group(1)) for k in state if (m := _LAYER.match(k))}
    if not layers:
        raise DataError("the checkpoint has no 'model.layers.N.*' tensors; it is not MeDiM's modified Gemma")
    return max(layers) + 1


def load_release(backbone: DecoderDenoiser, state: Mapping[str, Tensor]) -> None:
    """Put MeDiM's released weights (`read_release`, or any state dict) into a `liquid` backbone built with
    `empty_weights()`: every check on names and shapes first, then one tensor at a time, cast to the backbone's
    dtype."""
    _check_switches(backbone.params, state)
    sources = _sources(backbone, state)
    _check_fit(backbone, state, sources)
    if _HEAD in state:
        _check_head(backbone, state)
    dtype = DTYPES[backbone.params.dtype]
    for name, key in sources.items():
        backbone.load_state_dict({name: _tensor(state, key, dtype)}, strict=False, assign=True)
    where = f" from {state.path}" if isinstance(state, ReleaseWeights) else ""
    logger.info("MeDiM's release: read %d tensors%s into %s weights", len(sources), where, backbone.params.dtype)


def _check_switches(params: DenoiserParams, state: Mapping[str, Tensor]) -> None:
    """MeDiM's additions in the file need the backbone's matching switches."""
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


def _sources(backbone: DecoderDenoiser, state: Mapping[str, Tensor]) -> dict[str, str]:
    """Backbone parameter name -> release key; lm_head goes to an untied head, else it is only checked."""
    sources = {_medim_name(k): k for k in state if k != _HEAD}
    if _HEAD in state and backbone.head is not None:
        sources["head.weight"] = _HEAD
    return sources


def _check_fit(backbone: DecoderDenoiser, state: Mapping[str, Tensor], sources: dict[str, str]) -> None:
    """Refuse, by name, missing and unexpected keys and wrong shapes (from the header: nothing is read)."""
    expected = {k: tuple(v.shape) for k, v in backbone.state_dict().items()}
    shapes = {name: _shape(state, key) for name, key in sources.items()}
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong = [
        f"{k} {list(shapes[k])} vs {list(expected[k])}" for k in expected if k in shapes and shapes[k] != expected[k]
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


def _check_head(backbone: DecoderDenoiser, state: Mapping[str, Tensor]) -> None:
    """A tied backbone takes a released lm_head only when it equals the embedding (read only if the shapes agree)."""
    if backbone.head is not None or _EMBEDDING not in state:
        return
    same = _shape(state, _HEAD) == _shape(state, _EMBEDDING) and torch.equal(state[_HEAD], state[_EMBEDDING])
    if not same:
        raise ConfigError("the checkpoint's lm_head differs from its embedding, but the backbone ties them")


def _shape(state: Mapping[str, Tensor], key: str) -> tuple[int, ...]:
    return state.shape(key) if isinstance(state, ReleaseWeights) else tuple(state[key].shape)


def _tensor(state: Mapping[str, Tensor], key: str, dtype: torch.dtype) -> Tensor:
    return state.read(key, dtype) if isinstance(state, ReleaseWeights) else state[key].to(dtype)


def _safetensors_header(path: Path) -> list[ReleaseTensor]:
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        header = []
        for key in handle.keys():
            view = handle.get_slice(key)
            if view.get_dtype() not in _SAFETENSORS_DTYPES:
                raise DataError(f"cannot read {path}: {key!r} has the unsupported dtype {view.get_dtype()}")
            header.append(ReleaseTensor(key, tuple(view.get_shape()), _SAFETENSORS_DTYPES[view.get_dtype()]))
        return header


def _bin_header(path: Path) -> list[ReleaseTensor]:
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)  # mapped: no tensor is read
    if not isinstance(state, Mapping):
        raise DataError(f"cannot read {path}: it holds a {type(state).__name__}, not a state dict")
    odd = [str(k) for k, v in state.items() if not isinstance(v, Tensor)]
    if odd:
        raise DataError(f"cannot read {path}: {', '.join(odd[:6])} {'is' if len(odd) == 1 else 'are'} not tensors")
    return [ReleaseTensor(key, tuple(value.shape), value.dtype) for key, value in state.items()]


@contextmanager
def _tensor_reader(path: Path) -> Iterator[Callable[[str], Tensor]]:
    """The file opened for reading tensors by stored key; closed (and unmapped) on exit."""
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            yield handle.get_tensor
    else:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        yield state.__getitem__
        del state


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
