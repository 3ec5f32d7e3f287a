"""`medim reconstruct`: PSNR/SSIM against their formulas, and a folder of real-format images through the tiny VQGAN."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medim.cli import main
from medim.errors import DataError
from medim.evaluation.tokenizer_check import psnr, reconstruct_folder, ssim
from medim.registry import TOKENIZERS


def test_psnr_is_the_formula() -> None:
    a = np.zeros((4, 5, 3), np.uint8)
    assert psnr(a, a + 10) == pytest.approx(10 * math.log10(255**2 / 100))
    assert math.isinf(psnr(a, a))


def direct_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al.'s index at every valid 11x11 window, weighted by a normalised Gaussian (sigma 1.5), by loops."""
    offsets = np.arange(11) - 5
    g = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 1.5**2))
    w = g / g.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for c in range(x.shape[2]):
        a, b = x[..., c].astype(float), y[..., c].astype(float)
        for i in range(a.shape[0] - 10):
            for j in range(a.shape[1] - 10):
                pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
                ma, mb = (w * pa).sum(), (w * pb).sum()
                va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
                cov = (w * (pa - ma) * (pb - mb)).sum()
                values.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


def test_ssim_is_wang_et_al_with_a_gaussian_window() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (15, 14, 3), dtype=np.uint8)
    y = np.clip(x.astype(int) + rng.integers(-40, 40, x.shape), 0, 255).astype(np.uint8)
    assert ssim(x, y) == pytest.approx(direct_ssim(x, y), abs=1e-10)
    assert ssim(x, x) == pytest.approx(1.0)
    noisier = np.clip(x.astype(int) + rng.integers(-90, 90, x.shape), 0, 255).astype(np.uint8)
    assert ssim(x, noisier) < ssim(x, y) < 1


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(images / "a.png")
    Image.fromarray(rng.integers(0, 255, (40, 24), dtype=np.uint8), mode="L").save(images / "sub" / "b.jpg")
    Image.fromarray(rng.integers(0, 255, (16, 16, 4), dtype=np.uint8), mode="RGBA").save(images / "c.png")
    (images / "notes.txt").write_text("not an image")
    return images


@pytest.fixture()
def vqgan(tiny_vqgan_files, tmp_path: Path):
    config, checkpoint = tiny_vqgan_files
    tokenizer = TOKENIZERS.build({"name": "chameleon_vqgan", "config": str(config), "checkpoint": str(checkpoint)})
    tokenizer.prepare(None, tmp_path)
    return tokenizer


def test_reconstruct_folder_reports_each_image_and_writes_outputs(folder: Path, vqgan, tmp_path: Path) -> None:
    report = reconstruct_folder(vqgan, folder, out_dir=tmp_path / "out", batch_size=2, progress=False)
    assert [r["file"] for r in report["per_image"]] == ["a.png", "c.png", "sub/b.jpg"]
    with Image.open(folder / "sub" / "b.jpg") as image:
        original = vqgan.preprocess(image)
    rebuilt = vqgan.decode(vqgan.encode(original[None]))[0]
    assert report["per_image"][2]["psnr"] == pytest.approx(psnr(original, rebuilt))
    assert report["per_image"][2]["ssim"] == pytest.approx(ssim(original, rebuilt))
    assert report["images"] == 3 and 0 < report["codebook_usage"] <= 1
    assert report["psnr"]["min"] <= report["psnr"]["median"] <= max(r["psnr"] for r in report["per_image"])
    saved = json.loads((tmp_path / "out" / "reconstruction.json").read_text())
    assert saved["images"] == 3 and saved["tokenizer"]["tokens_per_image"] == vqgan.tokens_per_image
    with Image.open(tmp_path / "out" / "000.png") as gallery:
        assert gallery.size == (2 * vqgan.image_size, vqgan.image_size)


def test_bad_folders_and_files_are_named(folder: Path, vqgan, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        reconstruct_folder(vqgan, tmp_path / "nope", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no .png"):
        reconstruct_folder(vqgan, tmp_path / "empty", progress=False)
    (folder / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read image .*broken.png"):
        reconstruct_folder(vqgan, folder, progress=False)


def test_cli_checks_an_experiments_image_tokenizer(folder: Path, tiny_vqgan_files, tmp_path: Path, capsys) -> None:
    config, checkpoint = tiny_vqgan_files
    out = tmp_path / "out"
    args = [
        "reconstruct",
        "quickstart",
        str(folder),
        f"tokenizers.image={{name: chameleon_vqgan, config: {config}, checkpoint: {checkpoint}}}",
        "--out",
        str(out),
        "--quiet",
        "--limit",
        "2",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("2 images, ") and "PSNR  mean" in printed and "SSIM  mean" in printed
    assert json.loads((out / "reconstruction.json").read_text())["images"] == 2
    assert main(["reconstruct", "quickstart", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
