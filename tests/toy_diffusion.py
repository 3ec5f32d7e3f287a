"""A toy problem with a known answer for the generation loop: a 4-token layout and exact denoisers.

Layout: position 0 is a report token c in {0, 1} (ids 0..1), positions 1..3 are
image codes in {0, 1, 2} (ids 2..4); the mask id is 5. A distribution is a table
over all 2 x 27 sequences; its exact SUBS denoiser returns, for each position,
log p(x0_i = v | the revealed tokens), computed by enumeration. That denoiser
does not depend on t, as the true absorbing-state posterior does not.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from medim.backbones.base import Backbone
from medim.tokenizers.layouts import IMAGE, TEXT, SequenceLayout

TEXT_VALUES, IMAGE_VALUES, IMAGE_LENGTH = 2, 3, 3
MASK = TEXT_VALUES + IMAGE_VALUES
VOCAB = MASK + 1
#: Every sequence as layout ids [54, 4]: c, then the three image codes shifted by the image offset.
STATES = torch.tensor(
    [
        [c, *(TEXT_VALUES + x for x in xs)]
        for c in range(TEXT_VALUES)
        for xs in itertools.product(range(IMAGE_VALUES), repeat=IMAGE_LENGTH)
    ]
)
IMAGE_TARGETS = torch.arange(1, 1 + IMAGE_LENGTH)
ALL_TARGETS = torch.arange(0, 1 + IMAGE_LENGTH)


class ToyLayout(SequenceLayout):
    """`c x1 x2 x3` with separate report and image vocabularies."""

    def __init__(self) -> None:
        self.seq_len = 1 + IMAGE_LENGTH
        self.mask_id = MASK
        self.vocab_size = VOCAB
        self.image_offset = TEXT_VALUES
        self.text_positions = torch.tensor([0])
        self.image_positions = IMAGE_TARGETS.clone()
        self.position_modality = torch.tensor([TEXT] + [IMAGE] * IMAGE_LENGTH)
        self.vocab_masks = torch.zeros(2, VOCAB, dtype=torch.bool)
        self.vocab_masks[TEXT, :TEXT_VALUES] = True
        self.vocab_masks[IMAGE, TEXT_VALUES:MASK] = True


PRIOR = torch.tensor([0.4, 0.6], dtype=torch.float64)
#: p(x_i | c) for the conditionally independent table, [c, i, value].
MARGINALS = torch.tensor(
    [[[0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.34, 0.33, 0.33]], [[0.1, 0.1, 0.8], [0.5, 0.4, 0.1], [0.7, 0.2, 0.1]]],
    dtype=torch.float64,
)


def product_table() -> Tensor:
    """p(c, x) = pi(c) prod_i p(x_i | c): image codes independent given the report token."""
    c, x = STATES[:, 0], STATES[:, 1:] - TEXT_VALUES
    probs = PRIOR[c] * torch.stack([MARGINALS[c, i, x[:, i]] for i in range(IMAGE_LENGTH)]).prod(0)
    return probs / probs.sum()


def markov_table() -> Tensor:
    """p(c, x): x1 | c, then x_{j+1} | x_j by a sticky chain; dependent given c."""
    first = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]], dtype=torch.float64)
    transition = torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]], dtype=torch.float64)
    c, x = STATES[:, 0], STATES[:, 1:] - TEXT_VALUES
    probs = PRIOR[c] * first[c, x[:, 0]] * transition[x[:, 0], x[:, 1]] * transition[x[:, 1], x[:, 2]]
    return probs / probs.sum()


def conditional(table: Tensor, c: int) -> Tensor:
    """The table restricted to report token c and renormalised."""
    kept = torch.where(STATES[:, 0] == c, table, torch.zeros_like(table))
    return kept / kept.sum()


class ExactDenoiser(Backbone):
    """The exact posterior of `table` as logits; counts calls and rows. Hidden states are the logits."""

    def __init__(self, table: Tensor, record: bool = False) -> None:
        super().__init__()
        self.table = table
        self.hidden_size = self.vocab_size = VOCAB
        self.anchor = nn.Parameter(torch.zeros(1))  # a parameter, so callers can ask for the device
        self.calls, self.rows = 0, 0
        self.record = record
        self.inputs: list[tuple[Tensor, Tensor]] = []  # (tokens, noise level) of each call, when recording

    def forward(self, tokens: Tensor, noise_level: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        self.calls += 1
        self.rows += tokens.shape[0]
        if self.record:
            self.inputs.append((tokens.clone(), noise_level.clone()))
        consistent = ((STATES[None] == tokens[:, None]) | (tokens[:, None] == MASK)).all(-1)
        weights = self.table[None] * consistent  # [B, 54]
        one_hot = torch.nn.functional.one_hot(STATES, VOCAB).double()  # [54, L, V]
        probs = torch.einsum("bs,slv->blv", weights, one_hot)
        return (probs / probs.sum(-1, keepdim=True)).log()

    def output_weight(self) -> Tensor:
        return torch.eye(VOCAB)

    def logits(
        self, hidden: Tensor, positions: Tensor | None = None, vocab_range: tuple[int, int] | None = None
    ) -> Tensor:
        logits = hidden if positions is None else hidden[:, positions]
        return logits if vocab_range is None else logits[..., vocab_range[0] : vocab_range[1]]


def histogram(samples: Tensor) -> Tensor:
    """Empirical distribution [54] over STATES of sequences [N, 4]."""
    index = ((samples[:, None] == STATES[None]).all(-1)).float().argmax(-1)
    assert ((samples[:, None] == STATES[None]).all(-1)).any(-1).all(), "a sample is not a valid sequence"
    return torch.bincount(index, minlength=len(STATES)).double() / len(samples)


def total_variation(samples: Tensor, target: Tensor) -> float:
    """TV distance between the empirical distribution of `samples` and `target` [54]."""
    return 0.5 * (histogram(samples) - target).abs().sum().item()


def start(n: int, c: int | None) -> Tensor:
    """n toy sequences, all masked, with report token c given (None: masked too)."""
    x = torch.full((n, 1 + IMAGE_LENGTH), MASK)
    if c is not None:
        x[:, 0] = c
    return x
