"""`medim build --dry-run` of the paper configuration, and `medim info` of the checkpoint backbones."""

from __future__ import annotations

import re

import pytest

from medim.cli import main


def counts(output: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2).replace(",", "")) for m in re.finditer(r"^\s+(\S+)\s+([\d,]+)", output, re.M)}


def test_paper_dry_run_builds_medims_backbone_at_real_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "paper/medim", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "layout medim_paper: 40196 vocabulary rows" in out and "(1024 image + 256 text positions)" in out
    found = counts(out)
    hidden, mlp, attention_width = 3072, 24576, 16 * 256
    layer = 4 * hidden * attention_width + 3 * hidden * mlp + 2 * hidden
    assert found["model.embed_tokens"] == 40196 * hidden  # tied: no separate head
    assert found["model.layers"] == 10 * layer
    llm = found["model.embed_tokens"] + found["model.layers"] + found["model.norm"]
    assert 2.85e9 < llm < 2.95e9  # 10 Gemma-7B layers + the 40196-row embedding
    assert found["adaln"] == 10 * (hidden * 6 * hidden + 6 * hidden)
    assert found["time_embedder"] == 256 * hidden + hidden + hidden * hidden + hidden
    assert found["total"] == sum(v for k, v in found.items() if k != "total")


def test_llama_ablation_dry_run_has_an_untied_head(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "ablations/paper_llama_backbone", "--dry-run"]) == 0
    found = counts(capsys.readouterr().out)
    assert found["model.embed_tokens"] == found["head"] == 40196 * 4096
    assert found["model.layers"] == 10 * (4 * 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096)


@pytest.mark.parametrize(("name", "model_type"), [("liquid", "gemma"), ("llama", "llama")])
def test_info_shows_the_checkpoint_files_expected(
    name: str, model_type: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", name]) == 0
    out = capsys.readouterr().out
    assert "model.safetensors.index.json" in out and "pytorch_model.bin" in out and "config.json" in out
    assert f"checkpoint model_type: {model_type}" in out
    assert "num_layers" in out and "adaln_gate" in out and "published config" in out


def test_swapping_the_image_tokenizer_reshapes_the_layout(capsys: pytest.CaptureFixture[str]) -> None:
    small = ["data.num_train=8", "data.num_val=4", "data.num_test=4"]
    assert main(["build", "quickstart", *small, "--dry-run"]) == 0
    assert "(64 image + 40 text positions)" in capsys.readouterr().out
    assert main(["build", "ablations/tokenizer_chameleon_vqgan", *small, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "(1024 image + 40 text positions)" in out and "sequence length 1066" in out
