"""`medim reconstruct`: how well an image tokenizer keeps one's own images (encode, decode, PSNR and SSIM).

PSNR = 10 log10(255² / MSE) over all pixels and channels of the preprocessed image
and its reconstruction (identical images: reported as null with `"identical": true`).
SSIM follows Wang et al. 2004 as scikit-image computes it with `gaussian_weights=True`:
an 11 x 11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, L = 255, population
(co)variances, the mean over the valid region (5 pixels cropped at each border),
averaged over channels.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from medim.errors import DataError
from medim.generate import read_image
from medim.io import atomic_write, atomic_write_json
from medim.tokenizers.base import ImageTokenizer

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
WINDOW, SIGMA, K1, K2, RANGE = 11, 1.5, 0.01, 0.03, 255.0
GALLERY_SIZE = 16


def psnr(original: np.ndarray, reconstruction: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (inf when identical)."""
    mse = float(np.mean((original.astype(np.float64) - reconstruction.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(RANGE**2 / mse)


def ssim(original: np.ndarray, reconstruction: np.ndarray) -> float:
    """Mean SSIM of two uint8 [H, W, C] images (see the module docstring)."""
    x = torch.from_numpy(original.astype(np.float64)).permute(2, 0, 1)[:, None]  # [C, 1, H, W]
    y = torch.from_numpy(reconstruction.astype(np.float64)).permute(2, 0, 1)[:, None]
    offsets = torch.arange(WINDOW, dtype=torch.float64) - (WINDOW - 1) / 2
    gauss = torch.exp(-(offsets**2) / (2 * SIGMA**2))
    kernel = (gauss[:, None] * gauss[None, :] / gauss.sum() ** 2)[None, None]

    def local(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(z, kernel)  # valid region only

    mu_x, mu_y = local(x), local(y)
    var_x = local(x * x) - mu_x**2
    var_y = local(y * y) - mu_y**2
    cov = local(x * y) - mu_x * mu_y
    c1, c2 = (K1 * RANGE) ** 2, (K2 * RANGE) ** 2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(index.mean())


def find_images(folder: Path) -> list[Path]:
    """Image files below `folder`, sorted, with a clear error when there are none."""
    if not folder.is_dir():
        raise DataError(f"image folder {str(folder)!r} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"image folder {str(folder)!r} holds no {', '.join(IMAGE_SUFFIXES)} files")
    return files


def reconstruct_folder(
    tokenizer: ImageTokenizer,
    folder: Path,
    *,
    out_dir: Path | None = None,
    batch_size: int = 8,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Encode and decode every image of `folder` with `tokenizer`; per-image and summary PSNR/SSIM.

    Each file goes through the tokenizer's own `preprocess` first; an unreadable file stops
    the run with its name. With `out_dir`, writes `reconstruction.json` and side-by-side PNGs
    (preprocessed | reconstructed) of the first images.
    """
    files = find_images(folder)[:limit]
    rows: list[dict[str, Any]] = []
    codes_seen: set[int] = set()
    encode_seconds = decode_seconds = 0.0
    with tqdm(total=len(files), desc="reconstruct", unit="img", disable=not progress) as bar:
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            originals = np.stack([read_image(path, tokenizer) for path in chunk])
            began = time.perf_counter()
            codes = tokenizer.encode(originals)
            encoded = time.perf_counter()
            rebuilt = tokenizer.decode(codes)
            decode_seconds += time.perf_counter() - encoded
            encode_seconds += encoded - began
            codes_seen.update(codes.flatten().tolist())
            for path, original, image in zip(chunk, originals, rebuilt):
                rows.append(_image_row(str(path.relative_to(folder)), original, image))
                if out_dir is not None and len(rows) <= GALLERY_SIZE:
                    _write_side_by_side(out_dir / f"{len(rows) - 1:03d}.png", original, image)
            bar.update(len(chunk))
    report = {
        "tokenizer": {
            "identity": tokenizer.identity(),
            "tokens_per_image": tokenizer.tokens_per_image,
            "image_size": tokenizer.image_size,
            "codebook_size": tokenizer.codebook_size,
        },
        "images": len(rows),
        "psnr": _summary([r["psnr"] for r in rows if r["psnr"] is not None]),
        "identical_images": sum(r["identical"] for r in rows),
        "ssim": _summary([r["ssim"] for r in rows]),
        "codebook_usage": len(codes_seen) / tokenizer.codebook_size,
        "encode_images_per_second": len(rows) / encode_seconds if encode_seconds > 0 else None,
        "decode_images_per_second": len(rows) / decode_seconds if decode_seconds > 0 else None,
        "per_image": rows,
    }
    if out_dir is not None:
        atomic_write_json(out_dir / "reconstruction.json", report)
    return report


def _image_row(name: str, original: np.ndarray, image: np.ndarray) -> dict[str, Any]:
    """One image's line of the report: its PSNR (None when identical), whether identical, its SSIM."""
    value = psnr(original, image)
    return {
        "file": name,
        "psnr": None if math.isinf(value) else value,
        "identical": math.isinf(value),
        "ssim": ssim(original, image),
    }


def _write_side_by_side(path: Path, original: np.ndarray, image: np.ndarray) -> None:
    """original | reconstruction as one PNG."""
    side_by_side = np.concatenate([original, image], axis=1)
    atomic_write(path, lambda tmp: Image.fromarray(side_by_side).save(tmp, format="PNG"))


def reconstruct_experiment(
    experiment: str,
    overrides: list[str],
    folder: Path,
    out_dir: Path,
    *,
    batch_size: int = 16,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """`medim reconstruct`: the image tokenizer of `experiment` (name or YAML) on a folder of images."""
    from medim.config import load_experiment
    from medim.experiment import build_experiment
    from medim.io import cache_root

    if batch_size < 1 or (limit is not None and limit < 1):
        raise DataError("--batch-size and --limit must be at least 1")
    find_images(folder)  # fail on a bad folder before building anything
    config = load_experiment(experiment, overrides)
    tokenizer: ImageTokenizer = config.tokenizers.image.build()
    if tokenizer.needs_corpus():  # trained on the experiment's images: build the experiment for them
        tokenizer = build_experiment(config, progress=progress).image_tokenizer
    else:
        tokenizer.prepare(None, cache_root())
    return reconstruct_folder(tokenizer, folder, out_dir=out_dir, batch_size=batch_size, limit=limit, progress=progress)


def reconstruction_summary(report: dict[str, Any]) -> str:
    """The report's headline numbers, as `medim reconstruct` prints them."""
    psnr, ssim = report["psnr"], report["ssim"]
    lines = [
        f"{report['images']} images, {report['tokenizer']['tokens_per_image']} codes each "
        f"({report['codebook_usage']:.1%} of the codebook used)"
    ]
    if psnr:
        lines.append(f"  PSNR  mean {psnr['mean']:.2f} dB  median {psnr['median']:.2f}  min {psnr['min']:.2f}")
    lines.append(f"  SSIM  mean {ssim['mean']:.4f}  median {ssim['median']:.4f}  min {ssim['min']:.4f}")
    lines.append(
        f"  encode {report['encode_images_per_second'] or 0:.1f} images/s, "
        f"decode {report['decode_images_per_second'] or 0:.1f} images/s"
    )
    return "\n".join(lines)


def _summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"mean": statistics.fmean(values), "median": statistics.median(values), "min": min(values)}
