"""Phantom generation: determinism, label prevalences, and that each finding is drawn where it should be.

Visibility tests draw the same seed with and without one finding; every
component has its own random stream, so the two images differ only by it.
"""

from __future__ import annotations

import numpy as np
import pytest

from medim.data.findings import (
    FINDINGS_BY_DOMAIN,
    labels_to_multihot,
    multihot_to_labels,
)
from medim.data.phantom_cxr import draw_cxr, sample_cxr_labels
from medim.data.phantom_pathology import draw_pathology, sample_pathology_labels
from medim.data.phantoms import (
    DOMAIN_CODE,
    SPLIT_CODE,
    PhantomSample,
    make_sample,
    make_split,
)
from medim.errors import DataError

SEEDS = range(12)


def cxr_pair(base: set[str], finding: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Grayscale (float) CXR of `base` and of `base + finding`, same seed."""
    without = draw_cxr(frozenset(base), np.random.default_rng(seed))[:, :, 0].astype(float)
    with_ = draw_cxr(frozenset(base | {finding}), np.random.default_rng(seed))[:, :, 0].astype(float)
    return without, with_


def pathology_pair(base: set[str], finding: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    without = draw_pathology(frozenset(base), np.random.default_rng(seed)).astype(float)
    with_ = draw_pathology(frozenset(base | {finding}), np.random.default_rng(seed)).astype(float)
    return without, with_


# ----------------------------------------------------------------------------- samples


@pytest.mark.parametrize("domain", ["cxr", "pathology"])
def test_make_sample_is_deterministic_and_well_formed(domain):
    first = make_sample(domain, 7, "train", 3)
    second = make_sample(domain, 7, "train", 3)
    assert isinstance(first, PhantomSample) and first.domain == domain
    assert np.array_equal(first.image, second.image)
    assert (first.report, first.labels) == (second.report, second.labels)
    assert first.image.dtype == np.uint8 and first.image.shape == (64, 64, 3)
    assert first.labels <= set(FINDINGS_BY_DOMAIN[domain])
    for seed, split, index in ((7, "train", 4), (7, "val", 3), (8, "train", 3)):
        other = make_sample(domain, seed, split, index)
        assert not np.array_equal(first.image, other.image)


def test_cxr_is_grayscale_and_pathology_is_colour():
    cxr = make_sample("cxr", 0, "test", 0).image
    assert np.array_equal(cxr[:, :, 0], cxr[:, :, 1]) and np.array_equal(cxr[:, :, 0], cxr[:, :, 2])
    tile = make_sample("pathology", 0, "test", 0).image.astype(int)
    assert (tile[:, :, 0] - tile[:, :, 1]).mean() > 20  # pink/purple, not gray


@pytest.mark.parametrize("domain", ["cxr", "pathology"])
def test_other_sizes(domain):
    image = make_sample(domain, 0, "train", 0, size=128).image
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8


def test_sample_does_not_depend_on_split_length():
    short = make_split("cxr", 1, "val", 10)
    long = make_split("cxr", 1, "val", 50)
    assert len(short) == 10 and len(long) == 50
    for a, b in zip(short, long):
        assert np.array_equal(a.image, b.image) and a.report == b.report
    assert np.array_equal(long[37].image, make_sample("cxr", 1, "val", 37).image)


def test_mixed_split_interleaves_domains():
    mixed = make_split("mixed", 2, "train", 6)
    assert [s.domain for s in mixed] == ["cxr", "pathology"] * 3
    assert np.array_equal(mixed[4].image, make_sample("cxr", 2, "train", 4).image)
    assert np.array_equal(mixed[5].image, make_sample("pathology", 2, "train", 5).image)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"domain": "mri", "seed": 0, "split": "train", "index": 0},
        {"domain": "cxr", "seed": 0, "split": "holdout", "index": 0},
        {"domain": "cxr", "seed": -1, "split": "train", "index": 0},
    ],
)
def test_invalid_arguments_raise_data_error(kwargs):
    with pytest.raises(DataError):
        make_sample(**kwargs)


def test_multihot_round_trip():
    labels = frozenset({"effusion_left", "support_device"})
    vector = labels_to_multihot(labels, "cxr")
    assert vector.dtype == bool and vector.sum() == 2 and vector[1] and vector[-1]
    assert multihot_to_labels(vector, "cxr") == labels
    with pytest.raises(DataError):
        labels_to_multihot({"tumor"}, "cxr")


# ----------------------------------------------------------------------------- prevalence


def sampled_labels(domain: str, sampler, count: int = 2000) -> list[frozenset[str]]:
    """Labels exactly as make_sample draws them (they are the first use of its RNG)."""
    return [sampler(np.random.default_rng([0, SPLIT_CODE["train"], i, DOMAIN_CODE[domain]])) for i in range(count)]


def test_make_sample_labels_come_from_the_sampler():
    for i in range(5):
        assert make_sample("cxr", 0, "train", i).labels == sampled_labels("cxr", sample_cxr_labels, 5)[i]


def test_cxr_prevalence_and_constraints():
    labels = sampled_labels("cxr", sample_cxr_labels)
    assert 0.25 <= np.mean([not s for s in labels]) <= 0.35
    for name in FINDINGS_BY_DOMAIN["cxr"]:
        assert 0.07 <= np.mean([name in s for s in labels]) <= 0.30, name
    for s in labels:
        assert sum(name.startswith("pneumothorax") for name in s) <= 1
        assert sum(name.startswith("nodule") for name in s) <= 1
    assert any({"effusion_left", "effusion_right"} <= s for s in labels)


def test_pathology_prevalence_and_constraints():
    labels = sampled_labels("pathology", sample_pathology_labels)
    assert 0.25 <= np.mean([not s for s in labels]) <= 0.35
    for name in FINDINGS_BY_DOMAIN["pathology"]:
        assert 0.15 <= np.mean([name in s for s in labels]) <= 0.55, name
    assert all("tumor" in s for s in labels if "high_grade" in s)
    assert any("necrosis" in s and "tumor" not in s for s in labels)


# ----------------------------------------------------------------------------- CXR visibility


@pytest.mark.parametrize(
    ("side", "own", "other"),
    [("left", np.s_[:, 36:58], np.s_[:, :28]), ("right", np.s_[:, 6:28], np.s_[:, 36:])],
)
def test_effusion_whitens_the_base_of_the_correct_lung(side, own, other):
    # Patient's left is the image right.
    for seed in SEEDS:
        without, with_ = cxr_pair(set(), f"effusion_{side}", seed)
        base = np.s_[38:54]
        assert with_[base][own].mean() - without[base][own].mean() > 20
        assert np.array_equal(with_[other], without[other])


def test_cardiomegaly_widens_the_heart():
    for seed in SEEDS:
        without, with_ = cxr_pair(set(), "cardiomegaly", seed)
        width = lambda image: (image[30:46, 8:56] > 150).sum(axis=1).max()  # noqa: E731
        assert width(with_) >= width(without) + 6
        assert width(with_) > 24 >= width(without)  # cardiothoracic ratio above / below 0.5


@pytest.mark.parametrize(
    ("side", "apex", "other"),
    [("left", np.s_[6:30, 36:60], np.s_[:, :28]), ("right", np.s_[6:30, 4:28], np.s_[:, 36:])],
)
def test_pneumothorax_blackens_the_apex_of_the_correct_lung(side, apex, other):
    for seed in SEEDS:
        without, with_ = cxr_pair(set(), f"pneumothorax_{side}", seed)
        black = lambda image: (image[apex] < 30).mean()  # noqa: E731
        assert black(with_) - black(without) > 0.08
        assert np.array_equal(with_[other], without[other])
        # The visceral pleural line is the only strong brightening a pneumothorax causes.
        assert (with_ - without > 40).sum() >= 20


@pytest.mark.parametrize("side", ["left", "right"])
def test_nodule_is_one_bright_blob_in_its_zone(side):
    for seed in SEEDS:
        centres = {}
        for zone in ("upper", "lower"):
            without, with_ = cxr_pair(set(), f"nodule_{side}_{zone}", seed)
            blob = with_ - without > 40
            rows, cols = np.nonzero(blob)
            assert 15 <= blob.sum() <= 60
            assert (with_ - without).max() > 100
            assert rows.max() - rows.min() <= 9 and cols.max() - cols.min() <= 9  # one compact blob
            assert (cols.mean() > 32) == (side == "left")
            centres[zone] = rows.mean()
        assert centres["upper"] < 27 < centres["lower"]


def test_support_device_draws_a_thin_bright_line():
    for seed in SEEDS:
        without, with_ = cxr_pair(set(), "support_device", seed)
        brighter = with_ - without > 60
        assert brighter.sum() >= 25
        assert (with_ != without).mean() < 0.15
        assert (with_ - without > 30).any(axis=1).sum() >= 10  # it is long, not a dot


# ----------------------------------------------------------------------------- pathology visibility


def luminance(image: np.ndarray) -> np.ndarray:
    return image.mean(axis=2)


def test_tumor_crowds_the_tile_with_dark_nuclei():
    for seed in SEEDS:
        without, with_ = pathology_pair(set(), "tumor", seed)
        dark = lambda image: (luminance(image) < 140).mean()  # noqa: E731
        assert dark(with_) - dark(without) > 0.12


def test_high_grade_nuclei_are_larger_and_darker():
    for seed in SEEDS:
        low, high = pathology_pair({"tumor"}, "high_grade", seed)
        very_dark = lambda image: (luminance(image) < 90).mean()  # noqa: E731
        assert very_dark(high) - very_dark(low) > 0.12


@pytest.mark.parametrize("base", [set(), {"tumor"}])
def test_necrosis_is_a_pale_patch_with_debris(base):
    for seed in SEEDS:
        without, with_ = pathology_pair(base, "necrosis", seed)
        paler = luminance(with_) - luminance(without) > 20
        assert paler.mean() > 0.04
        patch = luminance(with_) > 200
        assert (patch & paler).sum() > 100
        debris = (luminance(with_) < 170) & (luminance(without) >= 170)
        assert debris.sum() >= 10


@pytest.mark.parametrize("base", [set(), {"tumor"}])
def test_inflammation_adds_very_dark_lymphocytes(base):
    for seed in SEEDS:
        without, with_ = pathology_pair(base, "inflammation", seed)
        very_dark = lambda image: (image.max(axis=2) < 90).mean()  # noqa: E731
        assert very_dark(with_) - very_dark(without) > 0.01
