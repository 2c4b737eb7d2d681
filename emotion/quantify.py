"""Estimating a group's emotion mix from per-face probabilities ("quantification").

The estimators take P (n faces x 7 probabilities, or top-label indicators) and weights (n,) or, for
many bootstrap replicates at once, (b, n); they return the mix (7,) or (b, 7), fractions summing to 1.
Counting top labels carries the classifier's bias into the mix (it under-calls fear and sad and
over-calls happy); `unmix` and `em_prior_shift` undo it with what is known about the model.
"""
from __future__ import annotations

import numpy as np

ZERO_SHARE = 1e-3  # an EM share below this is 0: a tenth of a percent, below what the estimate resolves


def mean_shares(probabilities: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean of the probability vectors."""
    return weights @ probabilities / weights.sum(axis=-1, keepdims=True)


def project_to_simplex(v: np.ndarray) -> np.ndarray:
    """Closest point with non-negative entries summing to 1, per row (Duchi et al. 2008)."""
    v = np.atleast_2d(v)
    u = -np.sort(-v, axis=1)
    cumulative = np.cumsum(u, axis=1) - 1
    rho = (u - cumulative / np.arange(1, v.shape[1] + 1) > 0).sum(axis=1)
    theta = cumulative[np.arange(len(v)), rho - 1] / rho
    return np.maximum(v - theta[:, None], 0)


def unmix(observed: np.ndarray, confusion: np.ndarray, iterations: int = 500) -> np.ndarray:
    """Class mix p minimising |C^T p - observed|^2 on the simplex (projected gradient), for (7,) or (b, 7).

    C is the confusion matrix, row i = how faces of true emotion i get labelled."""
    c = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1e-12)
    step = 1.0 / max(np.linalg.norm(c, 2) ** 2, 1e-12)
    p = np.atleast_2d(observed)
    for _ in range(iterations):
        p = project_to_simplex(p - step * (p @ c - np.atleast_2d(observed)) @ c.T)
    return p.reshape(np.shape(observed))


def em_prior_shift(probabilities: np.ndarray, weights: np.ndarray, prior: np.ndarray, *,
                   start: np.ndarray | None = None, iterations: int = 1000, tolerance: float = 1e-6) -> np.ndarray:
    """Saerens, Latinne & Decaestecker (2002): the mix that maximises the likelihood of the faces.

    The calibrated posteriors were learnt under `prior`; re-weighting them by mix / prior and
    averaging gives the next mix, until it stops changing (from `start`, default the prior). Assumes
    only the mix differs from training (each emotion's faces look the same), as for a class as a whole.
    EM only approaches a share of 0 (an emotion nobody shows) in the limit: shares below ZERO_SHARE
    are set to 0."""
    single = np.ndim(weights) == 1
    weights = np.atleast_2d(weights)
    total = weights.sum(axis=1, keepdims=True)
    mix = np.tile(prior if start is None else start, (len(weights), 1))
    for _ in range(iterations):
        ratio = mix / prior
        # mean over faces of p(y|x) * ratio_y / sum_k p(k|x) * ratio_k, as two matrix products
        evidence = np.maximum(ratio @ probabilities.T, 1e-12)  # > 0 also for a face of emotions gone from the mix
        new = ratio * ((weights / evidence) @ probabilities) / total
        done = np.abs(new - mix).max() < tolerance
        mix = new
        if done:
            break
    mix = np.where(mix < ZERO_SHARE, 0.0, mix)
    mix /= mix.sum(axis=1, keepdims=True)
    return mix[0] if single else mix
