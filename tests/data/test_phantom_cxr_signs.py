"""The signs of the other CheXpert observations on the chest phantom: visible, on their side, independent."""

from __future__ import annotations

import numpy as np
import pytest

from medim.data.phantom_cxr import draw_cxr
from medim.data.phantom_cxr_signs import SIDED_SIGNS, SIGNS, SignPainter, draw_phantom, sign_names

SIZE = 64


def image(labels: set[str], seed: int = 3) -> np.ndarray:
    return draw_phantom(frozenset(labels), np.random.default_rng(seed), SIZE)[..., 0].astype(int)


def changed(labels: set[str], base: set[str] = frozenset(), seed: int = 3) -> np.ndarray:
    """Pixels that move by more than the noise when `labels` are added to `base`."""
    return np.abs(image(set(base) | labels, seed) - image(set(base), seed)) > 12


def test_without_signs_the_phantom_is_the_embedded_one() -> None:
    labels = frozenset({"cardiomegaly", "effusion_left", "support_device"})
    plain = draw_cxr(labels, np.random.default_rng(7), SIZE)
    assert (draw_phantom(labels, np.random.default_rng(7), SIZE) == plain).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("sign", SIDED_SIGNS)
def test_a_sided_sign_shows_on_its_side_only(sign: str, seed: int) -> None:
    for side in ("left", "right"):
        moved = changed({f"{sign}_{side}"}, seed=seed)
        columns = np.nonzero(moved)[1]
        assert columns.size >= 4, f"{sign}_{side} is not visible (seed {seed})"
        # the patient's left is on the image right
        assert (columns > SIZE // 2).mean() > 0.95 if side == "left" else (columns < SIZE // 2).mean() > 0.95


@pytest.mark.parametrize("sign", SIGNS)
def test_the_whole_chest_signs_are_visible_on_both_sides(sign: str) -> None:
    columns = np.nonzero(changed({sign}))[1]
    assert (columns < SIZE // 2).sum() > 20 and (columns > SIZE // 2).sum() > 20


def test_signs_are_drawn_independently_of_each_other_and_of_other_findings() -> None:
    both = image({"opacity_left", "fracture_right"})
    alone = image({"opacity_left"})
    # the fracture moves only the patient's right (image left); the opacity's half is untouched
    assert (both[:, SIZE // 2 + 4 :] == alone[:, SIZE // 2 + 4 :]).all()
    assert (changed({"consolidation_right"}, base={"support_device"}) == changed({"consolidation_right"})).mean() > 0.98


def test_unknown_signs_and_misuse_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown sign"):
        SignPainter(frozenset({"opacity_middle"}), np.random.default_rng(0))
    painter = SignPainter(frozenset({"edema"}), np.random.default_rng(0))
    with pytest.raises(RuntimeError, match="adjust must run before draw"):
        painter.draw(np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((4, 4)), {}, None, 1.0)  # type: ignore[arg-type]
    assert len(sign_names()) == len(SIGNS) + 2 * len(SIDED_SIGNS)
