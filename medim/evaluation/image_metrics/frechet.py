"""The Fréchet distance between two feature sets: pytorch-fid's for the reported value, a fast twin for resamples.

Notation: X1 [n1, d] generated features, X2 [n2, d] reference features; mu_i their means, S_i their
covariances (`np.cov`, divided by n_i - 1). FID = |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2).

`frechet_distance` is pytorch-fid's computation itself (its statistics, then its
`calculate_frechet_distance`: scipy's sqrtm, the eps-on-the-diagonal retry when the product is
singular, the imaginary-part check). On 2048-d features that sqrtm takes about a minute on two CPU
cores, far too slow for a thousand bootstrap resamples, so `FrechetResampler` computes the same
quantity another way: with factors F_i such that F_i^T F_i = S_i, the eigenvalues of S1 S2 are the
squared singular values of F1 F2^T, so tr sqrt(S1 S2) is the sum of those singular values. It agrees
with pytorch-fid to rounding when S1 S2 is well conditioned, and is the more accurate of the two when
it is not (fewer images than dimensions, where S1 S2 is singular).
"""

from __future__ import annotations

import sys
from contextlib import redirect_stdout

import numpy as np

from medim.evaluation.image_metrics.weights import import_optional


def _statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pytorch-fid's `calculate_activation_statistics` on features it would hold (float64)."""
    activations = features.astype(np.float64)
    return np.mean(activations, axis=0), np.cov(activations, rowvar=False)


def _check_sets(generated: np.ndarray, reference: np.ndarray) -> None:
    for what, features in (("generated", generated), ("reference", reference)):
        if features.ndim != 2 or len(features) < 2:
            raise ValueError(f"FID needs at least 2 {what} images' features [n, d], got shape {list(features.shape)}")
    if generated.shape[1] != reference.shape[1]:
        raise ValueError(f"FID compares features of one size, got {generated.shape[1]} and {reference.shape[1]}")


def frechet_distance(generated: np.ndarray, reference: np.ndarray) -> float:
    """FID between features [n1, d] and [n2, d], computed by pytorch-fid's own code."""
    _check_sets(generated, reference)
    fid_score = import_optional("pytorch_fid.fid_score", "pytorch-fid")
    mu1, sigma1 = _statistics(generated)
    mu2, sigma2 = _statistics(reference)
    with redirect_stdout(sys.stderr):  # its note on a singular product is a diagnostic, not output
        return float(fid_score.calculate_frechet_distance(mu1, sigma1, mu2, sigma2))


def _covariance_factor(features: np.ndarray) -> np.ndarray:
    """F [d, d] with F^T F equal to np.cov(features, rowvar=False) (S^(1/2), from an eigendecomposition)."""
    centred = features - features.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / (len(features) - 1))
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))).T


def _centred(gram: np.ndarray) -> np.ndarray:
    """H G H for the centring matrix H = I - 11^T / n: the Gram matrix of the centred rows."""
    return gram - gram.mean(axis=0) - gram.mean(axis=1, keepdims=True) + gram.mean()


class FrechetResampler:
    """FID of resampled items (paired: one row of indices picks from both sets), fast enough for a bootstrap.

    With n <= d (the usual case: a few hundred test images, 2048-d features) everything is read from
    the Gram matrices G11 = X1 X1^T, G22, G12 = X1 X2^T computed once: a resample only indexes them and
    takes one n x n SVD (tr sqrt(S1 S2) = sum of singular values of H G12 H / (n - 1)). With n > d it
    takes the d x d route per resample (S^(1/2) factors), which costs seconds each at d = 2048.
    """

    def __init__(self, generated: np.ndarray, reference: np.ndarray) -> None:
        _check_sets(generated, reference)
        if len(generated) != len(reference):
            raise ValueError(f"resampling pairs items: got {len(generated)} generated and {len(reference)} reference")
        self._generated, self._reference = generated.astype(np.float64), reference.astype(np.float64)
        n, d = self._generated.shape
        self._by_gram = n <= d
        if self._by_gram:
            self._g11 = self._generated @ self._generated.T
            self._g22 = self._reference @ self._reference.T
            self._g12 = self._generated @ self._reference.T

    def _from_gram(self, row: np.ndarray) -> float:
        n = len(row)
        pick = np.ix_(row, row)
        g11, g22, g12 = self._g11[pick], self._g22[pick], self._g12[pick]
        mean_term = (g11.sum() + g22.sum() - 2.0 * g12.sum()) / n**2  # |mu1 - mu2|^2
        trace1 = (np.trace(g11) - g11.sum() / n) / (n - 1)  # tr S1
        trace2 = (np.trace(g22) - g22.sum() / n) / (n - 1)
        tr_covmean = np.linalg.svd(_centred(g12), compute_uv=False).sum() / (n - 1)
        return float(mean_term + trace1 + trace2 - 2.0 * tr_covmean)

    def _from_features(self, row: np.ndarray) -> float:
        generated, reference = self._generated[row], self._reference[row]
        factor1, factor2 = _covariance_factor(generated), _covariance_factor(reference)
        diff = generated.mean(axis=0) - reference.mean(axis=0)
        tr_covmean = np.linalg.svd(factor1 @ factor2.T, compute_uv=False).sum()
        return float(diff @ diff + np.sum(factor1 * factor1) + np.sum(factor2 * factor2) - 2.0 * tr_covmean)

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        """rows [R, n] item indices -> FID of each resample [R]."""
        one = self._from_gram if self._by_gram else self._from_features
        return np.array([one(np.asarray(row)) for row in rows])
