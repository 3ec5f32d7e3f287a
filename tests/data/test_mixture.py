"""mixture: several datasets as one (a paired folder and PathGen, or two embedded sets), members and weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from medim.config import load_experiment
from medim.data.examples import write_paired_folder, write_pathgen
from medim.data.paired import MixtureMember
from medim.errors import ConfigError, RegistryError
from medim.io import stable_hash
from medim.registry import DATASETS

SPLITS = ("train", "val", "test")
SMALL = {"name": "embedded_phantoms", "image_size": 32, "num_train": 6, "num_val": 3, "num_test": 2}


@pytest.fixture()
def members(tmp_path: Path) -> dict[str, dict]:
    """A paired folder (3 train, 1 val, 1 test) and PathGen (4 train, 2 val, 2 test), both in their real layouts."""
    folder = {"name": "paired_folder", **write_paired_folder(tmp_path / "folder"), "image_size": 16, "domain": "cxr"}
    pathgen = {"name": "pathgen", **write_pathgen(tmp_path / "pathgen"), "image_size": 16}
    return {"folder": folder, "pathgen": pathgen}


def build(datasets: dict, weights=None):
    block = {"name": "mixture", "datasets": datasets, **({"weights": weights} if weights is not None else {})}
    return DATASETS.build(block, where="data")


def test_splits_are_the_members_splits_one_after_another(members: dict) -> None:
    mixture = build(members, {"folder": 3.0, "pathgen": 1.0})
    parts = {name: DATASETS.build(block, where="data") for name, block in members.items()}
    for split in SPLITS:
        data = mixture.split(split)
        folder, pathgen = parts["folder"].split(split), parts["pathgen"].split(split)
        assert data.reports == folder.reports + pathgen.reports
        assert data.domains == ["cxr"] * len(folder) + ["pathology"] * len(pathgen)
        assert np.array_equal(data.images[:], np.concatenate([folder.images[:], pathgen.images[:]]))
        assert mixture.mixture(split) == [
            MixtureMember("folder", 0, len(folder), 3.0),
            MixtureMember("pathgen", len(folder), len(pathgen), 1.0),
        ]
    train = mixture.split("train")
    assert [train.images.source(i) for i in (0, 3)] == [
        "train/train_000.png",
        parts["pathgen"].split("train").images.source(0),
    ]
    last, first = len(train) - 1, 0  # an index batch across both members, in the asked order
    assert np.array_equal(train.images[np.array([last, first])], np.stack([train.images[last], train.images[first]]))
    assert train.labels is None and mixture.image_size == 16


def test_default_and_size_weights(members: dict) -> None:
    assert [m.weight for m in build(members).mixture("train")] == [1.0, 1.0]  # whatever the sizes
    by_size = build(members, "size")
    assert [(m.size, m.weight) for m in by_size.mixture("train")] == [(3, 3.0), (4, 4.0)]
    assert [(m.size, m.weight) for m in by_size.mixture("val")] == [(1, 1.0), (2, 2.0)]


def test_weights_are_validated(members: dict) -> None:
    with pytest.raises(
        RegistryError,
        match=r"weights must name each member of datasets \(folder, pathgen\); "
        r"unknown: \['mimic'\], missing: \['pathgen'\]",
    ):
        build(members, {"folder": 1.0, "mimic": 1.0})
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(RegistryError, match=r"weights must be positive and finite, got \{'pathgen': "):
            build(members, {"folder": 1.0, "pathgen": bad})
    with pytest.raises(RegistryError, match=r"data\.weights\.literal\['size'\]: Input should be 'size'"):
        build(members, "sizes")
    with pytest.raises(RegistryError, match=r"data\.datasets: Dictionary should have at least 1 item"):
        build({})


def test_member_errors_name_the_member(members: dict) -> None:
    without_root = {**members, "folder": {"name": "paired_folder", "image_size": 16}}
    with pytest.raises(RegistryError, match=r"data\.datasets\.folder\.root: Field required"):
        build(without_root)
    misspelt = {**members, "pathgen": {**members["pathgen"], "captions": "x.json"}}
    with pytest.raises(RegistryError, match=r"data\.datasets\.pathgen\.captions: unknown key"):
        build(misspelt)
    wider = {**members, "pathgen": {**members["pathgen"], "image_size": 32}}
    with pytest.raises(
        ConfigError,
        match=r"must have one image_size; got data\.datasets\.folder\.image_size = 16, "
        r"data\.datasets\.pathgen\.image_size = 32",
    ):
        build(wider)


def test_skipped_items_name_their_member(members: dict, tmp_path: Path) -> None:
    (tmp_path / "folder" / "train" / "train_001.txt").write_text("  \n", encoding="utf-8")
    entries = json.loads(Path(members["pathgen"]["annotation"]).read_text())
    x, y = entries[0]["position"]
    (Path(members["pathgen"]["image_root"]) / f"{entries[0]['WSI_id']}_{x}_{y}.png").unlink()
    train = build(members).split("train")
    assert [(s.source, s.reason) for s in train.skipped] == [
        ("folder: train/train_001.txt", "empty report"),
        (f"pathgen: {entries[0]['WSI_id']}_{x}_{y}.png", "missing image file"),
    ]
    assert [(m.start, m.size) for m in build(members).mixture("train")] == [(0, 2), (2, 3)]


def test_finding_labels_only_when_every_member_has_the_same(members: dict) -> None:
    chest = build({"a": {**SMALL, "domain": "cxr"}, "b": {**SMALL, "domain": "cxr", "seed": 1}})
    assert chest.finding_labels().names == DATASETS.build({**SMALL, "domain": "cxr"}).finding_labels().names
    assert chest.split("val").labels is not None and len(chest.split("val").labels) == 6
    mixed = build({"cxr": {**SMALL, "domain": "cxr"}, "tiles": {**SMALL, "domain": "pathology"}})
    assert mixed.finding_labels() is None and mixed.split("train").labels is None
    assert mixed.missing_finding_labels_reason().startswith(
        "the members have different finding labels: cxr: cardiomegaly, effusion_left"
    )
    assert build(members).missing_finding_labels_reason().startswith("not every member has finding labels (folder: ")


def test_identity_follows_members_and_their_order_not_weights(members: dict) -> None:
    first = build(members, {"folder": 1.0, "pathgen": 1.0}).identity()
    assert build(members, {"folder": 5.0, "pathgen": 1.0}).identity() == first  # the same rows, drawn differently
    assert build({"folder": members["folder"]}).identity() != first
    assert build({**members, "folder": {**members["folder"], "max_samples": 2}}).identity() != first
    swapped = build({"pathgen": members["pathgen"], "folder": members["folder"]}).identity()
    assert stable_hash(swapped) != stable_hash(first)  # other rows order: never the other order's token shards


def test_a_mixture_from_an_experiment_yaml(members: dict, tmp_path: Path) -> None:
    experiment = tmp_path / "mix.yaml"
    data = {"name": "mixture", "datasets": members, "weights": {"folder": 2.0, "pathgen": 1.0}}
    experiment.write_text(yaml.safe_dump({"defaults": ["quickstart"], "name": "mix", "data": data}), encoding="utf-8")
    config = load_experiment(str(experiment), ["data.weights.pathgen=3.0", "data.datasets.folder.max_samples=2"])
    dataset = config.data.build()
    assert [(m.name, m.size, m.weight) for m in dataset.mixture("train")] == [("folder", 2, 2.0), ("pathgen", 4, 3.0)]
