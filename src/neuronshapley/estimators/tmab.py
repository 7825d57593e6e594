"""TMAB-Shapley (Ghorbani & Zou 2020, Alg. 1): a top-k bandit over permutation walks.

Every round gives each player still "in play" one marginal; a player leaves play once its
interval settles whether it is in the top-k (see :func:`.topk.undecided`), or is narrower than
``epsilon``. Walks stop after the last player in play. Late in a run, when few players are
in play, a whole walk costs many evaluations per marginal; ``sampling="auto"`` then draws
marginals around shared random coalitions, or each player's at its own random position
(one or two evaluations each, same distribution), whichever has been cheaper per marginal.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neuronshapley.errors import InputError
from neuronshapley.estimators.base import SEED, Estimator
from neuronshapley.estimators.betting import BettingIntervals
from neuronshapley.estimators.bounds import Bound, make_bound
from neuronshapley.estimators.montecarlo import BUDGET, STRATA
from neuronshapley.estimators.params import Param
from neuronshapley.estimators.registry import register
from neuronshapley.estimators.requests import Answer, Direct, Request, Shared
from neuronshapley.estimators.sampling import Round, Sampling, WalkSampling, make_sampling
from neuronshapley.estimators.stats import RunningStats
from neuronshapley.estimators.stopping import (
    MaxEvaluations,
    MaxTime,
    RunView,
    StoppingRule,
    any_of,
)
from neuronshapley.estimators.topk import undecided
from neuronshapley.estimators.truncation import TruncationRule, flat_truncation

RULES = ("separation", "paper")
BOUNDS = ("betting", "bernstein", "bernstein-local", "normal")


class _Ranges:
    """Observed range of the marginals (primary output); ``fixed`` overrides."""

    def __init__(self, n: int, fixed: float | None) -> None:
        self.lo = np.full(n, np.inf)
        self.hi = np.full(n, -np.inf)
        self.fixed = fixed

    def update(self, players: np.ndarray, x: np.ndarray) -> None:
        np.minimum.at(self.lo, players, x)
        np.maximum.at(self.hi, players, x)

    def get(self, local: bool = False) -> float | np.ndarray:
        """The widest range observed over all players, each player's own range (``local``,
        shape (n, 1)), or the fixed one."""
        if self.fixed is not None:
            return self.fixed
        seen = np.isfinite(self.hi)
        if local:
            return np.where(seen, self.hi - self.lo, 0.0)[:, None]
        return float(self.hi[seen].max() - self.lo[seen].min()) if seen.any() else 0.0


@register
class TMAB(Estimator):
    """TMAB: rounds of marginals for the players in play until the top-k is separated.

    Each player's interval holds with probability ``1 - delta / n`` (union bound over
    players). The default ``bound="betting"`` is an anytime-valid confidence sequence
    (:mod:`.betting`): it holds at every round at once, so stopping when the top-k looks
    separated keeps the guarantee. ``"bernstein"`` is Maurer-Pontil's empirical-Bernstein
    bound, valid at one fixed sample count. Both need the range of the marginals: the
    ``value_range`` given, otherwise the widest range observed over all players so far (a
    plug-in). ``"bernstein-local"`` uses each player's own observed range (guard it with
    ``min_samples``) and ``"normal"`` normal-approximation intervals; both under-cover on
    games with rare large marginals (``benchmarks/interval_coverage.py``).
    Walks are whole by default (``truncation=None``): cutting them where the sub-network
    looks dead and filling the rest with zeros (the paper's rule) is biased wherever V is
    not monotone or a dead sub-network revives, and the guarantee no longer holds; the
    unbiased roulette fill keeps it, at extra cost. The result says which held
    (``result.info["guarantee"]``). Besides these joint intervals, ``result.unit_low`` /
    ``unit_high`` are per-unit intervals (each unit's on its own, at ``1 - delta``) for
    reading a single value.
    ``adaptive=False`` keeps the stopping rule but samples every player on every walk
    (certified plain Monte-Carlo).
    """

    method = "tmab"
    PARAMS = (
        SEED,
        Param("k", "int", None, "size of the top set to certify (default min(10, n))", low=1),
        Param("delta", "float", 0.05, "failure probability over all players", low=0.0,
              high=1.0, low_open=True, high_open=True, none=False),
        Param("epsilon", "float", None, "half-widths below this count as decided (default "
              "0.005 * |V(N) - V(empty)|)", low=0.0),
        Param("value_range", "float", None, "length of the interval every marginal lies in "
              "(default: the widest range observed)", low=0.0, low_open=True),
        Param("min_samples", "int", 3, "samples per player before it may leave play", low=2,
              none=False),
        Param("output", "int", 0, "which output of a vector game is ranked", low=0,
              none=False),
        Param("sampling", Sampling, "auto", "how marginals are drawn (auto, walk, direct, "
              "shared or a Sampling)", coerce=make_sampling, none=False),
        Param("rule", "str", "separation", "when a player's membership is settled",
              choices=RULES, none=False),
        Param("adaptive", "bool", True, "False: every player on every walk", none=False),
        Param("bound", Bound, "betting", "confidence bound (betting, bernstein, "
              "bernstein-local, normal or a Bound)", coerce=make_bound, none=False),
        Param("truncation", TruncationRule, None, "dead-network rule and fill (None: whole "
              "walks; a biased fill voids the guarantee)"),
        STRATA,
        *BUDGET,
    )

    def truncation(self) -> TruncationRule | None:
        return self._params["truncation"]

    def strata(self) -> int:
        return int(self._params["strata"])

    # ------------------------------------------------------------------------ run
    def begin(self, info: Any, engine: Any) -> None:
        p = self._params
        n = info.n
        self.info, self.engine, self.n = info, engine, n
        self.k = min(10, n) if p["k"] is None else p["k"]
        if not 1 <= self.k <= n:
            raise InputError(f"TMAB: k must be in 1..{n}, got {self.k}")
        if not p["output"] < info.d:
            raise InputError(f"TMAB: output must be in 0..{info.d - 1}, got {p['output']}")
        out = p["output"]
        span = float(abs(info.v_full[out] - info.v_null[out])) or 1.0
        self.epsilon = 0.005 * span if p["epsilon"] is None else p["epsilon"]
        self.budget = 2000 * n if p["max_evaluations"] is None else p["max_evaluations"]
        self.bound_ = p["bound"]
        self.stats = RunningStats(n, info.d)
        self.ranges = _Ranges(n, p["value_range"])
        self.betting = (BettingIntervals(n, p["delta"] / n, p["value_range"])
                        if self.bound_.sequential else None)
        self.active = np.ones(n, dtype=bool)
        self.low = np.full(self.stats.mean.shape, -np.inf)
        self.high = np.full(self.stats.mean.shape, np.inf)
        self.costs = np.zeros(5, dtype=np.int64)  # walk cost, walk samples, direct ditto, rounds

    def stop_rule(self) -> StoppingRule | None:
        p = self._params
        return any_of([MaxEvaluations(self.budget),
                       MaxTime(p["max_time"]) if p["max_time"] is not None else None,
                       p["stop"]])

    def converged(self) -> bool:
        return not self.active.any()

    def ask(self, view: RunView, walks_left: int | None) -> Request:
        p = self._params
        walk_cost, walk_samples, direct_cost, direct_samples = (int(c) for c in self.costs[:4])
        now = Round(np.flatnonzero(self.active), self.active.copy() if p["adaptive"] else None,
                    walk_cost, walk_samples, direct_cost, direct_samples, self.n,
                    self.info.chunk, view.walks)
        # without adaptivity every player is on every walk (certified plain Monte-Carlo)
        sampler = p["sampling"] if p["adaptive"] else WalkSampling()
        return sampler.request(now)

    def tell(self, request: Request, answer: Answer) -> None:
        if isinstance(request, Shared):
            got = sum(len(g) for g, _ in answer.result)
            for g, marg in answer.result:
                self._observe(g, marg)
            self.costs[2] += answer.evaluations
            self.costs[3] += got
            self.costs[4] += 1
        elif isinstance(request, Direct):
            ids, marg = request.ids, answer.result
            self.costs[2] += answer.evaluations
            self.costs[3] += len(ids)
            self.costs[4] += 1
            width = len(np.unique(ids))
            for r0 in range(0, len(ids), width):  # updates take each player once
                self._observe(ids[r0 : r0 + width], marg[r0 : r0 + width])
        else:
            got = 0
            adaptive = self._params["adaptive"]
            for perm, outcome in answer.result:
                visited = perm[: len(outcome.marginals)]
                keep = self.active[visited] if adaptive else np.ones(len(visited), bool)
                self._observe(visited[keep], outcome.marginals[keep])
                got += int(keep.sum())
            self.costs[0], self.costs[1] = answer.evaluations, got  # the last walks
        self._decide()

    def _observe(self, players: np.ndarray, marginals: np.ndarray) -> None:
        """Add one marginal (d,) for each of the distinct ``players``."""
        if len(players) == 0:
            return
        out = self._params["output"]
        marginals = np.asarray(marginals, dtype=np.float64).reshape(len(players), -1)
        if self.betting is not None:  # bets are sized from the samples before these
            self.betting.observe(players, marginals[:, out], self.stats.count[players],
                                 self.stats.m2[players, out])
        self.stats.update(players, marginals)
        self.ranges.update(players, marginals[:, out])

    def _decide(self) -> None:
        p, stats = self._params, self.stats
        per_player_delta = p["delta"] / self.n
        r = self.ranges.get(local=self.bound_.local_range)
        hw = self.bound_.halfwidths(stats.variance(), stats.count, r, per_player_delta)
        self.low, self.high = stats.mean - hw, stats.mean + hw
        out = p["output"]
        if self.betting is not None:  # the primary output's sequence; others: Bernstein
            self.low[:, out], self.high[:, out] = self.betting.bounds()
        mean, low, high = stats.mean[:, out], self.low[:, out], self.high[:, out]
        open_ = undecided(mean, low, high, self.k, p["rule"])
        self.active = (open_ & ((high - low) / 2 > self.epsilon)) | (
            stats.count < p["min_samples"])

    # ------------------------------------------------------------------ read-out
    def values(self) -> np.ndarray:
        return self.stats.mean

    def interval(self) -> tuple[np.ndarray, np.ndarray]:
        return self.low, self.high

    def samples(self) -> np.ndarray:
        return self.stats.count

    def confidence(self) -> float | None:
        return 1 - float(self._params["delta"])

    def interval_kind(self) -> str:
        return "joint"

    def unit_interval(self) -> tuple[np.ndarray, np.ndarray]:
        """Each player's interval at ``1 - delta`` on its own (no union over players)."""
        p, stats = self._params, self.stats
        r = self.ranges.get(local=self.bound_.local_range)
        hw = self.bound_.halfwidths(stats.variance(), stats.count, r, float(p["delta"]))
        low, high = stats.mean - hw, stats.mean + hw
        if self.betting is not None:
            out = p["output"]
            low[:, out], high[:, out] = self.betting.bounds(float(p["delta"]))
        # never wider than the joint intervals (both hold; their intersection too)
        return np.maximum(low, self.low), np.minimum(high, self.high)

    def guarantee(self) -> tuple[bool, str]:
        """Whether the joint guarantee holds on every game, and why (not)."""
        p = self._params
        rule, bound = p["truncation"], self.bound_
        if rule is not None and not rule.fill.unbiased:
            return False, (f"not guaranteed: the {rule.fill.name!r} truncation fill is biased "
                           "where V is not monotone or a dead sub-network revives (use "
                           "truncation=None or truncation_fill='roulette')")
        if int(p["strata"]) > 1:
            return False, ("not guaranteed: position strata make the walks of a block "
                           "depend on each other, and the confidence sequences need "
                           "independent walks (use strata=1)")
        if not bound.anytime:
            return False, (f"not guaranteed: the {bound.name!r} bound is not an anytime "
                           "confidence sequence (use bound='betting')")
        level = 100 * (1 - float(p["delta"]))
        return True, (f"joint {level:g}% confidence sequences: every unit's interval holds at "
                      "once, at every round; the top-k is right up to epsilon with that "
                      "probability")

    def progress(self) -> dict[str, Any]:
        return {"active": int(self.active.sum())}

    def result_info(self) -> dict[str, Any]:
        holds, why = self.guarantee()
        return {"converged": self.converged(), "undecided": int(self.active.sum()),
                "direct_rounds": int(self.costs[4]), "guarantee": holds, "intervals_note": why}

    def resolved_params(self) -> dict[str, Any]:
        p = {k: v for k, v in self._params.items() if k not in ("seed", "stop", "truncation")}
        p.update(k=getattr(self, "k", p["k"]), epsilon=getattr(self, "epsilon", p["epsilon"]),
                 max_evaluations=getattr(self, "budget", p["max_evaluations"]),
                 bound=self._params["bound"].name, sampling=self._params["sampling"].name)
        trunc = self._params["truncation"]
        p.update(flat_truncation(trunc) if trunc is not None else {"truncation": False})
        if self._params["stop"] is not None:
            p["stop"] = self._params["stop"].describe()
        return p

    # --------------------------------------------------------------------- state
    def state(self) -> dict[str, np.ndarray]:
        arrays = {f"stats.{k}": v for k, v in self.stats.state().items()}
        arrays.update({"bandit.lo": self.ranges.lo.copy(), "bandit.hi": self.ranges.hi.copy(),
                       "bandit.costs": self.costs.copy()})
        if self.betting is not None:
            arrays.update({f"betting.{k}": np.array(v, copy=True)
                           for k, v in self.betting.state().items()})
        return arrays

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.stats = RunningStats.from_state(
            {k[len("stats."):]: v for k, v in arrays.items() if k.startswith("stats.")})
        self.ranges.lo, self.ranges.hi = arrays["bandit.lo"].copy(), arrays["bandit.hi"].copy()
        self.costs = arrays["bandit.costs"].astype(np.int64).copy()
        if self.betting is not None:
            saved = {k[len("betting."):]: v for k, v in arrays.items()
                     if k.startswith("betting.")}
            if not saved:
                raise InputError("the checkpoint holds no betting state (written with another "
                                 "bound or an older version): resume it with that bound, "
                                 "e.g. bound='bernstein'")
            self.betting.restore(saved)
        self._decide()


__all__ = ["BOUNDS", "RULES", "TMAB"]
