"""Sample galleries written while training: where they go, what they hold, and that they leave training alone."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from helpers.training import losses, tiny_config
from PIL import Image
from safetensors.torch import load_file

from medim.training.trainer import train


def test_a_gallery_per_validation_with_every_direction_and_the_same_training(tmp_path: Path) -> None:
    with_gallery = train(tiny_config(tmp_path / "a", "train.gallery_samples=3"), progress=False).run_dir
    without = train(tiny_config(tmp_path / "b", "train.gallery_samples=0"), progress=False).run_dir

    assert sorted(p.name for p in (with_gallery / "gallery").iterdir()) == ["step_0000003", "step_0000006"]
    last = with_gallery / "gallery" / "step_0000006"
    assert sorted(p.name for p in last.glob("*.png")) == [
        "image_and_text.png",
        "image_given_text.png",
        "text_given_image.png",
    ]
    assert Image.open(last / "image_given_text.png").size[0] > 3 * 64  # three cells of a 64-px image side by side
    samples = json.loads((last / "samples.json").read_text())
    assert [len(samples[name]) for name in ("text_given_image", "image_and_text")] == [3, 3]
    assert all(entry["generated"] and entry["reference"] for entry in samples["text_given_image"])
    assert not (without / "gallery").exists()

    # generation draws from its own seeds: the losses and the weights are those of a run without galleries
    assert losses(with_gallery) == losses(without)
    weights = [load_file(run / "checkpoints" / "step_0000006" / "model.safetensors") for run in (with_gallery, without)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
