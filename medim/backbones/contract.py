"""The backbone contract, checked whenever an experiment builds a backbone: one forward that costs nothing.

A backbone must return hidden states [B, L, D] (one per input position, D = `hidden_size`) and an
`output_weight()` of [V' >= V, D]. A backbone that breaks this would otherwise pass `medim build` and
fail deep inside training (an index out of bounds in the loss), so `check_backbone` runs one forward
on a [2, L] batch of valid ids when the backbone is built, at no cost at any size:

  - parameters on the meta device (built with `empty_weights()`): a plain forward on meta inputs;
  - real weights: the forward under `FakeTensorMode`, which computes shapes only;
  - an op fake tensors cannot run: a real forward, for backbones under REAL_FORWARD_LIMIT parameters
    (larger ones are left to `medim check`, as are ops without a meta kernel).

The forward leaves the global random state as it was, so checking never changes what training draws.
`medim check NAME` runs the full conformance checks (`medim.conformance.backbones`), with the same wording.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from medim.errors import ConfigError

#: Backbones with at most this many parameters get a real forward when fake tensors cannot run theirs.
REAL_FORWARD_LIMIT = 50_000_000
#: Sequences in the checking batch.
BATCH = 2


def hidden_states_problem(name: str, got: Sequence[int] | str, batch: int, length: int, hidden_size: int) -> str | None:
    """What is wrong with hidden states of shape `got` (or a description of a non-tensor), or None."""
    expected = (batch, length, hidden_size)
    if not isinstance(got, str) and tuple(got) == expected:
        return None
    found = got if isinstance(got, str) else _bracket(got)
    return (
        f"backbone {name!r}: forward must return hidden states [B, L, D] = {_bracket(expected)} "
        f"(one per input position; Backbone.forward), got {found}"
    )


def output_weight_problem(name: str, got: Sequence[int], vocab_size: int, hidden_size: int) -> str | None:
    """What is wrong with an output weight of shape `got` for V = `vocab_size` ids, or None."""
    if len(got) == 2 and got[0] >= vocab_size and got[1] == hidden_size:
        return None
    return (
        f"backbone {name!r}: output_weight() must be [V', D] = [>= {vocab_size}, {hidden_size}] "
        f"(a row per vocabulary id, as wide as the hidden states; Backbone.output_weight), got {_bracket(got)}"
    )


def hidden_size_problem(name: str, backbone: nn.Module) -> str | None:
    """What is wrong with the backbone's `hidden_size` attribute, or None."""
    value = getattr(backbone, "hidden_size", None)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return None
    return f"backbone {name!r}: must set hidden_size, the width D of its hidden states (Backbone), got {value!r}"


def check_backbone(backbone: nn.Module, name: str, vocab_size: int, length: int) -> None:
    """Raise ConfigError when the built backbone breaks the contract on a [2, L] batch (module docstring)."""
    problem = hidden_size_problem(name, backbone)
    if problem is None:
        hidden_size = backbone.hidden_size
        problem = output_weight_problem(name, tuple(backbone.output_weight().shape), vocab_size, hidden_size)
        if problem is None:
            hidden = _free_forward(backbone, name, vocab_size, length)
            if hidden is not None:
                got = tuple(hidden.shape) if isinstance(hidden, Tensor) else f"a {type(hidden).__name__}"
                problem = hidden_states_problem(name, got, BATCH, length, hidden_size)
    if problem is not None:
        raise ConfigError(f"{problem}. Checked when the backbone is built; `medim check {name}` runs every check")


def _free_forward(backbone: nn.Module, name: str, vocab_size: int, length: int) -> object | None:
    """The output of one forward computed without real compute (module docstring), or None if none can be had."""
    parameter = next(backbone.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        if device.type == "meta":
            try:
                return backbone(*_inputs(vocab_size, length, device))
            except Exception:  # an op without a meta kernel: nothing to learn here
                return None
        from torch._subclasses.fake_tensor import FakeTensorMode

        try:
            with FakeTensorMode(allow_non_fake_inputs=True):
                return backbone(*_inputs(vocab_size, length, device))
        except Exception:  # an op fake tensors cannot run: a real forward where that is cheap
            if sum(p.numel() for p in backbone.parameters()) > REAL_FORWARD_LIMIT:
                return None
        try:
            return backbone(*_inputs(vocab_size, length, device))
        except Exception as exc:
            raise ConfigError(
                f"backbone {name!r}: forward must take a [{BATCH}, {length}] batch of ids below {vocab_size} and "
                f"noise levels [{BATCH}] (Backbone.forward), but raised {type(exc).__name__}: {exc}"
            ) from exc


def _inputs(vocab_size: int, length: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Valid ids [B, L] and noise levels [B]."""
    tokens = torch.arange(BATCH * length, device=device).reshape(BATCH, length) % vocab_size
    return tokens, torch.ones(BATCH, device=device)


def _bracket(values: Sequence[int]) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"
