"""Fine-tuning a pretrained decoder named in YAML alone: a tiny Gemma checkpoint as `liquid`, cut to 2 of 3 layers."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import GemmaConfig, GemmaForCausalLM

from medim.cli import main
from medim.runs import load_run

EXPERIMENT = """
defaults: [{quickstart}]
name: tiny_liquid
data: {{num_train: 64, num_val: 16, num_test: 16}}
tokenizers:
  image: {{codebook_size: 32}}
  text: {{vocab_size: 160}}
backbone:
  name: liquid
  checkpoint: {checkpoint}
  num_layers: 2
  learned_positions: true
train:
  {{steps: 3, batch_size: 8, warmup_steps: 1, eval_every: 3, checkpoint_every: 3, val_batches: 1, max_minutes: null}}
"""


def test_a_checkpoint_backbone_trains_from_yaml_and_reloads(tmp_path: Path) -> None:
    config = GemmaConfig(
        vocab_size=170,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=16,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    pretrained = GemmaForCausalLM(config)
    pretrained.save_pretrained(tmp_path / "gemma", max_shard_size="20KB")
    quickstart = Path(__file__).resolve().parents[2] / "experiments" / "quickstart.yaml"
    yaml_path = tmp_path / "tiny_liquid.yaml"
    yaml_path.write_text(EXPERIMENT.format(quickstart=quickstart, checkpoint=tmp_path / "gemma"))
    assert main(["train", str(yaml_path), f"output_dir={tmp_path / 'runs'}", "--quiet"]) == 0
    run = tmp_path / "runs" / "tiny_liquid"
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert any("loss" in row for row in log)
    experiment, backbone = load_run(run)
    assert len(backbone.model.layers) == 2
    # the pretrained text rows moved only by 3 small optimizer steps; new rows exist beyond the checkpoint's 170
    rows = backbone.output_weight().detach()
    assert rows.shape[0] == experiment.layout.vocab_size > 170
    text = experiment.text_tokenizer.vocab_size
    drift = (rows[:text] - pretrained.model.embed_tokens.weight[:text]).abs().max()
    assert drift < 0.05
