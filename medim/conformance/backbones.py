"""Backbone checks (`medim.backbones.base.Backbone`): shapes, logits, gradients, determinism, padding, noise levels.

The backbone is built for the tiny environment's layout and fed two of its sequences, some positions
masked, at noise levels sigma(t) for t = 0.3 and 0.8. Shape failures use the wording of the check
every experiment runs at build time (`medim.backbones.contract`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from medim.backbones.base import Backbone
from medim.backbones.contract import hidden_size_problem, hidden_states_problem, output_weight_problem
from medim.conformance.checks import Check, Once, Subject, reject, require, shape
from medim.conformance.environment import SEED
from medim.registry import ComponentParams

#: Positions hidden by the padding mask at the end of the first sequence.
PADDED = 3


class BackboneSubject(Subject):
    """A backbone built for the environment's layout, with the inputs every check feeds it."""

    noun = "backbone"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._hidden = Once("a forward pass", self._forward)

    def construct(self, params: ComponentParams) -> Backbone:
        torch.manual_seed(SEED)
        layout = self.env.layout
        return self.entry.cls(params, vocab_size=layout.vocab_size, max_seq_len=layout.seq_len, layout=layout)

    def inputs(self) -> tuple[Tensor, Tensor]:
        """(tokens [2, L]: two sequences with every third generated position masked, noise levels [2])."""
        layout = self.env.layout
        tokens = self.env.sequences(2)
        masked = (layout.position_modality >= 0) & (torch.arange(layout.seq_len) % 3 == 0)
        tokens[:, masked] = layout.mask_id
        return tokens, self.env.noise.sigma(torch.tensor([0.3, 0.8]))

    def padding_mask(self) -> Tensor:
        """[2, L] True everywhere but the last PADDED positions of the first sequence."""
        mask = torch.ones(2, self.env.layout.seq_len, dtype=torch.bool)
        mask[0, -PADDED:] = False
        return mask

    @property
    def hidden(self) -> Tensor:
        """Hidden states of the inputs (eval mode, no gradient)."""
        return self._hidden.get()

    def _forward(self) -> Tensor:
        backbone = self.component.eval()
        with torch.no_grad():
            return backbone(*self.inputs())


def _builds(subject: BackboneSubject) -> str:
    backbone = subject.component
    require(isinstance(backbone, Backbone), f"{subject.label}: must be a medim.backbones.base.Backbone (an nn.Module)")
    reject(hidden_size_problem(subject.entry.name, backbone))
    count = sum(p.numel() for p in backbone.parameters())
    return f"{count:,} parameters, hidden_size {backbone.hidden_size}"


def _forward_shape(subject: BackboneSubject) -> str:
    hidden, layout = subject.hidden, subject.env.layout
    got = tuple(hidden.shape) if isinstance(hidden, Tensor) else f"a {type(hidden).__name__}"
    reject(hidden_states_problem(subject.entry.name, got, 2, layout.seq_len, subject.component.hidden_size))
    require(
        bool(torch.isfinite(hidden).all()),
        f"{subject.label}: forward must return finite hidden states (Backbone.forward), got NaN or inf",
    )
    return f"hidden states {shape(hidden)}, finite"


def _output_weight(subject: BackboneSubject) -> str:
    weight = subject.component.output_weight()
    vocab_size, hidden_size = subject.env.layout.vocab_size, subject.component.hidden_size
    reject(output_weight_problem(subject.entry.name, tuple(weight.shape), vocab_size, hidden_size))
    return f"{shape(weight)} for {subject.env.layout.vocab_size} ids"


def _logits(subject: BackboneSubject) -> str:
    backbone, hidden, layout = subject.component, subject.hidden, subject.env.layout
    positions = layout.text_positions[:5]
    lo, hi = layout.image_offset, layout.image_offset + layout.image_tokenizer.codebook_size
    with torch.no_grad():
        full = backbone.logits(hidden)
        shared = backbone.logits(hidden, positions, (lo, hi))
        per_sample = backbone.logits(hidden, positions.expand(2, -1).flip(1), (lo, hi))
    rows = backbone.output_weight().shape[0]
    expected = {"all positions, all ids": ((2, layout.seq_len, rows), full)}
    expected["positions [P], ids [lo, hi)"] = ((2, len(positions), hi - lo), shared)
    expected["positions [B, P], ids [lo, hi)"] = ((2, len(positions), hi - lo), per_sample)
    for what, (wanted, got) in expected.items():
        require(
            tuple(got.shape) == wanted,
            f"{subject.label}: logits(hidden, positions, vocab_range) at {what} must be [B, P, V'] = "
            f"{list(wanted)} (Backbone.logits), got {shape(got)}",
        )
    selected = full[:, positions, lo:hi]
    for what, got in (("[P]", shared), ("[B, P]", per_sample.flip(1))):
        require(
            torch.allclose(got, selected, rtol=1e-4, atol=1e-5),
            f"{subject.label}: logits at positions {what} over ids [lo, hi) must equal the same entries of the "
            f"logits at every position over every id (Backbone.logits), got a largest difference of "
            f"{(got - selected).abs().max().item():.3g}",
        )
    return f"[B, P, V'] at shared and per-sample positions, consistent with all logits {shape(full)}"


def _gradients(subject: BackboneSubject) -> str:
    backbone = subject.build().train()
    tokens, levels = subject.inputs()
    hidden = backbone(tokens, levels, subject.padding_mask())
    backbone.logits(hidden).float().logsumexp(-1).mean().backward()
    trained = [(name, p) for name, p in backbone.named_parameters() if p.requires_grad]
    missing = [name for name, p in trained if p.grad is None]
    require(
        not missing,
        f"{subject.label}: backward must reach every trainable parameter (each one takes part in forward or "
        f"output_weight; Backbone), got no gradient for {len(missing)} of {len(trained)}: {_listing(missing)}",
    )
    broken = [name for name, p in trained if not torch.isfinite(p.grad).all()]
    require(
        not broken,
        f"{subject.label}: backward must give finite gradients (Backbone.forward), "
        f"got NaN or inf in {_listing(broken)}",
    )
    return f"finite gradients for all {len(trained)} trainable parameters"


def _deterministic(subject: BackboneSubject) -> str:
    again = subject.build().eval()
    with torch.no_grad():
        second = again(*subject.inputs())
    first = subject.hidden
    same = second.shape == first.shape and torch.equal(second, first)
    difference = (second - first).abs().max().item() if second.shape == first.shape else float("nan")
    require(
        same,
        f"{subject.label}: two builds after torch.manual_seed({SEED}) must give the same hidden states "
        f"(initialisation drawn from torch's global generator; Backbone), got a largest difference of {difference:.3g}",
    )
    return "two builds after the same seed give identical hidden states"


def _padding(subject: BackboneSubject) -> str:
    backbone = subject.component.eval()
    tokens, levels = subject.inputs()
    changed = tokens.clone()
    changed[0, -PADDED:] = (tokens[0, -PADDED:] + 1) % subject.env.layout.vocab_size
    mask = subject.padding_mask()
    with torch.no_grad():
        before, after = backbone(tokens, levels, mask), backbone(changed, levels, mask)
    require(
        tuple(before.shape) == tuple(subject.hidden.shape) and bool(torch.isfinite(before).all()),
        f"{subject.label}: forward with a padding mask [B, L] must return finite hidden states "
        f"{shape(subject.hidden)} (Backbone.forward), got {shape(before)}",
    )
    visible = slice(0, subject.env.layout.seq_len - PADDED)
    difference = (before[0, visible] - after[0, visible]).abs().max().item()
    require(
        difference <= 1e-5,
        f"{subject.label}: positions the padding mask hides (False) must not be attended to (Backbone.forward), "
        f"but changing a hidden token changed the other positions' hidden states by up to {difference:.3g}",
    )
    return f"a [B, L] padding mask is taken and hides its {PADDED} padded positions"


def _token_levels(subject: BackboneSubject) -> str:
    backbone = subject.component.eval()
    tokens, levels = subject.inputs()
    with torch.no_grad():
        per_position = backbone(tokens, levels[:, None].expand_as(tokens).contiguous())
    require(
        per_position.shape == subject.hidden.shape,
        f"{subject.label}: declares accepts_token_levels, so forward must take noise levels [B, L] and return "
        f"{shape(subject.hidden)} (Backbone.accepts_token_levels), got {shape(per_position)}",
    )
    difference = (per_position - subject.hidden).abs().max().item()
    require(
        difference <= 1e-4,
        f"{subject.label}: noise levels [B, L] equal along each row must give the hidden states of levels [B] "
        f"(Backbone.accepts_token_levels), got a largest difference of {difference:.3g}",
    )
    return "noise levels [B, L] work and agree with [B]"


def _declares_token_levels(subject: BackboneSubject) -> bool:
    return bool(getattr(subject.entry.cls, "accepts_token_levels", False))


def _listing(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


SUBJECT = BackboneSubject
CHECKS: tuple[Check[BackboneSubject], ...] = (
    Check("builds", _builds),
    Check("forward returns hidden states [B, L, D]", _forward_shape),
    Check("output_weight is [V' >= V, D]", _output_weight),
    Check("logits at chosen positions", _logits),
    Check("gradients reach every parameter", _gradients),
    Check("same seed, same backbone", _deterministic),
    Check("padding mask", _padding),
    Check("per-position noise levels", _token_levels, _declares_token_levels),
)
