"""Confidence half-widths for running means of marginal contributions."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np


def normal_halfwidth(var: np.ndarray, count: np.ndarray, confidence: float) -> np.ndarray:
    """Two-sided normal-approximation half-width at ``confidence`` (per player, not joint).

    ``var`` (n, d) sample variances, ``count`` (n,); infinite where fewer than two samples.
    """
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    c = count[:, None].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        hw = z * np.sqrt(var / c)
    return np.where(c > 1, hw, np.inf)


def bernstein_halfwidth(
    var: np.ndarray, count: np.ndarray, value_range: float | np.ndarray, delta: float
) -> np.ndarray:
    """Empirical-Bernstein half-width (Maurer & Pontil 2009) holding with prob. >= 1 - delta.

    ``|mean - mu| <= sqrt(2 var log(2/delta) / t) + 7 R log(2/delta) / (3 (t - 1))`` for
    ``t`` i.i.d. samples in an interval of length ``R``; infinite where ``t < 2``.
    """
    log_term = np.log(2.0 / delta)
    t = count[:, None].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        hw = np.sqrt(2.0 * var * log_term / t) + 7.0 * value_range * log_term / (3.0 * (t - 1.0))
    return np.where(t > 1, hw, np.inf)


def union_normal_halfwidth(var: np.ndarray, count: np.ndarray, delta: float) -> np.ndarray:
    """Normal-approximation half-width at two-sided level ``delta`` (for one player).

    Callers pass ``delta / n`` for a union bound. Tighter than empirical Bernstein (no range
    term) but only asymptotically valid: pair it with enough samples per player.
    """
    return normal_halfwidth(var, count, 1.0 - delta)
