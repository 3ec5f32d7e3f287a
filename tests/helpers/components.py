"""Tiny built components for unit tests: a task over a layout and a seeded backbone."""

from __future__ import annotations

import torch

from medim.backbones.base import Backbone
from medim.registry import BACKBONES, NOISE, OBJECTIVES, TASKS
from medim.tasks.base import MaskedDiffusionTask
from medim.tokenizers.layouts import SequenceLayout


def build_task(
    name: str, layout: SequenceLayout, *, noise: dict | None = None, objective: dict | None = None, **params
) -> MaskedDiffusionTask:
    """Task `name` over `layout`, trained with `objective` (default elbo) on schedule `noise` (default loglinear)."""
    schedule = NOISE.build(noise or {"name": "loglinear"})
    built = OBJECTIVES.build(objective or {"name": "elbo"}, layout=layout, noise=schedule)
    return TASKS.build({"name": name, **params}, layout=layout, objective=built)


def tiny_backbone(layout: SequenceLayout, **overrides) -> Backbone:
    """A 2-layer, 32-wide hf_decoder sized for `layout` (seeded)."""
    torch.manual_seed(0)
    spec = {"name": "hf_decoder", "hidden_size": 32, "num_layers": 2, "num_heads": 2, **overrides}
    return BACKBONES.build(spec, vocab_size=layout.vocab_size, max_seq_len=layout.seq_len, layout=layout)
