"""Parameter counts of a backbone by part, for `medim build` (works on meta-device dry runs)."""

from __future__ import annotations

from torch import nn

#: Top-level modules that are containers: their parts are counted one level deeper.
_CONTAINERS = ("model",)


def parameter_groups(module: nn.Module) -> dict[str, int]:
    """Parameters per part (`model.embed_tokens`, `model.layers`, `adaln`, ...); tied weights counted once."""
    groups: dict[str, int] = {}
    for name, parameter in module.named_parameters():
        parts = name.split(".")
        key = ".".join(parts[:2]) if parts[0] in _CONTAINERS and len(parts) > 2 else parts[0]
        groups[key] = groups.get(key, 0) + parameter.numel()
    return groups


def parameter_table(module: nn.Module) -> str:
    """A text table of `parameter_groups` with the total and its size in bf16 and fp32."""
    groups = parameter_groups(module)
    total = sum(groups.values())
    width = max(len(k) for k in [*groups, "total"])
    lines = [f"  {name:<{width}}  {count:>15,}" for name, count in groups.items()]
    lines.append(
        f"  {'total':<{width}}  {total:>15,}  "
        f"({_count(total)}; {_bytes(2 * total)} in bf16, {_bytes(4 * total)} in fp32)"
    )
    return "\n".join(lines)


def _count(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def _bytes(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"
