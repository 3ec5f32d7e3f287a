"""`medim bench`: the presets are MeDiM's scale, the plain-transformers references compute the loss medim computes
(so the arms are compared on the same work), and a tiny case runs end to end into its report files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers.components import build_task, tiny_backbone

from medim.backbones.base import empty_weights
from medim.benchmarking.generation import DIRECTIONS
from medim.benchmarking.plain import PlainModel, subs_loss
from medim.benchmarking.presets import PRESETS, BenchCase, BenchPreset, ModelShape, preset
from medim.benchmarking.report import write_report
from medim.benchmarking.run import _experiment, run_bench
from medim.errors import ConfigError
from medim.registry import BACKBONES


@pytest.mark.parametrize(
    "case_name,vocab,parameters",
    [
        ("gemma7b_10l_medim_paper", 40196, (2.8e9, 3.0e9)),  # MeDiM: a 10-layer Gemma-7B slice, ~2.9B parameters
        ("gemma7b_10l_liquid_native", 264256, (3.5e9, 3.7e9)),  # Liquid's 256,000 text + 8,192 image rows
        ("llama2_7b_10l_medim_paper", 40196, (2.1e9, 2.3e9)),
    ],
)
def test_the_gpu_preset_is_meDiMs_scale(case_name: str, vocab: int, parameters: tuple[float, float]) -> None:
    """The transformer alone (as the references hold it); with MeDiM's AdaLN and timestep MLP the Gemma slice has
    the 3.5B parameters of MeDiM's released checkpoint."""
    case = next(c for c in PRESETS["gpu-paper"].cases if c.name == case_name)
    experiment = _experiment(case)
    layout = experiment.layout
    assert layout.vocab_size == vocab and 1280 <= layout.seq_len <= 1300
    assert case.shape.num_layers == 10 and case.sampler_steps == 128

    def count(**switches) -> int:
        with empty_weights():
            backbone = BACKBONES.build(
                case.shape.backbone_spec(**switches),
                vocab_size=layout.vocab_size,
                max_seq_len=layout.seq_len,
                layout=layout,
            )
        return sum(p.numel() for p in backbone.parameters())

    assert parameters[0] < count(timestep_embedding=False, adaln=False) < parameters[1]
    if case_name == "gemma7b_10l_medim_paper":
        assert 3.4e9 < count() < 3.55e9


@pytest.mark.parametrize("recipe", ["released", "tuned"])
def test_the_plain_references_compute_medims_loss_on_the_same_weights(tiny_layout, tiny_corpus, recipe: str) -> None:
    """Without AdaLN and the timestep input (which stock transformers lack), a plain model holding the same weights
    gives medim's loss: the references do the same work, only differently (and the materialised mask of the
    released recipe is bidirectional)."""
    task = build_task("joint", tiny_layout, cond_dropout=0.0)
    switches = {"timestep_embedding": False, "adaln": False}
    backbone = tiny_backbone(tiny_layout, **switches)
    spec = {"name": "hf_decoder", "hidden_size": 32, "num_layers": 2, "num_heads": 2, **switches}
    plain = PlainModel.build(spec, tiny_layout, recipe, torch.float32, torch.device("cpu"))
    plain.model.load_state_dict(backbone.model.state_dict())
    plain.model.eval()
    x0 = tiny_layout.pack(
        tiny_layout.image_tokenizer.encode(tiny_corpus.images[:4]), tiny_layout.pack_text(tiny_corpus.texts[:4]).ids
    )
    batch = task.training_batch(x0, torch.Generator().manual_seed(1))
    weight = task.objective.weight(batch.times.clamp(min=1e-6))
    reference = subs_loss(plain.logits(batch.xt, tiny_layout.attention_mask(batch.xt)), tiny_layout, batch, weight)
    torch.testing.assert_close(reference, task.loss(backbone.eval(), batch).loss, rtol=1e-5, atol=1e-6)


def test_an_unknown_preset_or_case_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="cpu, gpu-paper"):
        preset("laptop")
    with pytest.raises(ConfigError, match="quickstart_layout"):
        run_bench("train", PRESETS["cpu"], cases=["nope"], progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="needs a CUDA GPU"):
            run_bench("train", PRESETS["gpu-paper"], progress=False)


def test_a_tiny_case_runs_every_arm_into_json_tables_and_a_plot(tmp_path: Path) -> None:
    tiny = BenchPreset(
        name="tiny",
        device="cpu",
        fast_dtype="float32",
        release_autocast="none",
        cases=(
            BenchCase(
                name="tiny_paper_layout",
                experiment="paper/medim",
                overrides=("objective.prompt_probability=0", "layout.max_text_tokens=8"),
                shape=ModelShape(architecture="llama", hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64),
                global_batch=2,
                micro_batch=1,
                timed_steps=1,
                rounds=1,
                generate_batch=1,
                sampler_steps=2,
                samplers=("medim", "ancestral"),
            ),
        ),
    )
    result = run_bench("all", tiny, progress=False)
    case = result["cases"]["tiny_paper_layout"]
    train = case["train"]
    arms = train["arms"]
    assert set(arms) == {"medim", "medim_no_recompute", "medim_adaln", "released", "tuned"}
    for row in arms.values():
        assert row["tokens_per_s"] > 0 and row["peak_memory_gib"] > 0 and row["model_flop_utilisation"] is None
        assert torch.isfinite(torch.tensor(row["last_loss"]))
    assert train["ratios"]["medim_tokens_per_s_vs_released"] == pytest.approx(
        arms["medim"]["tokens_per_s"] / arms["released"]["tokens_per_s"]
    )
    # medim recomputes as few layers as keep it within the tuned reference's memory (all of them if none does)
    assert 0 <= train["medim_recomputed_layers"] <= 1
    assert arms["medim"]["peak_memory_gib"] <= arms["tuned"]["peak_memory_gib"] or train["medim_recomputed_layers"] == 1
    sample = case["sample"]
    assert set(sample["arms"]) == {"medim:medim", "medim:ancestral", "released", "autoregressive"}
    for row in sample["arms"].values():
        assert all(row[f"{name}_per_s"] > 0 for name, _, _ in DIRECTIONS)
    written = write_report(result, tmp_path)
    assert json.loads((tmp_path / "bench.json").read_text())["machine"]["torch_threads"] >= 1
    tables = (tmp_path / "bench.md").read_text()
    assert "| released |" in tables and "| autoregressive |" in tables and "tokens_per_s_vs_tuned" in tables
    assert (tmp_path / "bench.png" in written) == _has_matplotlib()


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True
