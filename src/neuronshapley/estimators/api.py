"""``estimate(game, ...)``: one entry point to every Shapley estimator."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from neuronshapley.estimators.checkpoint import Checkpointer, CheckpointError, has_state, load_state
from neuronshapley.estimators.exact import exact_shapley
from neuronshapley.estimators.permutation import PermutationRun
from neuronshapley.estimators.sampler import WalkSampler
from neuronshapley.estimators.tmab import BanditRun, settings_from_options
from neuronshapley.estimators.walks import Truncation
from neuronshapley.progress import make_progress
from neuronshapley.result import ShapleyResult

METHODS = ("exact", "permutation", "truncated", "tmab", "auto")

_RUN_OPTIONS = {"checkpoint", "checkpoint_every", "resume"}
_OPTIONS: dict[str, set[str]] = {
    "exact": {"chunk"},
    "permutation": {"max_evaluations", "n_permutations", "max_time", "confidence", "chunk",
                    "progress", "strata", "control"},
    "truncated": {"max_evaluations", "n_permutations", "max_time", "confidence", "chunk",
                  "progress", "truncation_tolerance", "truncation_patience", "truncation_fill",
                  "truncation_keep", "strata", "control"},
    "tmab": {"k", "delta", "epsilon", "value_range", "max_evaluations", "max_time",
             "min_samples", "output", "chunk", "progress", "sampling", "rule", "adaptive", "bound",
             "truncation_tolerance", "truncation_patience", "truncation_fill", "truncation",
             "truncation_keep", "strata"},
}


_OPTIONS["auto"] = _OPTIONS["truncated"] | _OPTIONS["tmab"]


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
        method: ``"auto"`` (chosen from the options and a one-walk pilot, see
            :func:`_choose`; ``result.info["auto"]`` says what and why),
            ``"exact"`` (enumeration, n <= 22), ``"permutation"`` (plain Monte-Carlo),
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
            permutation / truncated: ``control`` (None; ``"surrogate"``: a logistic
            "collapse" surrogate fitted to earlier walks serves as a control variate, see
            ``estimators.surrogate``; unbiased, scalar games with a fixed evaluation set).
            tmab: ``k`` (min(10, n)), ``delta`` (0.05, failure probability over all players),
            ``epsilon`` (0.005 * |V(N) - V(empty)|: intervals narrower than this count as
            decided), ``value_range`` (length of the interval every marginal lies in, e.g.
            2 for an accuracy in [0, 1]; default: the widest range observed over all
            players, a plug-in),
            ``max_evaluations`` (default 2000 * n), ``max_time``, ``min_samples`` (3),
            ``output`` (which output of a vector game the bandit ranks; 0), ``truncation``
            (False for none), ``sampling`` ("walk": the paper's permutation walks only;
            "direct": each player's marginal at its own random position; "auto": whichever
            costs fewer evaluations per marginal, the default), ``rule`` ("paper": play
            goes on while an interval contains the k-th value; "separation": until every
            top-k interval clears every outsider's, the default), ``adaptive`` (False: sample
            every player on every walk, keeping the stopping rule: certified plain MC),
            all sampling methods: ``checkpoint`` (a folder: the state is saved there every
            ``checkpoint_every`` seconds (30) and at exit), ``resume`` (continue the
            checkpoint in that folder; same game, method, seed and parameters required).
            Ctrl-C raises :class:`EstimationInterrupted` carrying the partial result.
            ``bound`` ("betting": anytime-valid confidence sequences by betting, sized for
            the widest observed range of marginals, the default; "bernstein": empirical
            Bernstein (Maurer-Pontil) with that range, valid at a fixed sample count;
            "bernstein-local": each unit's own observed range, use with
            ``min_samples`` >= 30; "normal": normal approximation; the last two are faster
            and can under-cover, see benchmarks/results/coverage.md).
    Returns:
        a :class:`ShapleyResult`.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    if method == "auto":
        unknown = set(options) - _OPTIONS["auto"] - _RUN_OPTIONS
        if unknown:
            raise TypeError(f"method 'auto' takes no option(s) {sorted(unknown)}")
        method, options, choice = _choose(game, n_players, seed, options)
        result = estimate(game, n_players, method, seed, **options)
        result.evaluations += choice["pilot_evaluations"]
        result.info["auto"] = choice
        return result
    allowed = _OPTIONS[method] | (_RUN_OPTIONS if method != "exact" else set())
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(
            f"method {method!r} takes no option(s) {sorted(unknown)}; "
            f"it takes {sorted(allowed)}"
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
    run: PermutationRun | BanditRun
    if method in ("permutation", "truncated"):
        confidence = float(options.get("confidence", 0.95))
        if not 0 < confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {confidence}")
        n_perm = options.get("n_permutations")
        max_evals = options.get("max_evaluations")
        if n_perm is None and max_evals is None:
            max_evals = 100 * (n + 1)
        _check_budget(max_evals, n_perm)
        run = PermutationRun(sampler, None if n_perm is None else int(n_perm), confidence,
                             options.get("control"))
        params.setdefault("max_evaluations", max_evals)
    else:
        settings = settings_from_options(options, n, sampler.v_full, sampler.v_null)
        k, delta, epsilon = settings.k, settings.delta, settings.epsilon
        max_evals = options.get("max_evaluations", 2000 * n)
        _check_budget(max_evals, None)
        confidence = 1 - delta
        run = BanditRun(sampler, settings)
        params.update(k=k, delta=delta, epsilon=epsilon, max_evaluations=max_evals)
    if truncation is not None:
        params.update(truncation_tolerance=truncation.tolerance,
                      truncation_patience=truncation.patience, truncation_fill=truncation.fill,
                      truncation_keep=truncation.keep)
    identity = {"method": method, "seed": seed, "n_players": n,
                "params": _jsonable({k: v for k, v in params.items()
                                     if k not in _BUDGET_OPTIONS}),
                "game": _fingerprint(game)}
    checkpointer = _resume(options, identity, run)
    resumed_at = run.sampler.evaluations if checkpointer is not None else 0

    def result() -> ShapleyResult:
        res = run_result(run, info, players, method, seed, params, started, confidence,
                         _output_names(game, d), resumed_at)
        res.state = snapshot()
        return res

    def snapshot() -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, facts = run.state()
        return arrays, {**identity, **facts}

    report, close = make_progress(options.get("progress"), max_evals, method)
    max_time = options.get("max_time")
    try:
        while not run.finished():
            if max_evals is not None and sampler.evaluations >= max_evals:
                break
            if max_time is not None and time.perf_counter() - started >= max_time:
                break
            if max_evals is not None:
                sampler.budget_left = int(max_evals) - sampler.evaluations
            sampler.begin()
            run.step()
            sampler.commit()
            report(run.progress())
            if checkpointer is not None:
                checkpointer.maybe(snapshot)
    except KeyboardInterrupt:
        info["interrupted"] = True
        raise EstimationInterrupted(result()) from None
    finally:
        close()
        if checkpointer is not None:
            checkpointer.final(snapshot)
    return result()


def run_result(run: PermutationRun | BanditRun, info: dict[str, Any], players: list[str],
               method: str, seed: int | None, params: dict[str, Any], started: float,
               confidence: float, output_names: list[str] | None, resumed_at: int
               ) -> ShapleyResult:
    """The :class:`ShapleyResult` of a walk-based run as it stands (``info`` is updated)."""
    sampler = run.sampler
    low, high = run.interval()
    mean = run.stats.mean
    info.update(walks=sampler.walks, truncated_walks=sampler.truncated_walks,
                v_full=sampler.v_full.tolist(), v_null=sampler.v_null.tolist())
    if isinstance(run, BanditRun):
        info.update(converged=run.finished(), undecided=int(run.active.sum()),
                    direct_rounds=run.direct_rounds)
    if resumed_at:
        info["resumed_at_evaluations"] = resumed_at
    return ShapleyResult(
        _squeeze(mean), _squeeze(low), _squeeze(high), run.stats.count.copy(),
        sampler.evaluations, players, method, seed, params,
        time.perf_counter() - started, confidence, output_names, info=info,
    )


class EstimationInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`estimate`: ``.result`` holds what was computed (and checkpointed)."""

    def __init__(self, result: ShapleyResult) -> None:
        super().__init__("estimation interrupted")
        self.result = result


_BUDGET_OPTIONS = {"max_evaluations", "n_permutations", "max_time", "checkpoint",
                   "checkpoint_every", "resume", "progress", "chunk"}


def _fingerprint(game: Any) -> str | None:
    fp = getattr(game, "fingerprint", None)
    return str(fp()) if callable(fp) else None


def _resume(options: dict[str, Any], identity: dict[str, Any],
            run: PermutationRun | BanditRun) -> Checkpointer | None:
    """A checkpointer for ``options["checkpoint"]``; restores ``run`` when resuming."""
    folder = options.get("checkpoint")
    if folder is None:
        if options.get("resume"):
            raise ValueError("resume=True needs checkpoint=<folder>")
        return None
    checkpointer = Checkpointer(folder, float(options.get("checkpoint_every", 30.0)))
    if has_state(folder):
        if not options.get("resume"):
            raise CheckpointError(
                f"{folder} already holds a checkpoint: pass resume=True to continue it, "
                "or choose another folder"
            )
        arrays, facts = load_state(folder)
        for key, want in identity.items():
            if facts.get(key) != want:
                raise CheckpointError(
                    f"checkpoint in {folder} was made with a different {key} "
                    f"({facts.get(key)!r}, this run: {want!r}); it cannot be resumed here"
                )
        run.restore(arrays, facts)
    return checkpointer


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def _choose(game: Any, n_players: int | None, seed: int | None, options: dict[str, Any]
            ) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``method="auto"``: pick an estimator from the problem and a one-walk pilot.

    - ``k`` given: the top-k bandit (``tmab``), which can certify a top-k.
    - n <= 12 and a budget that allows 2^n evaluations: ``exact``.
    - otherwise the best anytime estimator measured in ``benchmarks/``: truncated walks
      with unbiased roulette fill and position strata; one pilot walk measures what a walk
      costs on this game, so the strata fit the walks the budget buys (about 6 walks per
      stratum, 1 to 8 strata).
    """
    n = int(n_players if n_players is not None else getattr(game, "n_players", 0) or 0)
    if n < 1:
        raise ValueError("n_players is required for a game without an n_players attribute")
    budget = options.get("max_evaluations")
    if options.get("k") is not None:
        allowed = _OPTIONS["tmab"] | _RUN_OPTIONS
        chosen = {k: v for k, v in options.items() if k in allowed}
        return "tmab", chosen, {"chosen": "tmab", "reason": "k given: certify the top-k",
                                "pilot_evaluations": 0}
    if n <= 12 and (budget is None or budget >= 1 << n):
        return "exact", {k: v for k, v in options.items() if k == "chunk"}, {
            "chosen": "exact", "reason": f"{1 << n} evaluations enumerate every coalition",
            "pilot_evaluations": 0}
    allowed = _OPTIONS["truncated"] | _RUN_OPTIONS
    chosen = {k: v for k, v in options.items() if k in allowed}
    pilot = WalkSampler(game, n, np.random.default_rng([0 if seed is None else seed, 7919]),
                        Truncation(fill="zero"), options.get("chunk"))
    pilot.walk()
    walk_cost = max(pilot.evaluations - 2, 1)
    if budget is None and chosen.get("n_permutations") is None:
        budget = 100 * (n + 1)
        chosen["max_evaluations"] = budget
    walks = (budget or walk_cost * int(chosen["n_permutations"])) / walk_cost
    chosen.setdefault("truncation_fill", "roulette")
    chosen.setdefault("strata", int(min(8, max(1, walks // 6))))
    return "truncated", chosen, {
        "chosen": "truncated", "pilot_evaluations": int(pilot.evaluations),
        "reason": f"a walk costs about {walk_cost} evaluations, so the budget buys about "
                  f"{walks:.0f} walks: {chosen['strata']} strata, roulette truncation",
    }


def _check_budget(max_evals: Any, n_perm: Any) -> None:
    if max_evals is not None and int(max_evals) < 1:
        raise ValueError(f"max_evaluations must be positive, got {max_evals}")
    if n_perm is not None and int(n_perm) < 1:
        raise ValueError(f"n_permutations must be positive, got {n_perm}")


def method_options(method: str) -> list[str]:
    """The options a method accepts (for the CLI's help)."""
    return sorted(_OPTIONS[method])


__all__ = ["METHODS", "EstimationInterrupted", "estimate", "method_options"]
