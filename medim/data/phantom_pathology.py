"""Procedural H&E histopathology tiles with controllable findings.

Pink fibrous stroma carries either normal glands (rings of small, regular,
evenly spaced nuclei around pale lumina) or a tumour sheet (crowded, enlarged,
disorderly nuclei; much larger, darker and pleomorphic when high grade).
Necrosis is a pale washed-out patch with tiny dark debris; inflammation is
clusters of small, very dark, round lymphocytes.

As in the CXR phantom, every component draws from its own child generator so
draws that share a seed differ only in the toggled finding. Geometry lives in a
64x64 design frame and is sampled on the requested pixel grid.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from medim.data.phantom_cxr import DESIGN_SIZE, smooth_noise

STROMA_LIGHT = np.array([0.97, 0.80, 0.88])
STROMA_DARK = np.array([0.86, 0.52, 0.70])
LUMEN = np.array([0.98, 0.95, 0.97])
EPITHELIUM = np.array([0.87, 0.66, 0.84])
TUMOR_CYTOPLASM = np.array([0.80, 0.56, 0.78])
NECROSIS = np.array([0.98, 0.89, 0.92])
NORMAL_NUCLEUS = np.array([0.47, 0.32, 0.64])
TUMOR_NUCLEUS = np.array([0.36, 0.20, 0.55])
HIGH_GRADE_NUCLEUS = np.array([0.22, 0.08, 0.38])
DEBRIS = np.array([0.42, 0.24, 0.48])
LYMPHOCYTE = np.array([0.14, 0.06, 0.28])

# Label prevalences (see sample_pathology_labels).
P_NORMAL = 0.30
P_TUMOR = 0.55
P_HIGH_GRADE_GIVEN_TUMOR = 0.5
P_NECROSIS_GIVEN_TUMOR = 0.40
P_NECROSIS_GIVEN_BENIGN = 0.25
P_INFLAMMATION = 0.40

_STREAMS = ("stroma", "glands", "tumor", "necrosis", "inflammation", "noise")


def sample_pathology_labels(rng: np.random.Generator) -> frozenset[str]:
    """Sample a pathology finding set: ~30% normal, otherwise at least one finding.

    `high_grade` only occurs together with `tumor`; necrosis is more frequent in
    tumours but also occurs in benign tissue, so it is not a proxy for tumour.
    """
    if rng.random() < P_NORMAL:
        return frozenset()
    while True:
        labels: set[str] = set()
        tumor = rng.random() < P_TUMOR
        if tumor:
            labels.add("tumor")
            if rng.random() < P_HIGH_GRADE_GIVEN_TUMOR:
                labels.add("high_grade")
        if rng.random() < (P_NECROSIS_GIVEN_TUMOR if tumor else P_NECROSIS_GIVEN_BENIGN):
            labels.add("necrosis")
        if rng.random() < P_INFLAMMATION:
            labels.add("inflammation")
        if labels:
            return frozenset(labels)


def _paint_ellipses(
    image: np.ndarray, centres: np.ndarray, radii: np.ndarray, angles: np.ndarray, colours: np.ndarray
) -> None:
    """Composite anti-aliased filled ellipses onto `image` [size, size, 3], vectorised.

    centres [N, 2] as (x, y) and radii [N, 2] as (major, minor) are in design units;
    angles [N]; colours [N, 3]. Each ellipse is evaluated only in a small pixel
    window around it. Where ellipses overlap, the most covering one wins (the
    later one on ties), like opaque paint.
    """
    if len(centres) == 0:
        return
    size = image.shape[0]
    scale = size / DESIGN_SIZE
    reach = int(np.ceil(radii.max() * scale)) + 1
    offsets = np.arange(-reach, reach + 1)
    pixel = np.floor(centres * scale).astype(int)
    cols = pixel[:, 0, None, None] + offsets[None, None, :]
    rows = pixel[:, 1, None, None] + offsets[None, :, None]
    dx = (cols + 0.5) / scale - centres[:, 0, None, None]
    dy = (rows + 0.5) / scale - centres[:, 1, None, None]
    cos, sin = np.cos(angles)[:, None, None], np.sin(angles)[:, None, None]
    u = (dx * cos + dy * sin) / radii[:, 0, None, None]
    v = (-dx * sin + dy * cos) / radii[:, 1, None, None]
    # Distance to the boundary approximated in units of the minor radius; ~1 px soft edge.
    alpha = np.clip((1.0 - np.sqrt(u**2 + v**2)) * radii[:, 1, None, None] * scale + 0.5, 0.0, 1.0)
    inside = (alpha > 0) & (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    index = np.broadcast_to(np.arange(len(centres))[:, None, None], alpha.shape)
    key = (np.round(alpha * 1000).astype(np.int64) << 20) | index
    best = np.full(size * size, -1, dtype=np.int64)
    np.maximum.at(best, (rows * size + cols)[inside], key[inside])
    painted = best >= 0
    coverage = np.zeros(size * size)
    coverage[painted] = (best[painted] >> 20) / 1000
    winner = best[painted] & ((1 << 20) - 1)
    flat = image.reshape(-1, 3)
    flat[painted] += coverage[painted, None] * (colours[winner] - flat[painted])


def _lookup(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Nearest-pixel values of a [size, size] field at design-frame points [N, 2] (x, y)."""
    size = field.shape[0]
    index = np.clip((points / DESIGN_SIZE * size).astype(int), 0, size - 1)
    return field[index[:, 1], index[:, 0]]


def _scatter(
    rng: np.random.Generator,
    count: int,
    min_distance: float,
    allowed: Callable[[np.ndarray], np.ndarray],
    tries: int = 40,
) -> np.ndarray:
    """Up to `count` points in the design frame, at least `min_distance` apart and
    accepted by `allowed(points) -> bool mask` (dart throwing, vectorised per round)."""
    points = np.zeros((0, 2))
    for _ in range(tries):
        if len(points) >= count:
            break
        candidates = rng.uniform(0.0, DESIGN_SIZE, (count, 2))
        candidates = candidates[allowed(candidates)]
        for point in candidates:
            if len(points) >= count:
                break
            if len(points) == 0 or np.min(np.hypot(*(points - point).T)) >= min_distance:
                points = np.vstack([points, point])
    return points


def _draw_stroma(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pink eosinophilic background with wavy collagen fibres along a random direction."""
    size = x.shape[0]
    theta = rng.uniform(0.0, np.pi)
    along = x * np.cos(theta) + y * np.sin(theta)
    warp = 2.5 * smooth_noise(rng, size, 4)
    fibres = np.sin(2 * np.pi * along / rng.uniform(3.0, 4.5) + warp)
    mix = np.clip(0.45 + 0.25 * fibres + 0.12 * smooth_noise(rng, size, 8), 0.0, 1.0)
    return STROMA_LIGHT + (STROMA_DARK - STROMA_LIGHT) * mix[..., None]


def _draw_glands(image: np.ndarray, rng: np.random.Generator) -> None:
    """Normal architecture: round glands with pale lumina lined by one regular row of
    small nuclei, plus sparse spindle-shaped stromal nuclei."""
    radius = rng.uniform(7.0, 10.0)
    centres = _scatter(rng, 6, 2.0 * radius + 2.0, lambda p: np.ones(len(p), bool))
    n = len(centres)
    for ring, colour in ((radius, EPITHELIUM), (radius - 2.8, LUMEN)):
        _paint_ellipses(image, centres, np.full((n, 2), ring), np.zeros(n), np.tile(colour, (n, 1)))
    ring = radius - 1.3
    count = int(2 * np.pi * ring / 2.9)
    phi = rng.uniform(0, 2 * np.pi, (n, 1)) + np.arange(count) * 2 * np.pi / count
    lining = np.stack([centres[:, :1] + ring * np.cos(phi), centres[:, 1:] + ring * np.sin(phi)], axis=-1)
    stromal = rng.uniform(0.0, DESIGN_SIZE, (14, 2))
    nuclei = np.concatenate([lining.reshape(-1, 2), stromal])
    sizes = np.concatenate([np.tile([1.25, 0.95], (phi.size, 1)), np.tile([1.7, 0.6], (len(stromal), 1))])
    angles = np.concatenate([phi.reshape(-1), rng.uniform(0, np.pi, len(stromal))])
    _paint_ellipses(image, nuclei, sizes, angles, np.tile(NORMAL_NUCLEUS, (len(nuclei), 1)))


def _draw_tumor(image: np.ndarray, high_grade: bool, rng: np.random.Generator) -> None:
    """A sheet of crowded, disorderly nuclei over most of the tile; high grade makes
    them much larger, darker and pleomorphic (variable size and shape)."""
    field = smooth_noise(rng, image.shape[0], 3)
    threshold = np.quantile(field, rng.uniform(0.05, 0.25))
    sheet = np.clip((field - threshold) * 4.0, 0.0, 1.0)
    image += sheet[..., None] * (TUMOR_CYTOPLASM - image)

    def cell(points: np.ndarray) -> np.ndarray:
        return _lookup(sheet, points) > 0.5

    if high_grade:
        centres = _scatter(rng, 70, 5.0, cell)
        major = rng.uniform(2.2, 4.0, len(centres))
        minor = major * rng.uniform(0.55, 1.0, len(centres))
        colours = HIGH_GRADE_NUCLEUS * rng.uniform(0.75, 1.25, (len(centres), 1))
    else:
        centres = _scatter(rng, 130, 3.6, cell)
        major = rng.uniform(1.5, 2.0, len(centres))
        minor = major * rng.uniform(0.75, 1.0, len(centres))
        colours = TUMOR_NUCLEUS * rng.uniform(0.92, 1.08, (len(centres), 1))
    radii = np.stack([major, minor], axis=1)
    _paint_ellipses(image, centres, radii, rng.uniform(0, np.pi, len(centres)), np.clip(colours, 0.0, 1.0))


def _draw_necrosis(image: np.ndarray, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One or two pale, washed-out irregular patches with scattered tiny dark debris.
    Returns the patch coverage (0..1) so later components can avoid it."""
    coverage = np.zeros(x.shape)
    for _ in range(rng.integers(1, 3)):
        cx, cy = rng.uniform(14.0, 50.0, 2)
        radius = rng.uniform(10.0, 14.0)
        phi = np.arctan2(y - cy, x - cx)
        a, b = rng.uniform(0, 2 * np.pi, 2)
        boundary = radius * (1.0 + 0.15 * np.sin(2 * phi + a) + 0.08 * np.sin(3 * phi + b))
        coverage = np.maximum(coverage, np.clip(boundary - np.hypot(x - cx, y - cy) + 0.5, 0.0, 1.0))
    image += 0.9 * coverage[..., None] * (NECROSIS - image)
    points = rng.uniform(0.0, DESIGN_SIZE, (400, 2))
    debris = points[_lookup(coverage, points) > 0.9][: int(rng.integers(25, 40))]
    radii = rng.uniform(0.5, 0.75, (len(debris), 1)).repeat(2, axis=1)
    _paint_ellipses(image, debris, radii, np.zeros(len(debris)), np.tile(DEBRIS, (len(debris), 1)))
    return coverage


def _draw_inflammation(image: np.ndarray, avoid: np.ndarray, rng: np.random.Generator) -> None:
    """Two to four clusters of small, very dark, round lymphocytes outside `avoid`."""
    candidates = rng.uniform(8.0, DESIGN_SIZE - 8.0, (50, 2))
    centres = candidates[_lookup(avoid, candidates) < 0.1][: int(rng.integers(2, 5))]
    if len(centres) == 0:
        centres = candidates[:2]
    counts = rng.integers(25, 45, len(centres))
    cells = np.concatenate([rng.normal(c, rng.uniform(3.0, 4.0), (k, 2)) for c, k in zip(centres, counts)])
    radii = rng.uniform(0.9, 1.15, (len(cells), 1)).repeat(2, axis=1)
    _paint_ellipses(image, cells, radii, np.zeros(len(cells)), np.tile(LYMPHOCYTE, (len(cells), 1)))


def draw_pathology(labels: frozenset[str], rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """Render an H&E tile showing exactly `labels`; returns uint8 RGB [size, size, 3]."""
    seeds = rng.integers(0, 2**63, size=len(_STREAMS))
    stream = {name: np.random.default_rng(int(s)) for name, s in zip(_STREAMS, seeds)}
    coords = (np.arange(size) + 0.5) * (DESIGN_SIZE / size)
    y, x = np.meshgrid(coords, coords, indexing="ij")
    image = _draw_stroma(x, y, stream["stroma"])
    if "tumor" in labels:
        _draw_tumor(image, "high_grade" in labels, stream["tumor"])
    else:
        _draw_glands(image, stream["glands"])
    necrosis = _draw_necrosis(image, x, y, stream["necrosis"]) if "necrosis" in labels else np.zeros(x.shape)
    if "inflammation" in labels:
        _draw_inflammation(image, necrosis, stream["inflammation"])
    noise = stream["noise"]
    stain = noise.uniform(0.94, 1.04, 3)
    image = image * stain + noise.normal(0.0, 0.015, image.shape)
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
