"""The radiographic signs of the CheXpert observations the embedded chest phantom does not draw by itself.

`iu_semireal` renders a phantom for every real report, so every observation with a visible
signature needs one, drawn the way a radiologist recognises it on a frontal film:

- `wide_mediastinum`: the upper mediastinum widened (Enlarged Cardiomediastinum);
- `opacity_<side>`: a patchy, ill-defined airspace opacity (Lung Opacity);
- `consolidation_<side>`: a dense homogeneous basal opacity with a sharp upper border and dark air
  bronchograms inside (Consolidation, and Pneumonia, whose image it is);
- `atelectasis_<side>`: a plate-like linear band above an elevated hemidiaphragm (volume loss);
- `edema`: bilateral perihilar haze ("bat wings") with Kerley B lines at the lateral bases;
- `pleural_thickening_<side>`: a band along the lateral chest wall and an apical cap (Pleural Other);
- `fracture_<side>`: a lateral rib broken by a dark gap with a bright callus (Fracture).

Sides are the patient's (left is on the image right). Each sign draws from its own generator, so
adding one changes nothing else in the image; the embedded phantoms never use these names, so their
images are unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from medim.data.phantom_cxr import (
    SIDES,
    _Anatomy,
    _bezier,
    _erode,
    _lateral,
    _polyline_alpha,
    _side_sign,
    draw_cxr,
    smooth_noise,
)


@dataclasses.dataclass(frozen=True)
class Canvas:
    """What a sign is drawn on: the image (drawn into), each pixel's coordinates x and y, the lung masks by side,
    the anatomy and the size of a pixel in anatomy units."""

    image: np.ndarray
    x: np.ndarray
    y: np.ndarray
    lungs: dict[str, np.ndarray]
    anatomy: _Anatomy
    pixel: float


#: A sign's drawer: (canvas, side, rng); it draws into `canvas.image`.
Drawer = Callable[[Canvas, str, np.random.Generator], None]

#: The signs, by name; sided ones take `_left` / `_right`.
SIGNS = ("wide_mediastinum", "edema")
SIDED_SIGNS = ("opacity", "consolidation", "atelectasis", "pleural_thickening", "fracture")

OPACITY = 0.58
CONSOLIDATION = 0.64
BAND = 0.62
CALLUS = 0.90


def sign_names() -> frozenset[str]:
    """Every sign name this module draws."""
    return frozenset({*SIGNS, *(f"{sign}_{side}" for sign in SIDED_SIGNS for side in SIDES)})


class SignPainter:
    """The signs of one image, for `draw_cxr`: it changes the anatomy first, then draws the signs.

    Its generator is taken from the image's own (`rng`) only once the phantom has seeded its own streams,
    so the image without the signs is exactly `draw_cxr` of the other findings."""

    def __init__(self, labels: frozenset[str], rng: np.random.Generator) -> None:
        unknown = labels - sign_names()
        if unknown:
            raise ValueError(f"unknown sign(s) {sorted(unknown)}; signs are {sorted(sign_names())}")
        self.labels = labels
        self._parent = rng
        self._streams: list[np.random.Generator] = []

    def adjust(self, anatomy: _Anatomy) -> _Anatomy:
        """The anatomy the signs change before the lungs are drawn: a wider mediastinum, raised hemidiaphragms."""
        seeds = self._parent.integers(0, 2**63, size=1 + len(_DRAWERS) * len(SIDES))
        self._streams = [np.random.default_rng(int(seed)) for seed in seeds]
        rng = self._streams[0]
        if "wide_mediastinum" in self.labels:
            anatomy = dataclasses.replace(anatomy, mediastinum=anatomy.mediastinum * float(rng.uniform(1.7, 2.0)))
        dome = dict(anatomy.dome)
        for side in SIDES:
            if f"atelectasis_{side}" in self.labels:
                dome[side] -= float(rng.uniform(3.0, 4.5))
        return dataclasses.replace(anatomy, dome=dome)

    def draw(
        self,
        image: np.ndarray,
        x: np.ndarray,
        y: np.ndarray,
        lungs: dict[str, np.ndarray],
        anatomy: _Anatomy,
        pixel: float,
    ) -> None:
        """Draw every sign into `image`, each from its own generator (one sign never moves another's draw)."""
        if not self._streams:
            raise RuntimeError("SignPainter.adjust must run before draw (draw_cxr calls both)")
        canvas = Canvas(image, x, y, lungs, anatomy, pixel)
        for k, (name, drawer) in enumerate(_DRAWERS.items()):
            for j, side in enumerate(SIDES):
                label = name if name in SIGNS else f"{name}_{side}"
                if label in self.labels and (name not in SIGNS or j == 0):
                    drawer(canvas, side, self._streams[1 + k * len(SIDES) + j])


def draw_phantom(labels: frozenset[str], rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A frontal chest phantom showing `labels`: the embedded phantom's findings and the signs of this module."""
    signs = labels & sign_names()
    return draw_cxr(labels - signs, rng, size, signs=SignPainter(signs, rng) if signs else None)


def _blend(image: np.ndarray, alpha: np.ndarray, value: float) -> None:
    image += np.clip(alpha, 0.0, 1.0) * (value - image)


def draw_opacity(canvas: Canvas, side: str, rng: np.random.Generator) -> None:
    """A patchy airspace opacity: a soft blob, mottled, in the middle or lower lung."""
    height = canvas.anatomy.lung_height(side)
    cy = canvas.anatomy.lung_top + rng.uniform(0.45, 0.75) * height
    cx = canvas.anatomy.cx + _side_sign(side) * (
        canvas.anatomy.mediastinum + rng.uniform(0.45, 0.7) * (canvas.anatomy.half_width - 5.0)
    )
    radius = rng.uniform(7.0, 9.0)
    blob = np.exp(-(((canvas.x - cx) ** 2 + (canvas.y - cy) ** 2) / (2 * radius**2)))
    mottle = np.clip(0.75 + 0.6 * smooth_noise(rng, canvas.image.shape[0], 8), 0.0, 1.0)
    _blend(canvas.image, 1.4 * blob * mottle * canvas.lungs[side], OPACITY)


def draw_consolidation(canvas: Canvas, side: str, rng: np.random.Generator) -> None:
    """A dense basal opacity with a sharp, slightly oblique upper border and dark air bronchograms."""
    height = canvas.anatomy.lung_height(side)
    lateral = _lateral(canvas.x, canvas.anatomy, side)
    border = canvas.anatomy.lung_top + rng.uniform(0.52, 0.62) * height + rng.uniform(-2.0, 2.0) * lateral
    region = np.clip((canvas.y - border) / 0.8, 0.0, 1.0) * canvas.lungs[side]
    _blend(canvas.image, region, CONSOLIDATION)
    hilum_x, hilum_y = canvas.anatomy.hilum_x(side), canvas.anatomy.lung_top + 0.55 * height
    bronchi = np.zeros_like(canvas.image)
    for _ in range(3):
        end_x = hilum_x + _side_sign(side) * rng.uniform(6.0, 13.0)
        end_y = canvas.anatomy.dome[side] - rng.uniform(1.0, 4.0)
        bend = (0.5 * (hilum_x + end_x), hilum_y + rng.uniform(4.0, 8.0))
        bronchi = np.maximum(
            bronchi, _polyline_alpha(canvas.x, canvas.y, _bezier((hilum_x, hilum_y), bend, (end_x, end_y)), 0.4)
        )
    _blend(canvas.image, 0.75 * bronchi * region, 0.30)


def draw_atelectasis(canvas: Canvas, side: str, rng: np.random.Generator) -> None:
    """A plate-like band a few units above the (raised) hemidiaphragm, across the lower lung."""
    sign = _side_sign(side)
    level = canvas.anatomy.dome[side] - rng.uniform(5.0, 8.0)
    start = (canvas.anatomy.cx + sign * (canvas.anatomy.mediastinum + 4.0), level + rng.uniform(-1.0, 1.0))
    end = (canvas.anatomy.cx + sign * (canvas.anatomy.half_width - 3.0), level - rng.uniform(1.0, 3.0))
    band = _polyline_alpha(canvas.x, canvas.y, np.array([start, end]), 0.9)
    _blend(canvas.image, band * canvas.lungs[side], BAND)


def draw_edema(canvas: Canvas, side: str, rng: np.random.Generator) -> None:
    """Perihilar haze on both sides, fading outwards, and short horizontal Kerley B lines at the lateral bases."""
    for side in SIDES:  # bilateral: `side` is not used
        hilum_y = canvas.anatomy.lung_top + 0.55 * canvas.anatomy.lung_height(side)
        distance = np.hypot(canvas.x - canvas.anatomy.hilum_x(side), (canvas.y - hilum_y) * 0.8)
        _blend(canvas.image, 1.1 * np.exp(-distance / rng.uniform(8.0, 10.0)) * canvas.lungs[side], OPACITY)
        sign = _side_sign(side)
        wall = canvas.anatomy.cx + sign * canvas.anatomy.half_width * 0.93
        lines = np.zeros_like(canvas.image)
        for k in range(4):
            row = canvas.anatomy.dome[side] - 2.5 - 2.2 * k - rng.uniform(0.0, 0.6)
            lines = np.maximum(
                lines, _polyline_alpha(canvas.x, canvas.y, np.array([[wall, row], [wall - sign * 3.5, row]]), 0.35)
            )
        _blend(canvas.image, lines * canvas.lungs[side], BAND)


def draw_pleural_thickening(canvas: Canvas, side: str, rng: np.random.Generator) -> None:
    """A smooth band of soft tissue along the lateral lung border, thickest at the apex (an apical cap)."""
    thickness = rng.uniform(2.4, 3.0)
    inner = _erode(canvas.lungs[side], max(1, int(round(thickness / canvas.pixel))))
    rim = canvas.lungs[side] & ~inner
    upper = canvas.y < canvas.anatomy.lung_top + 0.7 * canvas.anatomy.lung_height(side)
    lateral = _lateral(canvas.x, canvas.anatomy, side) > 0.35
    _blend(canvas.image, (rim & upper & lateral).astype(float), BAND)


def draw_fracture(canvas: Canvas, side: str, rng: np.random.Generator) -> None:
    """A lateral rib broken: a dark oblique gap across it and a bright callus beside the break."""
    sign = _side_sign(side)
    ax = canvas.anatomy.cx + sign * canvas.anatomy.half_width * rng.uniform(0.82, 0.9)
    row = canvas.anatomy.lung_top + rng.uniform(0.3, 0.6) * canvas.anatomy.lung_height(side)
    gap = _polyline_alpha(canvas.x, canvas.y, np.array([[ax - 1.0, row - 1.8], [ax + 1.0, row + 1.8]]), 0.45)
    _blend(canvas.image, gap, 0.12)
    callus = np.clip(1.6 + 0.5 - np.hypot(canvas.x - (ax + sign * 1.6), canvas.y - row), 0.0, 1.0)
    _blend(canvas.image, callus, CALLUS)


_DRAWERS: dict[str, Drawer] = {
    "opacity": draw_opacity,
    "consolidation": draw_consolidation,
    "atelectasis": draw_atelectasis,
    "pleural_thickening": draw_pleural_thickening,
    "fracture": draw_fracture,
    "edema": draw_edema,
}
