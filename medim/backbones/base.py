"""The denoiser contract every backbone (built-in or plugin) implements.

`forward(tokens [B, L], noise_level [B], padding_mask [B, L] | None) -> hidden [B, L, D]`
and `logits(hidden, positions, vocab_range)`, so a task asks for logits only at
the positions it scores and only over the vocabulary slice it needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import ClassVar

from accelerate import init_empty_weights
from torch import Tensor, nn

_EMPTY_WEIGHTS: ContextVar[bool] = ContextVar("medim_empty_weights", default=False)


@contextmanager
def empty_weights() -> Iterator[None]:
    """Build backbones with parameters on the meta device and nothing read from checkpoints.

    For dry runs (shapes and parameter counts at real size, instantly) and for
    loading a complete state dict afterwards with `load_state_dict(assign=True)`.
    Buffers (e.g. rotary frequencies) are still computed for real.
    """
    token = _EMPTY_WEIGHTS.set(True)
    try:
        with init_empty_weights(include_buffers=False):
            yield
    finally:
        _EMPTY_WEIGHTS.reset(token)


def building_empty_weights() -> bool:
    """True inside `empty_weights()`: checkpoint-loading backbones must not read their files."""
    return _EMPTY_WEIGHTS.get()


class Backbone(nn.Module):
    """Base class of denoisers; subclasses set `hidden_size` and implement `forward`/`output_weight`.

    A registered backbone is constructed as `cls(params, vocab_size=V, max_seq_len=L, layout=layout)`:
    V embedding rows and sequences of at most L tokens, laid out by `layout` (a
    `medim.tokenizers.layouts.SequenceLayout`, which says where image and report
    positions are, for backbones that treat them differently).
    """

    hidden_size: int
    vocab_size: int
    #: True when `forward` also takes one noise level per position, noise_level [B, L]
    #: (needed by objectives that noise image and report at their own times).
    accepts_token_levels: ClassVar[bool] = False
    #: True when `forward` also takes `cache=` (a transformers `Cache`): the tokens then continue the cached
    #: ones, at the positions after them (autoregressive decoding with a KV cache).
    supports_kv_cache: ClassVar[bool] = False

    @property
    def is_causal(self) -> bool:
        """True when each position attends only to itself and earlier ones (what next-token objectives need)."""
        return False

    def forward(self, tokens: Tensor, noise_level: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """Final (normalised) hidden states [B, L, D].

        noise_level [B] is the schedule's continuous time input (sigma(t) for MeDiM), or
        [B, L] per position for a backbone that `accepts_token_levels`;
        padding_mask [B, L] is True where a position may be attended to.
        """
        raise NotImplementedError

    def output_weight(self) -> Tensor:
        """[V, D] matrix mapping hidden states to token logits (the tied embedding or a head)."""
        raise NotImplementedError

    def logits(
        self, hidden: Tensor, positions: Tensor | None = None, vocab_range: tuple[int, int] | None = None
    ) -> Tensor:
        """Logits [B, P, V'] at `positions` ([P] shared or [B, P] per sample) over ids [lo, hi)."""
        if positions is not None:
            if positions.ndim == 1:
                hidden = hidden[:, positions]
            else:
                hidden = hidden.gather(1, positions[..., None].expand(-1, -1, hidden.shape[-1]))
        weight = self.output_weight()
        if vocab_range is not None:
            weight = weight[vocab_range[0] : vocab_range[1]]
        return hidden @ weight.T.to(hidden.dtype)
