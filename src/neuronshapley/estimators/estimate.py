"""``estimate(game, method=..., **options)``: the one-line facade over the estimator classes.

Each method name maps to a registered class (:mod:`.registry`); flat options (``truncation_fill``,
``bound="normal"``, ``max_evaluations`` ...) are translated into its parameters and
policies, and an option the method does not take is an error that names what it takes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from neuronshapley.errors import OptionError
from neuronshapley.estimators.registry import (
    REGISTRY,
    RUN_OPTIONS,
    accepts,
    lookup,
    make_estimator,
    method_options,
)
from neuronshapley.result import ShapleyResult

#: the built-in methods (registered when the package loads its modules)
METHODS = ("exact", "permutation", "truncated", "tmab", "auto")


def estimate(
    game: Callable[[np.ndarray], np.ndarray],
    n_players: int | None = None,
    method: str = "tmab",
    seed: int | None = 0,
    **options: Any,
) -> ShapleyResult:
    """Estimate the Shapley value of every player of ``game``.

    Args:
        game: callable from a bool mask matrix (M, n_players) to values (M,) or (M, d).
        n_players: number of players; defaults to ``game.n_players``.
        method: ``"auto"`` (chosen from the options and a one-walk pilot;
            ``result.info["auto"]`` says what and why), ``"exact"`` (enumeration,
            n <= 22), ``"permutation"`` (plain Monte-Carlo), ``"truncated"`` (Monte-Carlo
            with early truncation) or ``"tmab"`` (the paper's truncated multi-armed bandit
            for the top-k).
        seed: seed of the random generator (same seed, same game: same result).
        **options: per method (``method_options(method)`` lists them):
            permutation / truncated: ``max_evaluations`` (default 100 walks' worth; every
            evaluation counts and the budget is never overshot), ``n_permutations``,
            ``max_time`` (s), ``confidence`` (0.95; per-player normal intervals), ``chunk``
            (coalitions per game call), ``strata`` (1: position-stratified blocks of walks),
            ``permutations`` (``"random"``, or ``"sobol"``: walks along a scrambled Sobol
            sequence, each walk still uniform), ``control`` (None or ``"surrogate"``: a
            fitted control variate, scalar games).
            truncated and tmab: ``truncation_tolerance`` (0.05 of ``|V(N) - V(empty)|``),
            ``truncation_patience`` (3), ``truncation_fill`` ("zero", "share" or the
            unbiased "roulette") and ``truncation_keep`` (0.1).
            tmab: ``k`` (min(10, n)), ``delta`` (0.05), ``epsilon`` (0.005 *
            |V(N) - V(empty)|), ``value_range``, ``max_evaluations`` (2000 * n),
            ``max_time``, ``min_samples`` (3), ``output`` (0), ``truncation`` (False: none),
            ``sampling`` ("auto", "walk", "direct", "shared"), ``rule`` ("separation",
            "paper"), ``adaptive`` (True), ``bound`` ("betting", "bernstein",
            "bernstein-local", "normal"), ``strata``.
            every sampling method: ``progress`` (True: a bar; or a callable),
            ``checkpoint`` (a folder, saved every ``checkpoint_every`` seconds (30) and at
            exit), ``resume`` (continue it: same game, method, seed and parameters; a game
            without ``fingerprint()`` only with ``trust_unfingerprinted=True``).
            Ctrl-C raises :class:`EstimationInterrupted` carrying the partial result.
    Returns:
        a :class:`ShapleyResult`.
    """
    lookup(method)
    run = {k: options.pop(k) for k in RUN_OPTIONS if k in options}
    estimator = make_estimator(method, seed, **options)
    if not estimator.sampling and run:
        raise OptionError(f"method {method!r} takes no option(s) {sorted(run)}; it takes "
                          f"{method_options(method)}")
    return estimator.fit(game, n_players, **run)


__all__ = ["METHODS", "REGISTRY", "RUN_OPTIONS", "accepts", "estimate", "make_estimator",
           "method_options"]
