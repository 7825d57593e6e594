"""Seeded runs whose values were recorded from the code before the estimators became classes.

``CASES`` name a game, a method and options; ``pinned_values.json`` holds what each gave
(values, samples, evaluations). Runs here stop on their own (n_permutations, convergence,
enumeration), never on an evaluation budget, so they must stay bit for bit the same.
Regenerate only on purpose: ``python tests/estimators/pinned_cases.py``. The bandit's
cases with ``truncation=True`` keep its earlier default (zero-fill truncation) so that their
recorded values still apply; ``tmab-whole-walks`` was recorded with today's default, and
``auto-truncated`` again when ``auto`` moved to a whole pilot walk and Sobol permutations.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

from neuronshapley.games import UnanimityGame, WeightedThresholdGame

PINNED = Path(__file__).with_name("pinned_values.json")


def unanimity(n: int = 20) -> UnanimityGame:
    return UnanimityGame.random(n, n_terms=30, max_size=4, rng=np.random.default_rng(0))


def collapse(n: int = 30) -> WeightedThresholdGame:
    w = np.random.default_rng(3).integers(1, 20, size=n)
    return WeightedThresholdGame.collapse(w, midpoint=0.5 * w.sum(), steepness=0.15)


def neuron(n: int = 40) -> WeightedThresholdGame:
    return WeightedThresholdGame.neuron_like(n, 3)


GAMES = {"unanimity": unanimity, "collapse": collapse, "neuron": neuron,
         "small": functools.partial(unanimity, 10)}

CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "exact": ("small", "exact", {}),
    "permutation": ("unanimity", "permutation", {"n_permutations": 30}),
    "permutation-strata": ("unanimity", "permutation", {"n_permutations": 30, "strata": 3}),
    "permutation-surrogate": ("collapse", "permutation",
                              {"n_permutations": 40, "control": "surrogate"}),
    "truncated-zero": ("neuron", "truncated", {"n_permutations": 30}),
    "truncated-share": ("neuron", "truncated", {"n_permutations": 30, "truncation_fill": "share"}),
    "truncated-roulette": ("neuron", "truncated",
                           {"n_permutations": 30, "truncation_fill": "roulette", "strata": 2}),
    "tmab": ("neuron", "tmab", {"k": 3, "truncation": True}),
    "tmab-paper": ("neuron", "tmab", {"k": 3, "sampling": "walk", "rule": "paper",
                                      "bound": "bernstein", "epsilon": 0.02,
                                      "truncation": True}),
    "tmab-whole-walks": ("neuron", "tmab", {"k": 3}),
    "tmab-direct": ("neuron", "tmab", {"k": 3, "sampling": "direct", "truncation": False}),
    "tmab-shared": ("neuron", "tmab", {"k": 3, "sampling": "shared", "truncation": True}),
    "tmab-normal": ("neuron", "tmab", {"k": 3, "bound": "normal", "min_samples": 20,
                                       "truncation": True}),
    "tmab-local": ("neuron", "tmab", {"k": 2, "bound": "bernstein-local", "min_samples": 30,
                                      "truncation": True}),
    "tmab-plain": ("unanimity", "tmab", {"k": 2, "adaptive": False, "sampling": "walk",
                                         "truncation": False, "epsilon": 0.01}),
    "tmab-strata": ("neuron", "tmab", {"k": 3, "strata": 4, "epsilon": 0.01, "truncation": True}),
    "auto-exact": ("small", "auto", {}),
    "auto-truncated": ("neuron", "auto", {"n_permutations": 40}),
    "auto-tmab": ("neuron", "auto", {"k": 3, "truncation": True}),
}

DISTRIBUTED: dict[str, tuple[str, dict[str, Any]]] = {
    "dist-tmab": ("tmab", {"k": 3, "batch": 16, "max_evaluations": 40_000, "truncation": True}),
    "dist-truncated": ("truncated", {"n_permutations": 20, "batch": 5}),
    "dist-permutation": ("permutation", {"n_permutations": 12, "batch": 4}),
}
DIST_FACTORY = functools.partial(WeightedThresholdGame.neuron_like, 40, 3)


def run_case(name: str) -> Any:
    import neuronshapley as ns

    game, method, options = CASES[name]
    return ns.estimate(GAMES[game](), method=method, seed=5, **options)


def run_distributed(name: str) -> Any:
    from neuronshapley.distributed import estimate_distributed

    method, options = DISTRIBUTED[name]
    return estimate_distributed(DIST_FACTORY, method=method, seed=7, workers=0, **options)


def record(res: Any) -> dict[str, Any]:
    return {"values": np.asarray(res.values).tolist(), "samples": res.samples.tolist(),
            "evaluations": int(res.evaluations), "method": res.method}


if __name__ == "__main__":
    out = {name: record(run_case(name)) for name in CASES}
    out.update({name: record(run_distributed(name)) for name in DISTRIBUTED})
    PINNED.write_text(json.dumps(out, indent=0) + "\n")
    print(f"wrote {len(out)} cases to {PINNED}")
