"""Procedural frontal chest radiograph phantoms with controllable findings.

Geometry is defined analytically in a 64x64 "design" frame and sampled on the
requested pixel grid, so every image size shows the same anatomy. Radiological
convention: the patient's LEFT is on the IMAGE RIGHT.

Each component (anatomy, noise, every finding) draws from its own child
generator seeded from `rng`, so two draws with the same seed that differ only
in one finding differ only where that finding is drawn. This keeps the
visibility tests exact and lets a model learn finding -> pixels cleanly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the signs module builds on this one
    from medim.data.phantom_cxr_signs import SignPainter

DESIGN_SIZE = 64.0

# Intensities on a 0..1 scale before windowing.
AIR = 0.04
SOFT_TISSUE = 0.52
MEDIASTINUM = 0.70
LUNG = 0.20
FLUID = 0.66
PNEUMOTHORAX_AIR = 0.03
PLEURAL_LINE = 0.95
NODULE = 0.88
DEVICE = 0.97

SIDES = ("right", "left")  # patient sides; right lung is on the image left

# Label prevalences (see sample_cxr_labels): P(normal) first, then findings
# drawn independently and re-drawn until at least one is present.
P_NORMAL = 0.30
P_CARDIOMEGALY = 0.22
P_EFFUSION_PER_SIDE = 0.18
P_PNEUMOTHORAX_PER_SIDE = 0.12
P_NODULE_PER_ZONE = 0.12
P_SUPPORT_DEVICE = 0.24

_STREAMS = ("anatomy", "noise", "cardiomegaly", "effusion", "pneumothorax", "nodule", "device")


def sample_cxr_labels(rng: np.random.Generator) -> frozenset[str]:
    """Sample a CXR finding set: ~30% normal, otherwise at least one finding.

    At most one pneumothorax side and at most one nodule per image; effusions may
    be bilateral. Findings are otherwise independent so none can be inferred from
    another.
    """
    if rng.random() < P_NORMAL:
        return frozenset()
    while True:
        labels: set[str] = set()
        if rng.random() < P_CARDIOMEGALY:
            labels.add("cardiomegaly")
        for side in ("left", "right"):
            if rng.random() < P_EFFUSION_PER_SIDE:
                labels.add(f"effusion_{side}")
        pneumothorax = rng.random()
        if pneumothorax < 2 * P_PNEUMOTHORAX_PER_SIDE:
            labels.add("pneumothorax_left" if pneumothorax < P_PNEUMOTHORAX_PER_SIDE else "pneumothorax_right")
        nodule = rng.random()
        zones = ("left_upper", "left_lower", "right_upper", "right_lower")
        if nodule < len(zones) * P_NODULE_PER_ZONE:
            labels.add(f"nodule_{zones[int(nodule / P_NODULE_PER_ZONE)]}")
        if rng.random() < P_SUPPORT_DEVICE:
            labels.add("support_device")
        if labels:
            return frozenset(labels)


@dataclass(frozen=True)
class _Anatomy:
    """Per-patient normal anatomy in design-frame units (pixels of a 64x64 image)."""

    cx: float  # midline
    half_width: float  # midline to lateral lung border
    mediastinum: float  # half-width of the upper mediastinum
    lung_top: float  # apex row
    dome: dict[str, float]  # hemidiaphragm dome row per patient side
    heart_x: float  # heart centre, shifted to the patient's left (image right)
    heart_y: float
    heart_ry: float
    ctr_unit: float  # 0..1 position inside the normal / enlarged cardiothoracic-ratio range
    rib_phase: float
    rib_spacing: float
    wall: float  # chest-wall soft-tissue thickness

    def heart_rx(self, enlarged: bool) -> float:
        """Horizontal heart semi-axis; cardiothoracic ratio ~0.44 normal, ~0.64 enlarged."""
        low, high = (0.60, 0.68) if enlarged else (0.40, 0.48)
        return (low + (high - low) * self.ctr_unit) * self.half_width

    def lung_height(self, side: str) -> float:
        return self.dome[side] - self.lung_top

    def hilum_x(self, side: str) -> float:
        """Column of the hilum (where vessels enter the lung) on the given patient side."""
        return self.cx + _side_sign(side) * (self.mediastinum + 3.0)


def _sample_anatomy(rng: np.random.Generator) -> _Anatomy:
    cx = 32.0 + float(np.clip(rng.normal(0.0, 1.0), -2.0, 2.0))
    half_width = float(rng.uniform(22.5, 25.5))
    dome_right = float(rng.uniform(47.0, 52.0))
    heart_ry = float(rng.uniform(8.5, 11.0))
    return _Anatomy(
        cx=cx,
        half_width=half_width,
        mediastinum=float(rng.uniform(4.0, 5.5)),
        lung_top=float(rng.uniform(6.0, 9.0)),
        dome={"right": dome_right, "left": dome_right + float(rng.uniform(0.5, 2.5))},
        heart_x=cx + float(rng.uniform(2.0, 4.0)),
        heart_y=dome_right - 0.25 * heart_ry,
        heart_ry=heart_ry,
        ctr_unit=float(rng.random()),
        rib_phase=float(rng.uniform(0.0, 5.5)),
        rib_spacing=float(rng.uniform(5.0, 6.0)),
        wall=float(rng.uniform(4.0, 6.0)),
    )


def _side_sign(side: str) -> float:
    """+1 for the patient's left (image right), -1 for the patient's right."""
    return 1.0 if side == "left" else -1.0


def _lung_mask(x: np.ndarray, y: np.ndarray, anatomy: _Anatomy, side: str, heart_rx: float) -> np.ndarray:
    """Analytic lung field of one side: apex parabola, lateral wall widening downwards,
    diaphragm dome below and mediastinum / heart / aortic knob medially."""
    sign = _side_sign(side)
    d = sign * (x - anatomy.cx)  # lateral distance from the midline on this side
    width = anatomy.half_width - anatomy.mediastinum
    apex_d = anatomy.mediastinum + 0.45 * width
    apex_t = (d - apex_d) / (0.55 * width)
    below_apex = y >= anatomy.lung_top + 13.0 * apex_t**2
    dome_d = anatomy.mediastinum + 0.40 * width
    above_dome = y <= anatomy.dome[side] + 5.0 * ((d - dome_d) / (anatomy.half_width - dome_d)) ** 2
    heart_t = np.clip(1.0 - ((y - anatomy.heart_y) / anatomy.heart_ry) ** 2, 0.0, None)
    heart_edge = sign * (anatomy.heart_x - anatomy.cx) + heart_rx * np.sqrt(heart_t)
    knob = 2.5 * np.exp(-(((y - anatomy.lung_top - 9.0) / 3.0) ** 2)) if side == "left" else 0.0
    medial = np.maximum(anatomy.mediastinum + knob, heart_edge)
    widening = np.clip((y - anatomy.lung_top) / anatomy.lung_height(side), 0.0, 1.0)
    lateral = anatomy.half_width * (0.9 + 0.1 * widening)
    return below_apex & above_dome & (d > medial) & (d < lateral)


def _soften(image: np.ndarray, passes: int) -> np.ndarray:
    """Separable [1, 2, 1] / 4 blur applied `passes` times: soft radiographic edges
    that still keep one-pixel lines (pleural line, tubes) visible."""
    for _ in range(passes):
        padded = np.pad(image, 1, mode="edge")
        image = (padded[:-2, 1:-1] + 2 * padded[1:-1, 1:-1] + padded[2:, 1:-1]) / 4
        padded = np.pad(image, 1, mode="edge")
        image = (padded[1:-1, :-2] + 2 * padded[1:-1, 1:-1] + padded[1:-1, 2:]) / 4
    return image


def _erode(mask: np.ndarray, steps: int) -> np.ndarray:
    """Binary erosion by a cross, `steps` times (cheap stand-in for a distance transform)."""
    for _ in range(steps):
        inner = mask.copy()
        inner[1:, :] &= mask[:-1, :]
        inner[:-1, :] &= mask[1:, :]
        inner[:, 1:] &= mask[:, :-1]
        inner[:, :-1] &= mask[:, 1:]
        inner[0, :] = inner[-1, :] = inner[:, 0] = inner[:, -1] = False
        mask = inner
    return mask


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Zero-mean smooth random field [size, size]: a cells x cells lattice of unit
    normals, bilinearly upsampled (also used for pathology stroma and tumour sheets)."""
    lattice = rng.normal(0.0, 1.0, (cells + 1, cells + 1))
    coords = (np.arange(size) + 0.5) / size * cells
    i0 = np.floor(coords).astype(int)
    f = coords - i0
    rows = lattice[i0] * (1 - f)[:, None] + lattice[i0 + 1] * f[:, None]
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i0 + 1] * f[None, :]


def _polyline_alpha(x: np.ndarray, y: np.ndarray, points: np.ndarray, half_width: float) -> np.ndarray:
    """Anti-aliased coverage of a polyline of the given half-width (design units)."""
    a = points[:-1, :, None, None]
    b = points[1:, :, None, None]
    ab = b - a
    px = x[None] - a[:, 0]
    py = y[None] - a[:, 1]
    t = np.clip((px * ab[:, 0] + py * ab[:, 1]) / np.maximum((ab**2).sum(axis=1), 1e-9), 0.0, 1.0)
    dist = np.hypot(px - t * ab[:, 0], py - t * ab[:, 1]).min(axis=0)
    return np.clip(half_width + 0.5 - dist, 0.0, 1.0)


def _bezier(p0: tuple[float, float], p1: tuple[float, float], p2: tuple[float, float], n: int = 12) -> np.ndarray:
    """Points on the quadratic Bezier curve p0 -> p2 bent towards p1."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * np.array(p0) + 2 * (1 - t) * t * np.array(p1) + t**2 * np.array(p2)


def _lateral(x: np.ndarray, anatomy: _Anatomy, side: str) -> np.ndarray:
    """0 at the mediastinum, 1 at the lateral chest wall, on one side."""
    width = anatomy.half_width - anatomy.mediastinum
    return np.clip((_side_sign(side) * (x - anatomy.cx) - anatomy.mediastinum) / width, 0.0, 1.0)


def _draw_effusion(
    image: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    lungs: dict[str, np.ndarray],
    anatomy: _Anatomy,
    side: str,
    rng: np.random.Generator,
) -> None:
    """White basal fluid with a meniscus climbing the lateral wall; blunts the costophrenic angle."""
    lateral = _lateral(x, anatomy, side)
    depth = rng.uniform(0.32, 0.45) * anatomy.lung_height(side)
    level = anatomy.dome[side] - depth - rng.uniform(3.0, 6.0) * lateral**2
    alpha = np.clip((y - level) / 2.0, 0.0, 1.0) * lungs[side]
    image += alpha * (FLUID - image)


def _draw_pneumothorax(
    image: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    lungs: dict[str, np.ndarray],
    anatomy: _Anatomy,
    side: str,
    heart_rx: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Collapse the lung towards its hilum: the freed apical/lateral rim becomes black
    air without markings, bounded by a bright visceral pleural line. Returns the
    aerated (collapsed) lung mask."""
    sign = _side_sign(side)
    hilum_x = anatomy.hilum_x(side)
    hilum_y = anatomy.lung_top + 0.55 * anatomy.lung_height(side)
    scale = rng.uniform(0.62, 0.72)
    # Collapse is full above the hilum and fades out halfway down to the diaphragm.
    fade = np.clip((y - hilum_y) / (0.5 * (anatomy.dome[side] - hilum_y)), 0.0, 1.0)
    sx = np.where(sign * (x - hilum_x) > 0, scale + (1.0 - scale) * fade, 1.0)  # lateral side only
    source_y = np.where(y < hilum_y, hilum_y + (y - hilum_y) / scale, y)
    collapsed = _lung_mask(hilum_x + (x - hilum_x) / sx, source_y, anatomy, side, heart_rx) & lungs[side]
    free_air = lungs[side] & ~collapsed
    pleural_line = collapsed & ~_erode(~free_air, 1)  # the lung edge that faces free air
    image[free_air] = PNEUMOTHORAX_AIR
    image[collapsed] += 0.05
    image[pleural_line] = PLEURAL_LINE
    return collapsed


def _draw_nodule(
    image: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    aerated: dict[str, np.ndarray],
    anatomy: _Anatomy,
    side: str,
    zone: str,
    pixel: float,
    rng: np.random.Generator,
) -> None:
    """One bright round blob (5-7 design px across) inside the requested lung zone."""
    radius = rng.uniform(2.5, 3.5)
    height = anatomy.lung_height(side)
    top, bottom = (0.15, 0.42) if zone == "upper" else (0.52, 0.70)
    rows = (y >= anatomy.lung_top + top * height) & (y <= anatomy.lung_top + bottom * height)
    margin = int(np.ceil((radius + 1.0) / pixel))
    candidates = _erode(aerated[side], margin) & rows
    if not candidates.any():
        candidates = aerated[side] & rows
    if not candidates.any():
        candidates = rows & (_side_sign(side) * (x - anatomy.cx) > anatomy.mediastinum)
    flat = np.flatnonzero(candidates)
    centre = flat[rng.integers(flat.size)]
    cy, cx = y.flat[centre], x.flat[centre]
    alpha = np.clip(radius + 0.5 - np.hypot(x - cx, y - cy), 0.0, 1.0)
    image += alpha * (NODULE - image)


def _draw_device(image: np.ndarray, x: np.ndarray, y: np.ndarray, anatomy: _Anatomy, rng: np.random.Generator) -> None:
    """A bright tube or line, sometimes with a port / pacemaker box."""
    cx, top = anatomy.cx, anatomy.lung_top
    kind = rng.choice(["tubes", "central_line", "pacemaker"], p=[0.4, 0.3, 0.3])
    lines: list[np.ndarray] = []
    boxes: list[tuple[float, float, float, float]] = []
    if kind == "tubes":
        tip = top + rng.uniform(9.0, 13.0)
        lines.append(np.array([[cx + 0.3, 0.0], [cx + 0.3, tip]]))
        dome = anatomy.dome["left"]
        lines.append(_bezier((cx - 1.0, 0.0), (cx - 1.0, dome + 6.0), (cx + rng.uniform(9.0, 13.0), dome + 7.0)))
    elif kind == "central_line":
        entry = (cx - anatomy.half_width - 3.0, top + rng.uniform(2.0, 5.0))
        lines.append(_bezier(entry, (cx - 4.0, top + 4.0), (cx - 2.5, top + rng.uniform(18.0, 22.0))))
        if rng.random() < 0.5:
            boxes.append((entry[0] + 1.0, entry[1] - 2.0, 5.0, 4.0))
    else:
        box_x = cx + anatomy.half_width - rng.uniform(8.0, 11.0)
        box_y = top + rng.uniform(0.0, 3.0)
        boxes.append((box_x, box_y, 7.0, 5.0))
        lead_tip = (anatomy.heart_x - 2.0, anatomy.heart_y + 2.0)
        lines.append(_bezier((box_x + 1.0, box_y + 2.5), (cx - 2.0, top + 8.0), lead_tip))
    alpha = np.zeros_like(image)
    for points in lines:
        alpha = np.maximum(alpha, _polyline_alpha(x, y, points, 0.75))
    for bx, by, bw, bh in boxes:
        inside = np.clip(np.minimum(np.minimum(x - bx, bx + bw - x), np.minimum(y - by, by + bh - y)) + 0.5, 0.0, 1.0)
        alpha = np.maximum(alpha, inside)
    image += alpha * (DEVICE - image)


def draw_cxr(
    labels: frozenset[str], rng: np.random.Generator, size: int = 64, *, signs: SignPainter | None = None
) -> np.ndarray:
    """Render a frontal chest radiograph phantom showing exactly `labels` (and the `signs` of the other CheXpert
    observations, `medim.data.phantom_cxr_signs`, drawn into the lungs before the pleural findings).

    Returns uint8 [size, size, 3] with the grayscale image replicated in all channels.
    """
    seeds = rng.integers(0, 2**63, size=len(_STREAMS))
    stream = {name: np.random.default_rng(int(s)) for name, s in zip(_STREAMS, seeds)}
    anatomy = _sample_anatomy(stream["anatomy"])
    if signs is not None:
        anatomy = signs.adjust(anatomy)
    pixel = DESIGN_SIZE / size
    coords = (np.arange(size) + 0.5) * pixel
    y, x = np.meshgrid(coords, coords, indexing="ij")
    heart_rx = anatomy.heart_rx("cardiomegaly" in labels)
    lungs = {side: _lung_mask(x, y, anatomy, side, heart_rx) for side in SIDES}
    image = _draw_anatomy(x, y, anatomy, lungs, heart_rx, stream["anatomy"], size)
    if signs is not None:
        signs.draw(image, x, y, lungs, anatomy, pixel)

    aerated = dict(lungs)
    for side in SIDES:
        if f"pneumothorax_{side}" in labels:
            aerated[side] = _draw_pneumothorax(image, x, y, lungs, anatomy, side, heart_rx, stream["pneumothorax"])
    for side in SIDES:
        if f"effusion_{side}" in labels:
            before = image.copy()
            _draw_effusion(image, x, y, lungs, anatomy, side, stream["effusion"])
            aerated[side] = aerated[side] & (image - before < 0.05)
    for side in SIDES:
        for zone in ("upper", "lower"):
            if f"nodule_{side}_{zone}" in labels:
                _draw_nodule(image, x, y, aerated, anatomy, side, zone, pixel, stream["nodule"])
    if "support_device" in labels:
        _draw_device(image, x, y, anatomy, stream["device"])
    return _finish(image, stream["noise"], size)


def _draw_anatomy(
    x: np.ndarray,
    y: np.ndarray,
    anatomy: _Anatomy,
    lungs: dict[str, np.ndarray],
    heart_rx: float,
    rng: np.random.Generator,
    size: int,
) -> np.ndarray:
    """Normal chest: body, shoulders, mediastinum, heart, aerated lungs with
    hilar markings, ribs and clavicles."""
    ax = np.abs(x - anatomy.cx)
    body_width = anatomy.half_width + anatomy.wall
    neck = np.clip(y / max(anatomy.lung_top - 1.0, 1.0), 0.0, 1.0)
    body = ax < 9.0 + (body_width + 4.0 - 9.0) * np.sqrt(neck)
    image = np.where(body, SOFT_TISSUE + 0.10 * (y / DESIGN_SIZE), AIR)
    image = np.where(body & (ax < anatomy.mediastinum + 1.0), MEDIASTINUM, image)
    heart = ((x - anatomy.heart_x) / heart_rx) ** 2 + ((y - anatomy.heart_y) / anatomy.heart_ry) ** 2 < 1.0
    image = np.where(heart, MEDIASTINUM + 0.02, image)
    trachea = (ax < 1.6) & (y < anatomy.lung_top + 12.0)
    image = np.where(trachea, image - 0.25, image)

    markings = 0.03 * smooth_noise(rng, size, 10)
    for side in SIDES:
        hilum = np.hypot(x - anatomy.hilum_x(side), y - anatomy.lung_top - 0.5 * anatomy.lung_height(side))
        image = np.where(lungs[side], LUNG + 0.12 * np.exp(-hilum / 6.0) + markings, image)

    lateral = np.clip(ax / anatomy.half_width, 0.0, 1.0)
    phase = (y + 3.0 * lateral - 7.0 * lateral**2 - anatomy.rib_phase) % anatomy.rib_spacing
    rib = np.clip(1.0 - np.abs(phase - 1.2) / 1.0, 0.0, 1.0)
    in_chest = (ax < body_width) & (y > anatomy.lung_top - 2.0) & (y < max(anatomy.dome.values()))
    lung_any = lungs["left"] | lungs["right"]
    image += rib * in_chest * np.where(lung_any, 0.09, 0.03)
    clavicle_y = anatomy.lung_top + 2.0 + 3.0 * (1.0 - lateral) ** 2
    clavicle = np.clip(1.3 - np.abs(y - clavicle_y), 0.0, 1.0) * (ax > 3.0) * (ax < body_width - 2.0)
    image += 0.12 * clavicle
    return image


def _finish(image: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """Radiographic blur, quantum noise and per-exposure windowing; to uint8 RGB."""
    image = _soften(image, max(1, round(size / DESIGN_SIZE)))
    image = image + rng.normal(0.0, 0.012, image.shape)
    image = image * rng.uniform(0.93, 1.07) + rng.uniform(-0.03, 0.03)
    image = np.clip(image, 0.0, 1.0) ** rng.uniform(0.9, 1.1)
    gray = np.round(image * 255.0).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)
