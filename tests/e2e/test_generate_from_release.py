"""`medim generate --checkpoint`: MeDiM's released checkpoint format, fabricated at tiny size, through the CLI.

Everything a user with the real files would name is built here in the real formats: the release
folder (save_state layout and key names), Liquid's config.json, a Llama-2-style tokenizer.model
and a Chameleon-style vqgan.yaml + vqgan.ckpt. The experiment is the bundled `paper/medim`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.release import fabricate_medim_release, tiny_liquid_config
from PIL import Image

from medim.cli import main
from medim.registry import LAYOUTS, TOKENIZERS

TEXT_TOKENS = 16


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory, llama_tokenizer_dir: Path, tiny_vqgan_files) -> dict:
    vqgan_yaml, vqgan_ckpt = tiny_vqgan_files
    settings = [
        f"tokenizers.text.path={llama_tokenizer_dir}",
        f"tokenizers.image.config={vqgan_yaml}",
        f"tokenizers.image.checkpoint={vqgan_ckpt}",
        f"layout.max_text_tokens={TEXT_TOKENS}",
    ]  # precision as paper/medim says: float32 weights, float16 autocast
    text = TOKENIZERS.build({"name": "llama2_text", "path": str(llama_tokenizer_dir)})
    image = TOKENIZERS.build({"name": "chameleon_vqgan", "config": str(vqgan_yaml), "checkpoint": str(vqgan_ckpt)})
    text.prepare(None, llama_tokenizer_dir)
    image.prepare(None, vqgan_yaml.parent)
    layout = LAYOUTS.build(
        {"name": "medim_paper", "max_text_tokens": TEXT_TOKENS}, image_tokenizer=image, text_tokenizer=text
    )
    root = tmp_path_factory.mktemp("medim_release")
    fabricate_medim_release(root / "checkpoint_510000", vocab_size=layout.vocab_size)
    tiny_liquid_config().save_pretrained(root / "Liquid_tiny")  # the config it was trained from; no weights needed
    args = ["--checkpoint", str(root / "checkpoint_510000"), "--steps", "4", "--device", "cpu"]
    args += [f"--set={s}" for s in [*settings, f"backbone.checkpoint={root / 'Liquid_tiny'}"]]
    settings.append(f"backbone.checkpoint={root / 'Liquid_tiny'}")
    return {
        "args": args,
        "layout": layout,
        "image_size": image.image_size,
        "checkpoint": root / "checkpoint_510000",
        "settings": settings,
    }


def test_text_to_image_from_the_released_checkpoint(release: dict, tmp_path: Path) -> None:
    code = main(
        ["generate", *release["args"], "--report", "The heart is enlarged.", "--num", "2", "--out", str(tmp_path)]
    )
    assert code == 0
    images = sorted(tmp_path.glob("0*.png"))
    assert len(images) == 2
    size = release["image_size"]
    assert all(np.asarray(Image.open(p)).shape == (size, size, 3) for p in images)


def test_image_to_text_from_the_released_checkpoint(
    release: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "xray.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 30), dtype=np.uint8), mode="L").save(source)
    assert main(["generate", *release["args"], "--image", str(source), "--out", str(tmp_path / "out")]) == 0
    reports = list((tmp_path / "out").glob("0*.txt"))
    assert len(reports) == 1 and "000: " in capsys.readouterr().out


def test_joint_pairs_from_the_released_checkpoint(release: dict, tmp_path: Path) -> None:
    assert main(["generate", *release["args"], "--pairs", "2", "--out", str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("0*.png"))) == 2 and len(list(tmp_path.glob("0*.txt"))) == 2


def test_a_release_that_does_not_fit_the_layout_is_a_clear_error(release: dict, tmp_path: Path, capsys) -> None:
    fabricate_medim_release(tmp_path / "wrong", vocab_size=release["layout"].vocab_size + 5)
    args = list(release["args"])
    args[args.index("--checkpoint") + 1] = str(tmp_path / "wrong")
    assert main(["generate", *args, "--pairs", "1", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "shape (checkpoint vs model): model.embed_tokens.weight" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_run_dir_and_checkpoint_are_exclusive(
    release: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", str(tmp_path), *release["args"], "--pairs", "1"]) == 2
    assert "not both or neither" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("settings", "said", "recorded"),
    [
        ([], "float32 weights, float16 autocast (MeDiM's)", {"weights": "float32", "autocast": "float16"}),
        (
            ["eval.autocast=bfloat16"],
            "float32 weights, bfloat16 autocast",
            {"weights": "float32", "autocast": "bfloat16"},
        ),
        (
            ["backbone.dtype=bfloat16", "eval.autocast=none"],
            "bfloat16 weights, no autocast",
            {"weights": "bfloat16", "autocast": "none"},
        ),
    ],
)
def test_the_release_says_which_precision_it_generated_in(
    release: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str], settings: list[str], said: str, recorded: dict
) -> None:
    args = [*release["args"], *[f"--set={s}" for s in settings], "--pairs", "1", "--out", str(tmp_path)]
    assert main(["generate", *args]) == 0
    assert f"precision: {said}" in capsys.readouterr().err.splitlines()
    assert json.loads((tmp_path / "request.json").read_text())["precision"] == recorded
    assert len(list(tmp_path.glob("0*.png"))) == 1 and len(list(tmp_path.glob("0*.txt"))) == 1


def test_a_bad_autocast_value_is_a_config_error_before_anything_is_written(
    release: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [*release["args"], "--set=eval.autocast=fp16", "--pairs", "1", "--out", str(tmp_path / "out")]
    assert main(["generate", *args]) == 2
    err = capsys.readouterr().err
    assert "eval.autocast" in err and "'float16'" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_the_demo_serves_the_released_checkpoint_and_explains_one_that_does_not_fit(
    release: dict, tmp_path: Path
) -> None:
    from medim.demo.model import DemoModel, DemoSource
    from medim.demo.requests import Decoding, DemoRequest, Mode
    from medim.demo.service import DemoService

    decoding = Decoding("medim", steps=3, cfg_scale=1.5, seed=0)
    source = DemoSource(checkpoint=release["checkpoint"], overrides=tuple(release["settings"]))
    model = DemoModel(source, device="cpu")
    size = release["image_size"]
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size), dtype=np.uint8), mode="L")
    drawn, written = DemoService(model, frames=3).answer(
        [DemoRequest(Mode.REPORT_TO_IMAGE, decoding, text="The heart is enlarged."),
         DemoRequest(Mode.IMAGE_TO_REPORT, decoding, picture=picture)]
    )  # fmt: skip
    assert drawn.error is None and drawn.image.shape == (size, size, 3) and len(drawn.image_states) >= 2
    assert written.error is None and written.report_states[-1] == written.report
    assert written.findings is None  # no dataset, so no report parser: the page says so
    fabricate_medim_release(tmp_path / "wrong", vocab_size=release["layout"].vocab_size + 5)
    wrong = DemoModel(DemoSource(checkpoint=tmp_path / "wrong", overrides=tuple(release["settings"])), device="cpu")
    assert wrong.loaded is None and "cannot be served" in wrong.status()
