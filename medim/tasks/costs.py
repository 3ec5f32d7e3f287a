"""What a generation costs: backbone calls, network evaluations per sample, reused predictions, seconds."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class DecodeStats:
    """What a generation cost: backbone calls, calls per sample (a guided pair counts once), reuse, time."""

    forward_calls: int = 0
    evaluations: list[int] = field(default_factory=list)
    reused: int = 0
    seconds: float = 0.0

    def add(self, other: DecodeStats) -> None:
        """Accumulate another generation's cost (its samples appended after these)."""
        self.forward_calls += other.forward_calls
        self.evaluations += other.evaluations
        self.reused += other.reused
        self.seconds += other.seconds

    def summary(self) -> dict[str, float]:
        """Per-sample averages, as `medim eval` and the benchmarks report them."""
        samples = max(1, len(self.evaluations))
        return {
            "samples": len(self.evaluations),
            "network_evaluations_per_sample": sum(self.evaluations) / samples,
            "seconds_per_sample": self.seconds / samples,
            "forward_calls": self.forward_calls,
            "reused_predictions": self.reused,
        }


class CostCounter:
    """The running count of one generation of `batch` samples."""

    def __init__(self, batch: int) -> None:
        self.forward_calls = 0
        self.reused = 0
        self.evaluations = torch.zeros(batch, dtype=torch.long)

    def forward(self, index: torch.Tensor) -> None:
        """One backbone call that predicted the samples `index`."""
        self.forward_calls += 1
        self.evaluations[index.cpu()] += 1

    def stats(self, seconds: float) -> DecodeStats:
        """The count as a `DecodeStats`."""
        return DecodeStats(self.forward_calls, self.evaluations.tolist(), self.reused, seconds)
