"""Combine independent runs of the same game into one result (sums and counts add)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from neuronshapley.errors import MergeError
from neuronshapley.estimators.bounds import normal_halfwidth
from neuronshapley.estimators.checkpoint import load_state
from neuronshapley.estimators.stats import RunningStats
from neuronshapley.result import ShapleyResult

_SAME = ("method", "n_players", "params", "game")


def _state_of(run: ShapleyResult | str | os.PathLike[str]
              ) -> tuple[dict[str, np.ndarray], dict[str, Any], ShapleyResult | None]:
    if isinstance(run, ShapleyResult):
        if run.state is None:
            raise MergeError(f"a {run.method!r} result carries no estimator state to merge")
        return run.state[0], run.state[1], run
    arrays, facts = load_state(run)
    has_values = os.path.exists(os.path.join(run, "values.csv"))
    meta = ShapleyResult.load(run) if has_values else None
    return arrays, facts, meta


def merge_results(runs: Sequence[ShapleyResult | str | os.PathLike[str]],
                  confidence: float = 0.95, trust_unfingerprinted: bool = False
                  ) -> ShapleyResult:
    """Pool the marginals of independent runs (different seeds) of the same game.

    Each run is a result in memory or a folder written by ``result.save`` / a checkpoint.
    The runs must agree on method, players, parameters and the game's fingerprint, and
    have different seeds (the same seed would count the same walks twice). Runs of a game
    without ``fingerprint()`` cannot be checked to be of the same game: they are refused
    unless ``trust_unfingerprinted=True``. The merged intervals are per-unit normal
    intervals at ``confidence``.
    """
    if len(runs) < 2:
        raise MergeError("merging needs at least two runs")
    states = [_state_of(r) for r in runs]
    first = states[0][1]
    if any(facts.get("game") is None for _, facts, _ in states) and not trust_unfingerprinted:
        raise MergeError(
            "a run's game has no fingerprint() so the library cannot check that the runs are "
            "of the same game: pass trust_unfingerprinted=True if you are sure they are"
        )
    seeds = [facts.get("seed") for _, facts, _ in states]
    if len(set(map(str, seeds))) != len(seeds):
        raise MergeError(f"runs share a seed ({seeds}): they are not independent")
    for _, facts, _ in states[1:]:
        for key in _SAME:
            if facts.get(key) != first.get(key):
                raise MergeError(
                    f"runs differ in {key}: {first.get(key)!r} vs {facts.get(key)!r}; "
                    "only runs of the same game and estimator can be merged"
                )
    pooled: RunningStats | None = None
    evaluations = 0
    for arrays, facts, _ in states:
        stats = RunningStats.from_state(
            {k[len("stats."):]: v for k, v in arrays.items() if k.startswith("stats.")}
        )
        pooled = stats if pooled is None else pooled.merge(stats)
        evaluations += int(facts["evaluations"])
    assert pooled is not None
    hw = normal_halfwidth(pooled.variance(), pooled.count, confidence)
    template = next((meta for _, _, meta in states if meta is not None), None)
    n = pooled.mean.shape[0]
    players = template.players if template is not None else [f"p{i}" for i in range(n)]
    names = template.output_names if template is not None else None

    def sq(a: np.ndarray) -> np.ndarray:
        return a[:, 0] if a.shape[1] == 1 else a

    return ShapleyResult(
        sq(pooled.mean), sq(pooled.mean - hw), sq(pooled.mean + hw), pooled.count.copy(),
        evaluations, players, str(first["method"]), None, dict(first.get("params", {})),
        sum(float(m.wall_time) for _, _, m in states if m is not None), confidence, names,
        info={"merged_seeds": seeds, "merged_runs": len(runs)},
    )
