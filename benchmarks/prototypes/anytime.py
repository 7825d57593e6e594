"""Anytime accuracy of walk designs and regression adjustment at small budgets.

For each design (uniform / antithetic / position-stratified walks, roulette truncation,
regression adjustment with a fitted logistic surrogate and an estimated or fixed
coefficient) one run per seed is snapshot at each budget; reported: mean tolerant p@10
(a unit counts when its true value is within twice the reference's standard error of the
10th; exact truth for closed-form games), Spearman correlation, and seconds.

    python benchmarks/prototypes/anytime.py --game collapse [--seeds 5]
    python benchmarks/prototypes/anytime.py --game digits [--seeds 3]

Writes ``benchmarks/results/research_anytime_<game>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from ranking_proto import AnytimeWalks  # noqa: E402

RESULTS = HERE.parent / "results"
BUDGETS = [250, 500, 750, 1000, 1500, 2000]
DESIGNS = {
    "iid, whole walks": {"design": "iid", "keep": None},
    "antithetic, whole walks": {"design": "antithetic", "keep": None},
    "sobol, whole walks": {"design": "sobol", "keep": None},
    "strata 4, whole walks": {"design": "strata", "keep": None},
    "sobol, roulette": {"design": "sobol"},
    "iid, roulette": {"design": "iid"},
    "strata 4, roulette (library auto)": {"design": "strata"},
    "antithetic, roulette": {"design": "antithetic"},
    "strata 4, roulette, regression (beta est.)": {"design": "strata", "adjust": "estimated"},
    "antithetic, roulette, regression (beta est.)": {"design": "antithetic",
                                                     "adjust": "estimated"},
    "strata 4, roulette, regression (beta 1)": {"design": "strata", "adjust": "fixed"},
    "strata 4, whole walks, regression (beta est.)": {"design": "strata", "keep": None,
                                                      "adjust": "estimated"},
}


def tolerant_p(values: np.ndarray, truth: np.ndarray, stderr: np.ndarray, k: int = 10
               ) -> float:
    order = np.argsort(-truth, kind="stable")
    kth = truth[order[k - 1]]
    tol = 2.0 * stderr[order[k - 1]] + 1e-12
    est = np.argsort(-values, kind="stable")[:k]
    return float(np.mean(truth[est] >= kth - tol))


def load(name: str):
    if name == "collapse":
        from neuronshapley.games import WeightedThresholdGame

        g = WeightedThresholdGame.neuron_like(80, rng=np.random.default_rng(5))
        return g, g.shapley_values(), np.zeros(80)
    if name == "collapse200":
        from neuronshapley.games import WeightedThresholdGame

        g = WeightedThresholdGame.neuron_like(200, rng=np.random.default_rng(0))
        return g, g.shapley_values(), np.zeros(200)
    if name == "unanimity":
        from neuronshapley.games import UnanimityGame

        g = UnanimityGame.random(200, n_terms=600, max_size=8, rng=np.random.default_rng(1))
        return g, g.shapley_values(), np.zeros(200)
    from common import digits_game, set_threads

    set_threads(1)
    ref = np.load(RESULTS / "digits_reference.npz")
    g = digits_game()
    assert str(ref["fingerprint"]) == g.fingerprint(), "reference is for another game"
    return g, ref["values"], ref["stderr"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--game", choices=("collapse", "collapse200", "unanimity", "digits"),
                    default="collapse")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--designs", default=None, help="comma-separated indices")
    ap.add_argument("--budgets", default=None, help="comma-separated evaluation budgets")
    args = ap.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")] if args.budgets else BUDGETS
    game, truth, stderr = load(args.game)
    n = len(truth)
    names = list(DESIGNS)
    if args.designs:
        names = [names[int(i)] for i in args.designs.split(",")]
    out: dict = {"game": args.game, "budgets": budgets, "seeds": args.seeds, "designs": {}}
    for name in names:
        rows = []
        for seed in range(args.seeds):
            est = AnytimeWalks(game, n, seed, **{"keep": 0.1, **DESIGNS[name]})
            t0 = time.perf_counter()
            for b in budgets:
                est.run_to(b)
                v = est.estimate()
                rows.append({"seed": seed, "budget": b, "evaluations": est.evaluations,
                             "seconds": time.perf_counter() - t0,
                             "p@10_tol": tolerant_p(v, truth, stderr),
                             "spearman": float(spearmanr(v, truth).statistic)})
        out["designs"][name] = rows
        line = " ".join(
            f"{b}:{np.mean([r['p@10_tol'] for r in rows if r['budget'] == b]):.2f}"
            for b in budgets)
        print(f"{name}: {line}", flush=True)
    path = RESULTS / f"research_anytime_{args.game}.json"
    old = json.loads(path.read_text()) if path.exists() else {"designs": {}}
    old["designs"].update(out["designs"])
    out["designs"] = old["designs"]
    path.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
