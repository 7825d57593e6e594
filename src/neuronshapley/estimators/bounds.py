"""Confidence half-widths for running means of marginal contributions."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from neuronshapley.estimators.params import TypePolicy


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


# ------------------------------------------------------------------ bounds as policies
class Bound(TypePolicy):
    """A confidence bound policy for the top-k bandit: per-player intervals from samples.

    :meth:`halfwidths` gives half-widths (n, d) from the running statistics, the observed
    range of the marginals and the per-player failure probability. A bound that keeps its
    own sequence (betting) overrides :attr:`sequential` and the bandit feeds it every sample.
    A new bound is one subclass.
    """

    name = "bound"
    sequential = False  # True: the bandit keeps a BettingIntervals for the primary output
    anytime = False  # True: valid at every round at once (stopping early keeps it)
    local_range = False  # True: each player's own observed range instead of the widest

    def halfwidths(self, var: np.ndarray, count: np.ndarray, value_range: float | np.ndarray,
                   delta: float) -> np.ndarray:
        raise NotImplementedError


class Bernstein(Bound):
    """Empirical Bernstein (Maurer-Pontil) with the widest observed range; fixed-t valid."""

    name = "bernstein"

    def halfwidths(self, var: np.ndarray, count: np.ndarray, value_range: float | np.ndarray,
                   delta: float) -> np.ndarray:
        return bernstein_halfwidth(var, count, value_range, delta)


class BernsteinLocal(Bernstein):
    """Empirical Bernstein with each unit's own observed range (pair with min_samples>=30)."""

    name = "bernstein-local"
    local_range = True


class Betting(Bernstein):
    """Anytime-valid confidence sequences by betting (:mod:`.betting`) for the ranked output;
    the other outputs of a vector game get Bernstein intervals."""

    name = "betting"
    sequential = True
    anytime = True


class Normal(Bound):
    """Normal approximation with a union bound: faster, can under-cover on rare large
    marginals."""

    name = "normal"

    def halfwidths(self, var: np.ndarray, count: np.ndarray, value_range: float | np.ndarray,
                   delta: float) -> np.ndarray:
        return union_normal_halfwidth(var, count, delta)


BOUNDS: dict[str, type[Bound]] = {"betting": Betting, "bernstein": Bernstein,
                                  "bernstein-local": BernsteinLocal, "normal": Normal}


def make_bound(bound: str | Bound) -> Bound:
    """A :class:`Bound` from its name or itself."""
    if isinstance(bound, Bound):
        return bound
    if bound not in BOUNDS:
        raise ValueError(f"bound must be one of {tuple(BOUNDS)}, got {bound!r}")
    return BOUNDS[bound]()
