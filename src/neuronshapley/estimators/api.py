"""``estimate(game, ...)``: one entry point to every Shapley estimator."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..progress import ProgressFn, make_progress
from ..result import ShapleyResult
from .exact import exact_shapley
from .permutation import permutation_shapley
from .sampler import WalkSampler
from .tmab import tmab_shapley
from .walks import Truncation

METHODS = ("exact", "permutation", "truncated", "tmab")

_OPTIONS: dict[str, set[str]] = {
    "exact": {"chunk"},
    "permutation": {"max_evaluations", "n_permutations", "max_time", "confidence", "chunk",
                    "progress", "strata"},
    "truncated": {"max_evaluations", "n_permutations", "max_time", "confidence", "chunk",
                  "progress", "truncation_tolerance", "truncation_patience", "truncation_fill",
                  "truncation_keep", "strata"},
    "tmab": {"k", "delta", "epsilon", "value_range", "max_evaluations", "max_time",
             "min_samples", "output", "chunk", "progress", "sampling", "rule", "adaptive", "bound",
             "truncation_tolerance", "truncation_patience", "truncation_fill", "truncation",
             "truncation_keep", "strata"},
}


def _players(game: Any, n: int) -> list[str]:
    ids = getattr(game, "players", None)
    if ids is not None and not callable(ids) and len(ids) == n:
        return [str(p) for p in ids]
    return [f"p{i}" for i in range(n)]


def _output_names(game: Any, d: int) -> list[str] | None:
    if d == 1:
        return None
    names = getattr(game, "output_names", None)
    return list(names) if names is not None and len(names) == d else None


def _squeeze(a: np.ndarray) -> np.ndarray:
    return a[:, 0] if a.ndim == 2 and a.shape[1] == 1 else a


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
        method: ``"exact"`` (enumeration, n <= 22), ``"permutation"`` (plain Monte-Carlo),
            ``"truncated"`` (Monte-Carlo with early truncation) or ``"tmab"`` (the paper's
            truncated multi-armed bandit for the top-k).
        seed: seed of the random generator (same seed, same game: same result).
        **options: per method:
            permutation / truncated: ``max_evaluations`` (default 100 walks' worth),
            ``n_permutations``, ``max_time`` (s), ``confidence`` (0.95; per-player normal
            intervals), ``chunk`` (walk steps per game call), ``progress`` (True or callable).
            truncated and tmab: ``truncation_tolerance`` (0.05 of ``|V(N) - V(empty)|``),
            ``truncation_patience`` (3 dead steps in a row), ``truncation_fill`` ("zero" as in
            the paper; "share": the value left is split over the skipped players; "roulette":
            unbiased, the walk goes on past the dead point with probability
            ``truncation_keep`` (0.1) and those marginals are divided by it).
            all walk methods: ``strata`` (1): position-stratified blocks of walks (see
            ``WalkSampler``); unbiased, lower variance when marginals depend on position.
            tmab: ``k`` (min(10, n)), ``delta`` (0.05, failure probability over all players),
            ``epsilon`` (0.005 * |V(N) - V(empty)|: intervals narrower than this count as
            decided), ``value_range`` (range of one marginal; default: the widest observed),
            ``max_evaluations`` (default 2000 * n), ``max_time``, ``min_samples`` (3),
            ``output`` (which output of a vector game the bandit ranks; 0), ``truncation``
            (False for none), ``sampling`` ("walk": the paper's permutation walks only;
            "direct": each player's marginal at its own random position; "auto": whichever
            costs fewer evaluations per marginal, the default), ``rule`` ("paper": play
            goes on while an interval contains the k-th value; "separation": until every
            top-k interval clears every outsider's, the default), ``adaptive`` (False: sample
            every player on every walk, keeping the stopping rule: certified plain MC),
            ``bound`` ("bernstein": empirical Bernstein with the widest observed range, the
            default; "normal": normal approximation, tighter, valid for many samples).
    Returns:
        a :class:`ShapleyResult`.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    unknown = set(options) - _OPTIONS[method]
    if unknown:
        raise TypeError(
            f"method {method!r} takes no option(s) {sorted(unknown)}; "
            f"it takes {sorted(_OPTIONS[method])}"
        )
    if not callable(game):
        raise TypeError(f"game must be callable masks -> values, got {type(game).__name__}")
    if n_players is None:
        n_players = getattr(game, "n_players", None)
        if n_players is None:
            raise ValueError("n_players is required for a game without an n_players attribute")
    n = int(n_players)
    if n < 1:
        raise ValueError(f"n_players must be positive, got {n}")
    players = _players(game, n)
    rng = np.random.default_rng(seed)
    params = {k: v for k, v in options.items() if k != "progress"}
    started = time.perf_counter()
    info: dict[str, Any] = {}

    if method == "exact":
        phi, evals = exact_shapley(game, n, chunk=int(options.get("chunk", 4096)))
        d = phi.shape[1]
        result = ShapleyResult(
            _squeeze(phi), _squeeze(phi), _squeeze(phi),
            np.full(n, 1 << (n - 1), dtype=np.int64), evals, players, method, seed, params,
            time.perf_counter() - started, 1.0, _output_names(game, d), info=info,
        )
        return result

    truncation = None
    if method in ("truncated", "tmab") and options.get("truncation", True) is not False:
        truncation = Truncation(
            float(options.get("truncation_tolerance", 0.05)),
            int(options.get("truncation_patience", 3)),
            str(options.get("truncation_fill", "zero")),
            float(options.get("truncation_keep", 0.1)),
        )
    sampler = WalkSampler(game, n, rng, truncation, options.get("chunk"),
                          int(options.get("strata", 1)))
    d = sampler.output_dim
    max_time = options.get("max_time")
    progress: bool | ProgressFn | None = options.get("progress")

    if method in ("permutation", "truncated"):
        confidence = float(options.get("confidence", 0.95))
        if not 0 < confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {confidence}")
        n_perm = options.get("n_permutations")
        max_evals = options.get("max_evaluations")
        if n_perm is None and max_evals is None:
            max_evals = 100 * (n + 1)
        _check_budget(max_evals, n_perm)
        report, close = make_progress(progress, max_evals, method)
        try:
            stats, hw, _ = permutation_shapley(sampler, max_evals, n_perm, max_time,
                                               confidence, report)
        finally:
            close()
        params.setdefault("max_evaluations", max_evals)
    else:
        k = min(10, n) if options.get("k") is None else int(options["k"])
        if not 1 <= k <= n:
            raise ValueError(f"k must be in 1..{n}, got {k}")
        delta = float(options.get("delta", 0.05))
        if not 0 < delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {delta}")
        output = int(options.get("output", 0))
        if not 0 <= output < d:
            raise ValueError(f"output must be in 0..{d - 1}, got {output}")
        span = float(abs(sampler.v_full[output] - sampler.v_null[output])) or 1.0
        epsilon = options.get("epsilon")
        epsilon = 0.005 * span if epsilon is None else float(epsilon)
        max_evals = options.get("max_evaluations", 2000 * n)
        _check_budget(max_evals, None)
        confidence = 1 - delta
        report, close = make_progress(progress, max_evals, "tmab")
        try:
            outcome = tmab_shapley(
                sampler, k, delta, epsilon, options.get("value_range"), max_evals, max_time,
                int(options.get("min_samples", 3)), output, report,
                str(options.get("sampling", "auto")), str(options.get("rule", "separation")),
                bool(options.get("adaptive", True)), str(options.get("bound", "bernstein")),
            )
        finally:
            close()
        stats, hw = outcome.stats, outcome.halfwidth
        params.update(k=k, delta=delta, epsilon=epsilon, max_evaluations=max_evals)
        info.update(converged=outcome.converged, undecided=int(outcome.active.sum()),
                    direct_rounds=outcome.direct_rounds)
    if truncation is not None:
        params.update(truncation_tolerance=truncation.tolerance,
                      truncation_patience=truncation.patience, truncation_fill=truncation.fill,
                      truncation_keep=truncation.keep)
    info.update(walks=sampler.walks, truncated_walks=sampler.truncated_walks,
                v_full=sampler.v_full.tolist(), v_null=sampler.v_null.tolist())
    mean = stats.mean
    return ShapleyResult(
        _squeeze(mean), _squeeze(mean - hw), _squeeze(mean + hw), stats.count.copy(),
        sampler.evaluations, players, method, seed, params, time.perf_counter() - started,
        confidence, _output_names(game, d), info=info,
    )


def _check_budget(max_evals: Any, n_perm: Any) -> None:
    if max_evals is not None and int(max_evals) < 1:
        raise ValueError(f"max_evaluations must be positive, got {max_evals}")
    if n_perm is not None and int(n_perm) < 1:
        raise ValueError(f"n_permutations must be positive, got {n_perm}")


def method_options(method: str) -> list[str]:
    """The options a method accepts (for the CLI's help)."""
    return sorted(_OPTIONS[method])


__all__ = ["estimate", "METHODS", "method_options"]
