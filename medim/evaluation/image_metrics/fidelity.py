"""KID and the Inception Score as torch-fidelity computes them, from features extracted once.

Why torch-fidelity (and not torchmetrics): torchmetrics' KID and IS run torch-fidelity's Inception
too, but resize with antialiasing by default (torch-fidelity and the original TensorFlow code do not)
and draw KID's subsets from torch's global random state; torch-fidelity reproduces the original
implementations, seeds every draw (`rng_seed`, 2020 by default) and exposes the features -> metric
step, so features extracted once serve the value and every bootstrap resample.

KID: the unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over
`subsets` random subsets of `subset_size` items of each set (torch-fidelity's defaults 100 and 1000;
the size is capped at the smaller set, which torch-fidelity otherwise refuses). A resample's KID is
the same estimator on the resampled items, with the kernel matrices computed once and indexed. With
at most `subset_size` items every subset is the whole set (permuted), so this equals torch-fidelity
on the resampled features; with more it is the full-set estimate of what the subsets average.
IS: exp(E KL(p(y|x) || p(y))) of the softmax of the bias-free logits over `splits` splits of the
shuffled set (torch-fidelity's defaults: 10 splits, shuffled with seed 2020), mean and std over splits.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import torch

from medim.evaluation.image_metrics.weights import import_optional

#: torch-fidelity's seed for KID's subsets and the Inception Score's shuffle (its default).
SEED = 2020


def _metric_kid() -> ModuleType:
    return import_optional("torch_fidelity.metric_kid", "torch-fidelity")


def kernel_inception_distance(
    generated: np.ndarray, reference: np.ndarray, *, subsets: int, subset_size: int
) -> tuple[float, float]:
    """(mean, std) of KID over subsets, as torch-fidelity's `kid_features_to_metric` reports them."""
    metric_kid = _metric_kid()
    out = metric_kid.kid_features_to_metric(
        torch.from_numpy(generated),
        torch.from_numpy(reference),
        kid_subsets=subsets,
        kid_subset_size=min(subset_size, len(generated), len(reference)),
        rng_seed=SEED,
        verbose=False,
    )
    return out[metric_kid.KEY_METRIC_KID_MEAN], out[metric_kid.KEY_METRIC_KID_STD]


class KidResampler:
    """KID (torch-fidelity's unbiased MMD^2 and polynomial kernel) of resampled items, kernels computed once."""

    def __init__(self, generated: np.ndarray, reference: np.ndarray) -> None:
        if len(generated) != len(reference):
            raise ValueError(f"resampling pairs items: got {len(generated)} generated and {len(reference)} reference")
        self._mmd2 = _metric_kid().mmd2
        kernel = _metric_kid().kernel_poly
        self._k_gg = kernel(generated, generated)
        self._k_gr = kernel(generated, reference)
        self._k_rr = kernel(reference, reference)

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        """rows [R, n] item indices -> KID of each resample [R]."""
        values = []
        for row in rows:
            pick = np.ix_(row, row)
            values.append(self._mmd2(self._k_gg[pick], self._k_gr[pick], self._k_rr[pick]))
        return np.array(values, dtype=np.float64)


def inception_score(logits: np.ndarray, *, splits: int) -> tuple[float, float]:
    """(mean, std) of the Inception Score over splits, as torch-fidelity's `isc_features_to_metric` reports them."""
    if len(logits) < splits:
        raise ValueError(f"the Inception Score splits the images into {splits} parts, but there are only {len(logits)}")
    metric_isc = import_optional("torch_fidelity.metric_isc", "torch-fidelity")
    out = metric_isc.isc_features_to_metric(torch.from_numpy(logits), splits, True, SEED)
    return out[metric_isc.KEY_METRIC_ISC_MEAN], out[metric_isc.KEY_METRIC_ISC_STD]


def inception_scores(logits: np.ndarray, rows: np.ndarray, *, splits: int) -> np.ndarray:
    """The Inception Score of each resample: rows [R, n] item indices -> [R]."""
    return np.array([inception_score(logits[row], splits=splits)[0] for row in rows])
