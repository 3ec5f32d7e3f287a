"""How a step's global batch is chosen and cut: processes x micro-batches, normaliser shares, mixtures."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from medim.data.paired import MixtureMember
from medim.errors import ConfigError, DataError
from medim.objectives.base import TrainingBatch
from medim.training.batches import BatchSplit, MixtureBatches, batch_indices, normaliser_shares, slice_batch


def test_the_global_batch_splits_into_processes_and_micro_batches() -> None:
    split = BatchSplit.of(64, 8, processes=2)
    assert (split.per_process, split.accumulation) == (32, 4)
    assert split.micro_slices(1) == [slice(32, 40), slice(40, 48), slice(48, 56), slice(56, 64)]
    assert BatchSplit.of(64, None, processes=1).accumulation == 1
    assert BatchSplit.of(64, None, processes=4).micro_batch_size == 16


def test_splits_that_do_not_divide_are_refused_with_the_valid_values() -> None:
    with pytest.raises(ConfigError, match=r"train.batch_size=30 .* does not divide over 4 processes"):
        BatchSplit.of(30, None, processes=4)
    with pytest.raises(ConfigError, match=r"micro_batch_size=12 does not divide the per-process batch 32 .* 1, 2, 4"):
        BatchSplit.of(64, 12, processes=2)


def test_micro_batch_larger_than_the_global_batch_is_a_config_error() -> None:
    from medim.config import load_experiment

    with pytest.raises(ConfigError, match="micro_batch_size .*exceeds train.batch_size"):
        load_experiment("quickstart", ["train.micro_batch_size=128"])


def test_slices_and_normaliser_shares_add_up_to_the_whole_batch() -> None:
    generator = torch.Generator().manual_seed(0)
    noisable = torch.rand(8, 5, generator=generator) < 0.6
    batch = TrainingBatch(
        x0=torch.zeros(8, 5, dtype=torch.long),
        xt=torch.zeros(8, 5, dtype=torch.long),
        times=torch.rand(8, 5, generator=generator),
        noisable=noisable,
        noise_level=torch.rand(8, generator=generator),
    )
    slices = BatchSplit.of(8, 2, processes=1).micro_slices(0)
    parts = [slice_batch(batch, s) for s in slices]
    assert torch.equal(torch.cat([p.noisable for p in parts]), noisable)
    assert torch.equal(torch.cat([p.noise_level for p in parts]), batch.noise_level)
    shares = normaliser_shares(object(), batch, slices)
    assert sum(shares) == pytest.approx(1.0)
    assert shares == pytest.approx([float(noisable[s].sum() / noisable.sum()) for s in slices])


def test_plain_batches_cover_each_epoch_without_repeats() -> None:
    seen = torch.cat([batch_indices(20, 4, seed=0, step=s) for s in range(5)])
    assert sorted(seen.tolist()) == list(range(20))


MEMBERS = [MixtureMember("a", 0, 30, 3.0), MixtureMember("b", 30, 10, 1.0)]


def test_mixture_draws_members_by_weight_and_rows_within_them() -> None:
    mixture = MixtureBatches(MEMBERS, num_examples=40, batch_size=16, seed=0)
    totals: Counter[str] = Counter()
    rows_of: dict[str, list[int]] = {"a": [], "b": []}
    for step in range(50):
        rows, counts = mixture.indices(step)
        assert sum(counts.values()) == 16
        totals.update(counts)
        for row in rows.tolist():
            rows_of["a" if row < 30 else "b"].append(row)
    assert totals["a"] / (totals["a"] + totals["b"]) == pytest.approx(0.75, abs=0.03)
    assert len(rows_of["a"]) == totals["a"] and len(rows_of["b"]) == totals["b"]
    # within a member, each epoch is a permutation of its rows
    assert sorted(rows_of["b"][:10]) == list(range(30, 40)) and sorted(rows_of["a"][:30]) == list(range(30))


def test_a_mixture_step_is_a_function_of_seed_and_step_alone() -> None:
    sequential = MixtureBatches(MEMBERS, 40, 16, seed=3)
    batches = [sequential.indices(step) for step in range(12)]
    fresh = MixtureBatches(MEMBERS, 40, 16, seed=3)  # a resumed run asks for step 9 first
    for step in (9, 10, 4, 11):
        rows, counts = fresh.indices(step)
        assert torch.equal(rows, batches[step][0]) and counts == batches[step][1]
    assert not torch.equal(MixtureBatches(MEMBERS, 40, 16, seed=4).indices(0)[0], batches[0][0])


def test_a_mixture_that_does_not_fit_the_split_is_refused() -> None:
    with pytest.raises(DataError, match=r"member 'b' rows 30..49 are outside 0..39"):
        MixtureBatches([MEMBERS[0], MixtureMember("b", 30, 20, 1.0)], 40, 8, seed=0)
    with pytest.raises(DataError, match="no member has a positive weight"):
        MixtureBatches([MixtureMember("a", 0, 40, 0.0)], 40, 8, seed=0)
