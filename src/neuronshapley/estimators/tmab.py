"""TMAB-Shapley (Ghorbani & Zou 2020, Alg. 1): truncated walks + a top-k bandit.

Every round gives each player still "in play" one marginal; a player leaves play once its
empirical-Bernstein interval settles whether it is in the top-k (see ``_undecided``), or is
narrower than ``epsilon``. Walks stop after the last player in play. Late in a run, when
few players are in play, a whole walk costs many evaluations per marginal;
``sampling="auto"`` then draws each player's marginal at its own random position instead
(one or two evaluations each, same distribution), whichever has been cheaper per marginal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from neuronshapley.estimators.betting import BettingIntervals
from neuronshapley.estimators.bounds import bernstein_halfwidth, union_normal_halfwidth
from neuronshapley.estimators.sampler import WalkSampler
from neuronshapley.estimators.stats import RunningStats

SAMPLINGS = ("auto", "walk", "direct", "shared")
RULES = ("separation", "paper")
BOUNDS = ("betting", "bernstein", "bernstein-local", "normal")


def _undecided(mean: np.ndarray, lower: np.ndarray, upper: np.ndarray, k: int,
               rule: str) -> np.ndarray:
    """Players whose membership of the top-k is not yet settled by their intervals.

    ``"paper"``: the interval still contains the current k-th largest mean (so the k-th
    player itself only leaves through ``epsilon``). ``"separation"``: a current top-k player
    is settled once its lower bound clears every outsider's upper bound, an outsider once
    its upper bound is below every top-k lower bound.
    """
    n = len(mean)
    order = np.argsort(-mean, kind="stable")
    if rule == "paper":
        kth = mean[order[k - 1]]
        return (lower < kth) & (upper > kth)
    if k == n:
        return np.zeros(n, dtype=bool)
    inside = np.zeros(n, dtype=bool)
    inside[order[:k]] = True
    best_outside_upper = upper[~inside].max()
    worst_inside_lower = lower[inside].min()
    return np.where(inside, lower <= best_outside_upper, upper >= worst_inside_lower)


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


@dataclass(frozen=True)
class BanditSettings:
    """The bandit's parameters (see :func:`neuronshapley.estimate` for their meaning)."""

    k: int
    delta: float
    epsilon: float
    value_range: float | None = None
    min_samples: int = 3
    output: int = 0
    sampling: str = "auto"
    rule: str = "separation"
    adaptive: bool = True
    bound: str = "betting"

    def __post_init__(self) -> None:
        for name, value, allowed in (("bound", self.bound, BOUNDS), ("rule", self.rule, RULES),
                                     ("sampling", self.sampling, SAMPLINGS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if self.min_samples < 2:
            raise ValueError(f"min_samples must be >= 2, got {self.min_samples}")


def settings_from_options(options: dict[str, Any], n: int, v_full: np.ndarray,
                          v_null: np.ndarray) -> BanditSettings:
    """Checked :class:`BanditSettings` from ``estimate``'s options; ``v_full`` and ``v_null``
    (d,) are V(N) and V(empty): the default ``epsilon`` is in units of the primary output's
    ``|V(N) - V(empty)|``."""
    output_dim = len(v_full)
    k = min(10, n) if options.get("k") is None else int(options["k"])
    if not 1 <= k <= n:
        raise ValueError(f"k must be in 1..{n}, got {k}")
    delta = float(options.get("delta", 0.05))
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    output = int(options.get("output", 0))
    if not 0 <= output < output_dim:
        raise ValueError(f"output must be in 0..{output_dim - 1}, got {output}")
    span = float(abs(v_full[output] - v_null[output])) or 1.0
    epsilon = options.get("epsilon")
    epsilon = 0.005 * span if epsilon is None else float(epsilon)
    defaults = BanditSettings(k, delta, epsilon)
    return BanditSettings(
        k, delta, epsilon, options.get("value_range"),
        int(options.get("min_samples", defaults.min_samples)), output,
        str(options.get("sampling", defaults.sampling)), str(options.get("rule", defaults.rule)),
        bool(options.get("adaptive", defaults.adaptive)),
        str(options.get("bound", defaults.bound)),
    )


class BanditRun:
    """TMAB: rounds of marginals for the players in play until the top-k is separated.

    Each player's interval holds with probability ``1 - delta / n`` (union bound over
    players). The default ``bound="betting"`` is an anytime-valid confidence sequence
    (:mod:`.betting`): it holds at every round at once, so stopping when the top-k looks
    separated keeps the guarantee. ``"bernstein"`` is Maurer-Pontil's empirical-Bernstein
    bound, valid at one fixed sample count. Both need the range of the marginals: the
    ``value_range`` given, otherwise the widest range observed over all players so far (a
    plug-in: one player's few samples can look constant while its marginals are not, so no
    player is trusted with its own range). ``bound="bernstein-local"`` uses each player's
    own observed range (tighter for unimportant players, whose marginals stay small;
    guarded by ``min_samples``) and ``bound="normal"`` normal-approximation intervals, both
    with the same union bound; both under-cover on games with rare large marginals
    (measured in ``benchmarks/interval_coverage.py``). ``adaptive=False`` keeps the
    stopping rule but samples every player on every walk (certified plain Monte-Carlo).
    """

    def __init__(self, sampler: WalkSampler, settings: BanditSettings) -> None:
        self.sampler = sampler
        self.cfg = settings
        n = sampler.n
        self.stats = RunningStats(n, sampler.output_dim)
        self.ranges = _Ranges(n, settings.value_range)
        self.betting = (BettingIntervals(n, settings.delta / n, settings.value_range)
                        if settings.bound == "betting" else None)
        self.active = np.ones(n, dtype=bool)
        self.low = np.full(self.stats.mean.shape, -np.inf)
        self.high = np.full(self.stats.mean.shape, np.inf)
        self.costs = np.zeros(5, dtype=np.int64)  # walk cost, walk samples, direct ditto, rounds

    def finished(self) -> bool:
        return not self.active.any()

    def step(self) -> None:
        sampler, cfg = self.sampler, self.cfg
        ids = np.flatnonzero(self.active)
        before = sampler.evaluations
        walk_cost, walk_samples, direct_cost, direct_samples = (int(c) for c in self.costs[:4])
        direct = cfg.adaptive and _use_direct(cfg.sampling, walk_cost, walk_samples,
                                              direct_cost, direct_samples)
        if direct and cfg.sampling in ("auto", "shared") and hasattr(sampler, "shared"):
            # anchors shared by the players in play: ~1 + m / ln(n) evaluations per marginal
            harmonic = float(np.sum(1.0 / np.arange(1, sampler.n + 1)))
            reps = max(1, sampler.chunk // (2 * len(ids)))
            groups = sampler.shared(ids, int(np.ceil(harmonic * reps)))
            got = sum(len(g) for g, _ in groups)
            for g, marg in groups:
                self._observe(g, marg)
            self.costs[2] += sampler.evaluations - before
            self.costs[3] += got
            self.costs[4] += 1
            self._decide()
            return
        if direct:
            # several marginals per player when few are in play: fuller batches
            reps = max(1, sampler.chunk // (2 * len(ids)))
            ids = np.tile(ids, reps)
            marg = sampler.direct(ids)
            self.costs[2] += sampler.evaluations - before
            self.costs[3] += len(ids)
            self.costs[4] += 1
        else:
            got = 0
            # several walks share game calls, but few enough that the active set is refreshed
            # before the samples grow by more than about an eighth
            count = max(1, sampler.walks // 8)
            for perm, outcome in sampler.walk_many(count, self.active if cfg.adaptive
                                                   else None):
                visited = perm[: len(outcome.marginals)]
                keep = self.active[visited] if cfg.adaptive else np.ones(len(visited), bool)
                self._observe(visited[keep], outcome.marginals[keep])
                got += int(keep.sum())
            self.costs[0], self.costs[1] = sampler.evaluations - before, got  # last walks
            self._decide()
            return
        width = len(np.unique(ids))
        for r0 in range(0, len(ids), width):  # updates take each player once
            self._observe(ids[r0 : r0 + width], marg[r0 : r0 + width])
        self._decide()

    def _observe(self, players: np.ndarray, marginals: np.ndarray) -> None:
        """Add one marginal (d,) for each of the distinct ``players``."""
        if len(players) == 0:
            return
        out = self.cfg.output
        marginals = np.asarray(marginals, dtype=np.float64).reshape(len(players), -1)
        if self.betting is not None:  # bets are sized from the samples before these
            self.betting.observe(players, marginals[:, out], self.stats.count[players],
                                 self.stats.m2[players, out])
        self.stats.update(players, marginals)
        self.ranges.update(players, marginals[:, out])

    def _decide(self) -> None:
        cfg, stats = self.cfg, self.stats
        per_player_delta = cfg.delta / self.sampler.n
        if cfg.bound == "normal":
            hw = union_normal_halfwidth(stats.variance(), stats.count, per_player_delta)
        else:
            r = self.ranges.get(local=cfg.bound == "bernstein-local")
            hw = bernstein_halfwidth(stats.variance(), stats.count, r, per_player_delta)
        self.low, self.high = stats.mean - hw, stats.mean + hw
        if self.betting is not None:  # the primary output's sequence; others: Bernstein
            self.low[:, cfg.output], self.high[:, cfg.output] = self.betting.bounds()
        out = cfg.output
        mean, low, high = stats.mean[:, out], self.low[:, out], self.high[:, out]
        undecided = _undecided(mean, low, high, cfg.k, cfg.rule)
        self.active = (undecided & ((high - low) / 2 > cfg.epsilon)) | (
            stats.count < cfg.min_samples)

    def progress(self) -> dict[str, Any]:
        return {"evaluations": self.sampler.evaluations, "walks": self.sampler.walks,
                "active": int(self.active.sum())}

    def interval(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds (n, d) of the values."""
        return self.low, self.high

    @property
    def direct_rounds(self) -> int:
        return int(self.costs[4])

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, facts = self.sampler.state()
        arrays.update({f"stats.{k}": v for k, v in self.stats.state().items()})
        arrays.update({"bandit.lo": self.ranges.lo, "bandit.hi": self.ranges.hi,
                       "bandit.costs": self.costs})
        if self.betting is not None:
            arrays.update({f"betting.{k}": v for k, v in self.betting.state().items()})
        return arrays, facts

    def restore(self, arrays: dict[str, np.ndarray], facts: dict[str, Any]) -> None:
        self.sampler.restore(arrays, facts)
        self.stats = RunningStats.from_state(
            {k[len("stats."):]: v for k, v in arrays.items() if k.startswith("stats.")}
        )
        self.ranges.lo, self.ranges.hi = arrays["bandit.lo"].copy(), arrays["bandit.hi"].copy()
        self.costs = arrays["bandit.costs"].astype(np.int64).copy()
        if self.betting is not None:
            saved = {k[len("betting."):]: v for k, v in arrays.items()
                     if k.startswith("betting.")}
            if not saved:
                raise ValueError("the checkpoint holds no betting state (written with another "
                                 "bound or an older version): resume it with that bound, "
                                 "e.g. bound='bernstein'")
            self.betting.restore(saved)
        self._decide()


def _use_direct(
    sampling: str, walk_cost: int, walk_samples: int, direct_cost: int, direct_samples: int
) -> bool:
    if sampling != "auto":
        return sampling in ("direct", "shared")
    if walk_samples == 0:
        return False
    if direct_samples == 0:
        return walk_cost / walk_samples > 2.0
    return direct_cost / direct_samples < walk_cost / walk_samples
