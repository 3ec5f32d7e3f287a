"""Which rows each optimizer step trains on, and how its global batch is cut over processes and micro-batches.

A step's global batch is a function of (seed, step) alone: `batch_indices` (consecutive slices of
per-epoch permutations), or, for a dataset that is a weighted mixture, `MixtureBatches` (each sample's
member drawn by weight, then the next row of that member's own per-epoch permutations). The
corruption of the whole global batch is drawn once from the step's generator (`medim.training.trainer`)
and then sliced, so a sample's noise does not depend on how the batch is split: process p of W takes
rows [p B/W, (p+1) B/W), cut into accumulation micro-batches of `micro_batch_size` rows.

Loss normalisation: the objective normalises a batch's summed token losses by a count (`noisable`:
the scored noisable positions, MeDiM's; `masked`: the masked ones). Micro-batch m's loss is weighted by
its share of the global batch's count, n_m / n_global, times W (data-parallel averaging divides the
summed gradients by W), so the accumulated gradient is the global batch's gradient exactly, up to
float summation order. `normalize: modality` (per-modality counts) has no such scalar decomposition;
its micro-batches are weighted by their share of scored positions, exact when every micro-batch has the
same mix of tasks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from medim.data.paired import MixtureMember
from medim.errors import ConfigError, DataError
from medim.objectives.base import TrainingBatch


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """A generator that depends only on (seed, step, stream), the basis of exact resume."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 7 + stream)


#: Stream of `step_generator` that draws each sample's mixture member (0: corruption, 1: epoch order, 2: validation).
MIXTURE_STREAM = 3


def batch_indices(num_examples: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """Indices of step `step`'s batch: consecutive slices of per-epoch permutations (no repeats in an epoch)."""
    start = step * batch_size
    indices = []
    while len(indices) < batch_size:
        epoch, offset = divmod(start + len(indices), num_examples)
        order = torch.randperm(num_examples, generator=step_generator(seed, epoch, stream=1))
        indices.extend(order[offset : offset + batch_size - len(indices)].tolist())
    return torch.tensor(indices)


@dataclass(frozen=True)
class BatchSplit:
    """One step's global batch over `processes` processes, each running `accumulation` micro-batches."""

    batch_size: int
    processes: int
    micro_batch_size: int

    @property
    def accumulation(self) -> int:
        """Micro-batches each process accumulates per optimizer step."""
        return self.batch_size // (self.processes * self.micro_batch_size)

    @property
    def per_process(self) -> int:
        return self.batch_size // self.processes

    @classmethod
    def of(cls, batch_size: int, micro_batch_size: int | None, processes: int) -> BatchSplit:
        """The split of `train.batch_size` (global) into `processes` x accumulation x `train.micro_batch_size`."""
        if batch_size % processes:
            multiples = f"{processes * max(1, batch_size // processes)} or {processes * (batch_size // processes + 1)}"
            raise ConfigError(
                f"train.batch_size={batch_size} (the global batch) does not divide over {processes} processes; "
                f"choose a multiple of {processes}, e.g. {multiples}"
            )
        per_process = batch_size // processes
        micro = per_process if micro_batch_size is None else micro_batch_size
        if per_process % micro:
            divisors = [d for d in range(1, per_process + 1) if per_process % d == 0]
            raise ConfigError(
                f"train.micro_batch_size={micro} does not divide the per-process batch {per_process} "
                f"(train.batch_size={batch_size} over {processes} processes); valid: {', '.join(map(str, divisors))} "
                f"(or null for {per_process})"
            )
        return cls(batch_size, processes, micro)

    def micro_slices(self, rank: int) -> list[slice]:
        """The rows of the global batch that process `rank` runs, one slice per micro-batch, in order."""
        first = rank * self.per_process
        return [
            slice(first + i * self.micro_batch_size, first + (i + 1) * self.micro_batch_size)
            for i in range(self.accumulation)
        ]

    def describe(self) -> str:
        accumulation = f"{self.accumulation} micro-batches of {self.micro_batch_size}"
        return f"global batch {self.batch_size} = {self.processes} process(es) x {accumulation}"


def slice_batch(batch: TrainingBatch, rows: slice) -> TrainingBatch:
    """The rows `rows` of a corrupted batch (every per-sample tensor field sliced alike)."""
    size = batch.x0.shape[0]
    updates = {
        f.name: value[rows]
        for f in fields(batch)
        if isinstance(value := getattr(batch, f.name), Tensor) and value.dim() > 0 and value.shape[0] == size
    }
    return replace(batch, **updates)


def normaliser_shares(objective: object, batch: TrainingBatch, slices: Sequence[slice]) -> list[float]:
    """Each slice's share of the global batch's loss normaliser (module docstring); they sum to 1."""
    params = getattr(objective, "params", None)
    layout = getattr(objective, "layout", None)
    scorable = batch.noisable
    if layout is not None:
        scorable = layout.scorable(batch.x0, scorable)
        if getattr(params, "normalize", "noisable") == "masked":
            scorable = scorable & (batch.xt == layout.mask_id)
    per_row = scorable.sum(dim=tuple(range(1, scorable.dim()))).double()
    total = per_row.sum()
    if float(total) == 0.0:
        return [(s.stop - s.start) / batch.x0.shape[0] for s in slices]
    return [float(per_row[s].sum() / total) for s in slices]


class MixtureBatches:
    """Global batches of a weighted mixture: member by weight per sample, then the member's next row.

    Sample i of step k draws its member from `step_generator(seed, k, MIXTURE_STREAM)`; member j's
    samples take, in order, the next positions of j's own stream of per-epoch permutations of its
    rows (seeded by the seed, j's name and the epoch), so within a member no row repeats in an epoch.
    Where each member's stream stands at step k is the sum of its counts over the earlier steps,
    replayed once (cheap) and then kept, so any step's batch is a function of (seed, step) alone.
    """

    def __init__(self, members: Sequence[MixtureMember], num_examples: int, batch_size: int, seed: int) -> None:
        self.members = list(members)
        _check_members(self.members, num_examples)
        self.batch_size = batch_size
        self.seed = seed
        self.weights = torch.tensor([m.weight for m in self.members], dtype=torch.double)
        self._step = 0
        self._position = [0] * len(self.members)

    def draw(self, step: int) -> Tensor:
        """Each sample's member (an index into `members`) at step `step` [B]."""
        return torch.multinomial(
            self.weights, self.batch_size, replacement=True, generator=step_generator(self.seed, step, MIXTURE_STREAM)
        )

    def indices(self, step: int) -> tuple[Tensor, dict[str, int]]:
        """Row indices of step `step`'s global batch, and how many samples each member gave."""
        if step < self._step:
            self._step, self._position = 0, [0] * len(self.members)
        while self._step < step:
            counts = torch.bincount(self.draw(self._step), minlength=len(self.members)).tolist()
            self._position = [p + c for p, c in zip(self._position, counts)]
            self._step += 1
        chosen = self.draw(step)
        rows = torch.empty(self.batch_size, dtype=torch.long)
        counts = {}
        for j, member in enumerate(self.members):
            where = (chosen == j).nonzero(as_tuple=True)[0]
            counts[member.name] = len(where)
            if len(where):
                rows[where] = member.start + self._member_rows(j, self._position[j], len(where))
        return rows, counts

    def _member_rows(self, j: int, start: int, count: int) -> Tensor:
        member = self.members[j]
        out: list[int] = []
        while len(out) < count:
            epoch, offset = divmod(start + len(out), member.size)
            order = torch.randperm(member.size, generator=_member_generator(self.seed, member.name, epoch))
            out.extend(order[offset : offset + count - len(out)].tolist())
        return torch.tensor(out, dtype=torch.long)


def _member_generator(seed: int, name: str, epoch: int) -> torch.Generator:
    digest = hashlib.sha256(f"{seed}/{name}/{epoch}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def _check_members(members: list[MixtureMember], num_examples: int) -> None:
    problems = []
    names = [m.name for m in members]
    if not members:
        problems.append("it has no members")
    if len(set(names)) != len(names):
        problems.append(f"member names repeat: {names}")
    for m in members:
        if m.size <= 0 or m.start < 0 or m.start + m.size > num_examples:
            problems.append(
                f"member {m.name!r} rows {m.start}..{m.start + m.size - 1} are outside 0..{num_examples - 1}"
            )
        if not m.weight >= 0:
            problems.append(f"member {m.name!r} has weight {m.weight} (must be >= 0)")
    if members and sum(max(0.0, m.weight) for m in members) <= 0:
        problems.append("no member has a positive weight")
    if problems:
        raise DataError(f"the training split's mixture cannot be sampled: {'; '.join(problems)}")
