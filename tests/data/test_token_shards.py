"""Tokenized-split shards: exact rows, resumption after an interruption, stale caches rebuilt, never reused."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from medim.config import load_experiment
from medim.conformance.artifacts import TINY_VQGAN, chameleon_yaml, lightning_checkpoint
from medim.data.token_shards import MANIFEST, ensure_shards
from medim.experiment import build_experiment
from medim.tokenizers.vqgan_model import VQModel

SOURCE = np.arange(23 * 5, dtype=np.int64).reshape(23, 5)
IDENTITY = {"tokenizer": "a", "layout": "x"}


class Interrupted(Exception):
    """Stands for a killed process in the middle of tokenizing."""


def rows_from(source: np.ndarray, calls: list[tuple[int, int]], fail_at: int | None = None):
    def make_rows(start: int, stop: int) -> tuple[np.ndarray, int]:
        if fail_at is not None and len(calls) == fail_at:
            raise Interrupted
        calls.append((start, stop))
        return source[start:stop], 0

    return make_rows


def test_shards_hold_exactly_the_rows(tmp_path: Path) -> None:
    shards = ensure_shards(tmp_path / "s", IDENTITY, 23, rows_from(SOURCE, []), shard_size=5, progress=False)
    assert len(shards) == 23 and shards.shape == (23, 5)
    assert sorted(p.name for p in (tmp_path / "s").glob("shard_*.npy")) == [f"shard_0000{i}.npy" for i in range(5)]
    index = torch.tensor([22, 0, 7, 7, 14, 5, 4])
    assert torch.equal(shards[index], torch.from_numpy(SOURCE[index.numpy()]))
    assert torch.equal(shards[3:12], torch.from_numpy(SOURCE[3:12]))
    assert shards[index].dtype == torch.long
    with pytest.raises(IndexError, match="out of range for 23"):
        shards[torch.tensor([23])]


def test_an_interrupted_build_resumes_without_duplicating_or_losing_rows(tmp_path: Path) -> None:
    first: list[tuple[int, int]] = []
    with pytest.raises(Interrupted):
        ensure_shards(tmp_path / "s", IDENTITY, 23, rows_from(SOURCE, first, fail_at=2), shard_size=5, progress=False)
    manifest = json.loads((tmp_path / "s" / MANIFEST).read_text())
    assert manifest["complete_shards"] == [0, 1] and not manifest["complete"]
    (tmp_path / "s" / "shard_00002.npy").write_bytes(b"half-written before the manifest knew it")
    second: list[tuple[int, int]] = []
    shards = ensure_shards(tmp_path / "s", IDENTITY, 23, rows_from(SOURCE, second), shard_size=5, progress=False)
    assert second == [(10, 15), (15, 20), (20, 23)]  # only what was missing, the unlisted shard redone
    assert torch.equal(shards[torch.arange(23)], torch.from_numpy(SOURCE))
    again: list[tuple[int, int]] = []
    ensure_shards(tmp_path / "s", IDENTITY, 23, rows_from(SOURCE, again), shard_size=5, progress=False)
    assert again == []  # complete: reused


def test_a_changed_identity_rebuilds(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ensure_shards(tmp_path / "s", IDENTITY, 23, rows_from(SOURCE, []), shard_size=5, progress=False)
    changed = {**IDENTITY, "tokenizer": "b"}
    calls: list[tuple[int, int]] = []
    shards = ensure_shards(tmp_path / "s", changed, 23, rows_from(SOURCE + 1, calls), shard_size=5, progress=False)
    assert "were made by a different tokenizer; rebuilding" in caplog.text
    assert len(calls) == 5 and torch.equal(shards[torch.arange(23)], torch.from_numpy(SOURCE + 1))


TINY_RUN = ["data.num_train=40", "data.num_val=8", "data.num_test=8"]


def test_experiment_tokens_equal_the_direct_packing_and_follow_the_tokenizer(caplog) -> None:
    experiment = build_experiment(
        load_experiment("quickstart", [*TINY_RUN, "tokenizers.image.codebook_size=32"]), progress=False
    )
    data = experiment.dataset.split("val")
    direct = experiment.layout.pack(
        experiment.image_tokenizer.encode(data.images), experiment.layout.pack_text(data.reports).ids
    )
    shards = experiment.tokens("val", shard_size=3)
    assert torch.equal(shards[torch.arange(len(direct))], direct)
    other = build_experiment(
        load_experiment("quickstart", [*TINY_RUN, "tokenizers.image.codebook_size=24"]), progress=False
    )
    caplog.clear()
    rebuilt = other.tokens("val", shard_size=3)
    assert rebuilt.directory == shards.directory  # same data and layout: same place, rebuilt not reused
    assert "a different image_tokenizer" in caplog.text
    assert int(rebuilt[torch.arange(8)][:, other.layout.image_positions].max()) < other.layout.image_offset + 24


def test_a_changed_image_preprocessing_rebuilds(tmp_path: Path, caplog) -> None:
    config = replace(TINY_VQGAN, resolution=32)
    (tmp_path / "vqgan.yaml").write_text(yaml.safe_dump(chameleon_yaml(config)))
    torch.manual_seed(0)
    lightning_checkpoint(tmp_path / "vqgan.ckpt", VQModel(config).state_dict())
    image = f"{{name: chameleon_vqgan, config: {tmp_path / 'vqgan.yaml'}, checkpoint: {tmp_path / 'vqgan.ckpt'}"
    overrides = [*TINY_RUN, "data.image_size=32", "layout.max_text_tokens=40"]
    for preprocess, expect_rebuild in (("medim", False), ("chameleon", True)):
        spec = load_experiment("quickstart", [*overrides, f"tokenizers.image={image}, preprocess: {preprocess}}}"])
        caplog.clear()
        build_experiment(spec, progress=False).tokens("val")
        assert ("a different image_tokenizer" in caplog.text) is expect_rebuild
