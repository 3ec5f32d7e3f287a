"""Per-sample random streams: each generated sample draws from its own seeded generator.

That makes generation batch-invariant: a sample drawn with seed k is the same
whether it is generated alone or beside other prompts, because the numbers it
consumes depend only on its own seed and its own decoding path (the shapes of
its draws are fixed by the layout, never by the rest of the batch).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


class RowGenerators:
    """Random draws stacked as [rows, *shape]: one `torch.Generator` per row, or one for all rows.

    Per-row generators (`from_seeds`) make generation batch-invariant; a single shared
    generator (`shared`) is faster for the large batches of statistical checks, where
    that does not matter.
    """

    def __init__(
        self, generators: Sequence[torch.Generator], shared: torch.Generator | None = None, rows: int = 0
    ) -> None:
        self.generators = list(generators)
        self._shared = shared
        self._rows = rows if shared is not None else len(self.generators)

    @classmethod
    def from_seeds(cls, seeds: Sequence[int], device: str | torch.device = "cpu") -> RowGenerators:
        """Generators on `device` seeded with `seeds`, one per row."""
        return cls([torch.Generator(device=device).manual_seed(int(seed)) for seed in seeds])

    @classmethod
    def shared(cls, generator: torch.Generator, rows: int) -> RowGenerators:
        """`rows` rows drawing together from one generator."""
        return cls([], generator, rows)

    def __len__(self) -> int:
        return self._rows

    def rows(self, selected: Tensor) -> RowGenerators:
        """The generators of the rows picked by a bool mask or an index tensor (shared, not copied)."""
        index = selected.nonzero()[:, 0] if selected.dtype == torch.bool else selected
        if self._shared is not None:
            return RowGenerators.shared(self._shared, len(index))
        return RowGenerators([self.generators[i] for i in index.tolist()])

    def rand(self, *shape: int) -> Tensor:
        """Uniform [0, 1) samples [rows, *shape], each row from its own generator (or all from the shared one)."""
        if self._shared is not None:
            return torch.rand((self._rows, *shape), generator=self._shared, device=self._shared.device)
        if not self.generators:
            return torch.empty(0, *shape)
        return torch.stack([torch.rand(shape, generator=g, device=g.device) for g in self.generators])

    def gumbel(self, *shape: int) -> Tensor:
        """Standard Gumbel samples -log(-log U), [rows, *shape]."""
        u = self.rand(*shape).clamp_(1e-20, 1.0 - 1e-7)
        return -torch.log(-torch.log(u))


def sample_seeds(seed: int | Sequence[int] | None, count: int) -> list[int]:
    """Per-sample seeds: `seed + i` for an int, the given list, or fresh random seeds for None."""
    if seed is None:
        return torch.randint(0, 2**62, (count,)).tolist()
    if isinstance(seed, int):
        return [seed + i for i in range(count)]
    seeds = [int(s) for s in seed]
    if len(seeds) != count:
        raise ValueError(f"got {len(seeds)} seeds for {count} samples; give one seed per sample")
    return seeds
