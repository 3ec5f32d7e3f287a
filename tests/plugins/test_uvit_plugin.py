"""The example plugin `plugins/medim-uvit`, pip-installed for real and used by name like any backbone.

A module fixture installs it with `helpers.plugins.install_plugin` (pip into a temporary target, the
repository untouched); each test sees the global BACKBONES registry as a fresh process with the
plugin installed would (`plugin_on_path`), restored afterwards.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from helpers.plugins import install_plugin, plugin_on_path

from medim.cli import main
from medim.errors import ConfigError, RegistryError
from medim.registry import BACKBONES
from medim.runs import load_run
from medim.training.checkpoints import latest_checkpoint

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "medim-uvit"
EXAMPLE = PLUGIN / "experiments" / "uvit_quickstart.yaml"
SMALL = {"name": "uvit", "hidden_size": 32, "num_heads": 2}


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the installed distribution (package + medim_uvit-0.1.0.dist-info)."""
    return install_plugin(PLUGIN, tmp_path_factory.mktemp("uvit_install"))


@pytest.fixture()
def uvit(site_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """BACKBONES as a fresh process would see it with the plugin installed; everything restored after."""
    with plugin_on_path(site_dir, BACKBONES, "medim_uvit", monkeypatch):
        yield BACKBONES


def build(registry, layout=None, seq_len: int = 12, **overrides):
    torch.manual_seed(0)
    spec = {**SMALL, **overrides}
    length = layout.seq_len if layout is not None else seq_len
    vocab = layout.vocab_size if layout is not None else 50
    return registry.build(spec, where="backbone", vocab_size=vocab, max_seq_len=length, layout=layout).eval()


def tokens(vocab: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, (2, length), generator=torch.Generator().manual_seed(seed))


def test_installed_plugin_is_listed_as_a_plugin_without_being_imported(
    uvit, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "uvit" in uvit.names() and "hf_decoder" in uvit.names()
    assert "medim_uvit.backbone" not in sys.modules  # listed from its entry point only
    assert uvit.plugin_entry_points()["uvit"] == "medim-uvit 0.1.0 (medim_uvit.backbone:UViTBackbone)"
    assert main(["list", "backbones"]) == 0
    line = next(row for row in capsys.readouterr().out.splitlines() if row.split()[:1] == ["uvit"])
    assert "[plugin]" in line and "U-ViT" in line
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "backbones   uvit" in out and "medim-uvit 0.1.0" in out and "BROKEN" not in out
    info = uvit.info("uvit")
    assert (
        info["origin"]
        == "medim_uvit.backbone.UViTBackbone (plugin medim-uvit 0.1.0 (medim_uvit.backbone:UViTBackbone))"
    )
    assert {p["name"] for p in info["params"]} >= {"hidden_size", "num_blocks", "num_heads", "position_embedding"}
    assert all(p["description"] for p in info["params"])


@pytest.mark.parametrize("position_embedding", ["learned", "sinusoidal"])
def test_forward_shape_and_logits(uvit, tiny_layout, position_embedding: str) -> None:
    backbone = build(uvit, tiny_layout, position_embedding=position_embedding, tie_embeddings=False, num_blocks=4)
    x = tokens(tiny_layout.vocab_size, tiny_layout.seq_len)
    hidden = backbone(x, torch.tensor([0.1, 2.0]), torch.ones_like(x, dtype=torch.bool))
    assert hidden.shape == (2, tiny_layout.seq_len, 32) and torch.isfinite(hidden).all()
    positions = tiny_layout.image_positions[:5]
    logits = backbone.logits(hidden, positions, (3, 10))
    assert logits.shape == (2, 5, 7)
    assert backbone.output_weight() is backbone.head.weight  # untied head on request
    assert len(backbone.in_blocks) == len(backbone.out_blocks) == 2 and backbone.mid is not None
    assert all(b.skip_fuse.in_features == 64 for b in backbone.out_blocks)


def test_image_tokens_get_row_and_column_embeddings(uvit, tiny_layout) -> None:
    backbone = build(uvit, tiny_layout)
    n = tiny_layout.image_tokenizer.tokens_per_image
    side = math.isqrt(n)
    image = tiny_layout.image_positions
    assert backbone.grid_row[image].tolist() == [k // side for k in range(n)]
    assert backbone.grid_col[image].tolist() == [k % side for k in range(n)]
    pos = backbone.position_embedding(tiny_layout.seq_len)
    first, second = pos[image[0]], pos[image[1]]  # same row, next column
    torch.testing.assert_close(first[:16], second[:16])
    assert not torch.allclose(first[16:], second[16:])
    torch.testing.assert_close(pos[tiny_layout.text_positions], backbone.seq_pos[tiny_layout.text_positions])


def test_non_square_image_grid_is_refused(uvit) -> None:
    layout = SimpleNamespace(image_positions=torch.arange(1, 13), image_tokenizer=SimpleNamespace(tokens_per_image=12))
    with pytest.raises(ConfigError, match="needs a square image grid, but the image tokenizer gives 12 tokens"):
        uvit.build(SMALL, vocab_size=50, max_seq_len=16, layout=layout)


def test_adaln_zero_starts_every_block_as_the_identity(uvit) -> None:
    backbone = build(uvit)
    x = tokens(50, 12)
    changed = x.clone()
    changed[:, -1] = (x[:, -1] + 1) % 50
    before = backbone(x, torch.zeros(2))
    torch.testing.assert_close(before[:, 0], backbone(changed, torch.zeros(2))[:, 0], rtol=0, atol=0)
    torch.testing.assert_close(before, backbone(x, torch.full((2,), 3.0)))  # all modulation is zero too


def test_attention_is_bidirectional_and_depends_on_the_noise_level(uvit) -> None:
    backbone = build(uvit, adaln_init="normal")
    x = tokens(50, 12)
    changed = x.clone()
    changed[:, -1] = (x[:, -1] + 1) % 50
    level = torch.full((2,), 0.5)
    before = backbone(x, level)
    assert not torch.allclose(before[:, 0], backbone(changed, level)[:, 0])  # position 0 sees the last token
    assert not torch.allclose(before, backbone(x, torch.full((2,), 3.0)))


def test_padding_mask_hides_padded_tokens(uvit) -> None:
    backbone = build(uvit, adaln_init="normal")
    x = tokens(50, 12)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[:, -3:] = False
    changed = x.clone()
    changed[:, -1] = (x[:, -1] + 1) % 50
    level = torch.full((2,), 0.5)
    torch.testing.assert_close(backbone(x, level, mask)[:, :-3], backbone(changed, level, mask)[:, :-3])
    assert not torch.allclose(backbone(x, level)[:, :-3], backbone(changed, level)[:, :-3])  # the check can fail


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_blocks": 3}, r"backbone: Value error, num_blocks must be even \(the first half feeds the long"),
        ({"hidden_size": 30, "num_heads": 4}, r"hidden_size 30 is not divisible by num_heads 4"),
        ({"hidden_size": 18, "num_heads": 3}, r"hidden_size 18 is not a multiple of 4"),
        ({"position_embedding": "rope"}, r"backbone\.position_embedding: Input should be 'learned' or 'sinusoidal'"),
        ({"num_layers": 2}, r"backbone\.num_layers: unknown key[\s\S]*valid keys: hidden_size, num_blocks"),
    ],
)
def test_inconsistent_params_are_refused_clearly(uvit, change: dict, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        uvit.validate({**SMALL, **change}, where="backbone")


def test_medim_check_uvit_passes_every_backbone_check(uvit, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "uvit"]) == 0  # at the size of the plugin's example_params hook
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "backbone 'uvit' from " + uvit.info("uvit")["origin"]
    assert lines[1] == "  ok    builds: 75,008 parameters, hidden_size 32"
    assert all(line.startswith("  ok    ") for line in lines[1:-1]) and len(lines) == 9
    assert lines[-1] == "backbone 'uvit': all 7 checks passed"  # no per-position noise levels: not declared
    assert main(["check", "uvit", "--set", "num_blocks=4", "--set", "hidden_size=16"]) == 0  # on top of the hook's
    assert capsys.readouterr().out.splitlines()[1].endswith("parameters, hidden_size 16")


def test_cli_reports_bad_params_in_the_experiment(uvit, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", str(EXAMPLE), "backbone.num_blocks=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("medim: error: experiment ") and "uvit_quickstart.yaml" in err
    assert "num_blocks must be even" in err and "Traceback" not in err


def test_trains_by_name_from_yaml_through_the_cli(uvit, tmp_path: Path) -> None:
    experiment = tmp_path / "tiny_uvit.yaml"
    experiment.write_text(
        yaml.safe_dump(
            {
                "defaults": [str(EXAMPLE)],  # the plugin's example experiment, at toy size
                "name": "tiny_uvit",
                "output_dir": str(tmp_path / "runs"),
                "data": {"num_train": 48, "num_val": 16, "num_test": 16},
                "tokenizers": {"image": {"codebook_size": 16}, "text": {"vocab_size": 96}},
                "backbone": {"name": "uvit", "hidden_size": 32, "num_heads": 2},
                "train": {
                    "steps": 12,
                    "batch_size": 8,
                    "warmup_steps": 2,
                    "eval_every": 6,
                    "checkpoint_every": 6,
                    "log_every": 1,
                    "val_batches": 1,
                    "max_minutes": None,
                },
            }
        )
    )
    assert main(["train", str(experiment), "--quiet"]) == 0
    run = tmp_path / "runs" / "tiny_uvit"
    records = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    validation = [r["val_loss"] for r in records if "val_loss" in r]
    assert len(losses) == 12 and all(math.isfinite(v) for v in losses)
    assert len(validation) == 2 and validation[1] < validation[0]  # same validation batches, lower loss
    resolved = yaml.safe_load((run / "resolved.yaml").read_text())["backbone"]
    assert resolved == {
        "name": "uvit",
        "hidden_size": 32,
        "num_blocks": 2,
        "mid_block": True,
        "num_heads": 2,
        "mlp_ratio": 3.0,
        "position_embedding": "learned",
        "adaln_init": "zero",
        "tie_embeddings": True,
        "norm_eps": 1e-6,
    }
    assert latest_checkpoint(run).name == "step_0000012"
    # the run opens again (built on the meta device, then the checkpoint's weights assigned)
    built, backbone = load_run(run)
    assert type(backbone).__name__ == "UViTBackbone" and not any(p.is_meta for p in backbone.parameters())
    x = built.tokens("test")[:2]
    assert backbone(x, torch.ones(2)).shape == (2, built.layout.seq_len, 32)
