"""``estimate(game, method=..., **options)``: the one-line facade over the estimator classes.

Each method name maps to a class (:data:`REGISTRY`); flat options (``truncation_fill``,
``bound="normal"``, ``max_evaluations`` ...) are translated into its parameters and
policies, and an option the method does not take is an error that names what it takes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from neuronshapley.errors import InputError, OptionError
from neuronshapley.estimators.auto import Auto
from neuronshapley.estimators.base import Estimator
from neuronshapley.estimators.exact import Exact
from neuronshapley.estimators.montecarlo import MonteCarlo, Truncated
from neuronshapley.estimators.params import Param, validate
from neuronshapley.estimators.tmab import TMAB
from neuronshapley.estimators.truncation import FILLS, Truncation
from neuronshapley.result import ShapleyResult

REGISTRY: dict[str, type[Estimator]] = {
    "exact": Exact, "permutation": MonteCarlo, "truncated": Truncated, "tmab": TMAB,
    "auto": Auto,
}
METHODS = tuple(REGISTRY)

#: options of the run, not of the estimator (every sampling method takes them)
RUN_OPTIONS = ("progress", "checkpoint", "checkpoint_every", "resume", "trust_unfingerprinted")

#: the flat truncation options, translated into a DeadNetwork rule
TRUNCATION_OPTIONS = (
    Param("truncation_tolerance", "float", 0.05, "fraction of |V(N) - V(empty)|", low=0.0,
          high=1.0, high_open=True, none=False),
    Param("truncation_patience", "int", 3, "dead walk steps in a row", low=1, none=False),
    Param("truncation_fill", "str", "zero", "what skipped marginals become",
          choices=tuple(FILLS), none=False),
    Param("truncation_keep", "float", 0.1, "roulette: probability of going on", low=0.0,
          high=1.0, low_open=True, none=False),
)
_TRUNC_NAMES = tuple(p.name for p in TRUNCATION_OPTIONS)


def _class_options(cls: type[Estimator]) -> list[str]:
    names = [p.name for p in cls.PARAMS if p.name not in ("seed", "stop")]
    if any(p.name == "truncation" for p in cls.PARAMS):
        names += list(_TRUNC_NAMES)
        if cls is Truncated:
            names.remove("truncation")
    return names


def method_options(method: str) -> list[str]:
    """The options ``estimate(method=...)`` takes, run options included (sorted)."""
    if method not in REGISTRY:
        raise InputError(f"unknown method {method!r}; choose one of {METHODS}")
    cls = REGISTRY[method]
    names = set(_class_options(cls) if cls is not Auto else Auto.option_names())
    if cls.sampling:
        names |= set(RUN_OPTIONS)
    return sorted(names)


def accepts(method: str, option: str) -> bool:
    """Whether ``estimate(method=...)`` takes ``option``."""
    return option in method_options(method)


def make_estimator(method: str, seed: int | None = 0, **options: Any) -> Estimator:
    """The estimator ``estimate`` would run for ``method`` and (estimator) ``options``."""
    if method not in REGISTRY:
        raise InputError(f"unknown method {method!r}; choose one of {METHODS}")
    cls = REGISTRY[method]
    if cls is Auto:
        return Auto(seed=seed, **options)
    allowed = set(_class_options(cls))
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise OptionError(
            f"method {method!r} takes no option(s) {unknown}; it takes "
            f"{sorted(allowed | (set(RUN_OPTIONS) if cls.sampling else set()))}"
        )
    params = {k: v for k, v in options.items() if k not in _TRUNC_NAMES}
    if any(p.name == "truncation" for p in cls.PARAMS):
        flat = validate(f"method {method!r}", TRUNCATION_OPTIONS,
                        {k: v for k, v in options.items() if k in _TRUNC_NAMES})
        rule = params.get("truncation", True)
        if rule is False or rule is None:
            params["truncation"] = None
        elif rule is True:
            params["truncation"] = Truncation(
                flat["truncation_tolerance"], flat["truncation_patience"],
                flat["truncation_fill"], flat["truncation_keep"])
    return cls(seed=seed, **params)


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
            ``control`` (None or ``"surrogate"``: a fitted control variate, scalar games).
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
    if method not in REGISTRY:
        raise InputError(f"unknown method {method!r}; choose one of {METHODS}")
    run = {k: options.pop(k) for k in RUN_OPTIONS if k in options}
    estimator = make_estimator(method, seed, **options)
    if not estimator.sampling and run:
        raise OptionError(f"method {method!r} takes no option(s) {sorted(run)}; it takes "
                          f"{method_options(method)}")
    return estimator.fit(game, n_players, **run)


__all__ = ["METHODS", "REGISTRY", "RUN_OPTIONS", "accepts", "estimate", "make_estimator",
           "method_options"]
