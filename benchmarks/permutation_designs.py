"""Which permutations to walk: independent, position strata or a Sobol sequence.

The library's walk estimators (``method="permutation"`` and ``"truncated"`` with roulette
fill) on the same games, one run per seed, each snapshot at every budget of the grid by the
anytime iterator. Reported per design and budget: mean tolerant precision@10 (a unit counts
when its true value is within twice the reference's standard error of the 10th value; exact
values and ties on the closed-form games) and the root-mean-square error over all units.

    python benchmarks/permutation_designs.py                  # closed-form games + digits
    python benchmarks/permutation_designs.py --no-digits --seeds 6

Writes ``results/permutation_designs.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from common import RESULTS, save_json, set_threads
from estimators import BenchGame, closed_form_games, digits_bench_game, precision_at_k

from neuronshapley.estimators import MonteCarlo, Truncated, Truncation
from neuronshapley.games import WeightedThresholdGame

#: design name -> (truncated with roulette fill?, estimator options)
DESIGNS: dict[str, tuple[bool, dict[str, Any]]] = {
    "independent, whole walks": (False, {}),
    "Sobol, whole walks": (False, {"permutations": "sobol"}),
    "4 strata, whole walks": (False, {"strata": 4}),
    "independent, roulette": (True, {}),
    "4 strata, roulette (auto before)": (True, {"strata": 4}),
    "Sobol, roulette (auto now)": (True, {"permutations": "sobol"}),
}


def trajectory(bg: BenchGame, seed: int, budgets: list[int], roulette: bool,
               options: dict[str, Any]) -> list[dict[str, float]]:
    """One run snapshot at each budget: tolerant p@10 and RMSE."""
    common = {"seed": seed, "max_evaluations": max(budgets), **options}
    est = (Truncated(truncation=Truncation(fill="roulette"), **common) if roulette
           else MonteCarlo(**common))
    t0 = time.perf_counter()
    rows = []
    for budget, res in zip(budgets, est.iterate(bg.game, at=budgets), strict=False):
        values = np.asarray(res.values, dtype=np.float64)
        rows.append({"seed": seed, "budget": budget, "evaluations": res.evaluations,
                     "seconds": time.perf_counter() - t0,
                     "p@10_tol": precision_at_k(values, bg, 10)[1],
                     "rmse": float(np.sqrt(np.mean((values - bg.truth) ** 2)))})
    return rows


def games(digits: bool) -> list[tuple[BenchGame, list[int]]]:
    small = WeightedThresholdGame.neuron_like(80, rng=np.random.default_rng(5))
    out = [(BenchGame("collapse-80", small, 80, small.shapley_values(), np.zeros(80)),
            [250, 500, 1000, 2000])]
    out += [(bg, [1000, 2000, 5000, 10000]) for bg in closed_form_games(200)]
    if digits:
        bg = digits_bench_game()
        if bg is not None:
            out.append((bg, [250, 500, 1000, 2000]))
    return out


def auto_choices(seeds: int = 4, budget: int = 3000) -> dict[str, list[str]]:
    """What ``method="auto"``'s pilot chooses on each closed-form game, per seed."""
    import neuronshapley as ns

    revive = WeightedThresholdGame.reviving(50, rng=2)
    named = [(bg.name, bg.game) for bg, _ in games(False)] + [("reviving-50", revive)]
    out = {}
    for name, game in named:
        out[name] = [ns.estimate(game, method="auto", max_evaluations=budget, seed=s,
                                 progress=False).method for s in range(seeds)]
        print(f"auto on {name}: {out[name]}", flush=True)
    return out


def markdown(results: list[dict[str, Any]], choices: dict[str, list[str]] | None = None
             ) -> str:
    lines = ["# Permutation designs", "",
             "Mean tolerant precision@10 / RMSE over all units, by evaluation budget; one run "
             "per seed, one torch thread, snapshots of one run at every budget.", ""]
    for g in results:
        budgets = g["budgets"]
        lines += [f"## {g['game']} ({len(g['seeds'])} seeds)", "",
                  "| design | " + " | ".join(f"{b:,}" for b in budgets) + " |",
                  "| --- |" + " ---: |" * len(budgets)]
        for name, rows in g["designs"].items():
            cells = []
            for b in budgets:
                at = [r for r in rows if r["budget"] == b]
                cells.append(f"{np.mean([r['p@10_tol'] for r in at]):.2f} / "
                             f"{np.mean([r['rmse'] for r in at]):.4f}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    if choices:
        lines += ["## What auto's pilot chose (4 seeds, budget 3,000)", "",
                  "| game | truncated (roulette) | whole walks |", "| --- | ---: | ---: |"]
        lines += [f"| {name} | {got.count('truncated')} | {got.count('permutation')} |"
                  for name, got in choices.items()]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=12)
    ap.add_argument("--digits-seeds", type=int, default=10)
    ap.add_argument("--no-digits", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--auto-only", action="store_true",
                    help="only what auto's pilot chooses (kept with the saved designs)")
    args = ap.parse_args()
    set_threads(args.threads)
    path = RESULTS / "permutation_designs.json"
    if args.auto_only:
        import json

        saved = json.loads(path.read_text())
        saved["auto_choices"] = auto_choices()
        save_json("permutation_designs", {k: v for k, v in saved.items()
                                          if k in ("results", "auto_choices")})
        md = markdown(saved["results"], saved["auto_choices"])
        (RESULTS / "permutation_designs.md").write_text(md + "\n")
        print(md)
        return
    results = []
    for bg, budgets in games(not args.no_digits):
        seeds = list(range(args.digits_seeds if bg.name.startswith("digits") else args.seeds))
        out: dict[str, Any] = {"game": bg.name, "budgets": budgets, "seeds": seeds,
                               "designs": {}}
        for name, (roulette, options) in DESIGNS.items():
            rows = [r for s in seeds for r in trajectory(bg, s, budgets, roulette, options)]
            out["designs"][name] = rows
            print(f"{bg.name} | {name}: " + " ".join(
                f"{b}:{np.mean([r['p@10_tol'] for r in rows if r['budget'] == b]):.2f}"
                for b in budgets), flush=True)
        results.append(out)
        save_json("permutation_designs", {"results": results})
        (RESULTS / "permutation_designs.md").write_text(markdown(results) + "\n")
    choices = auto_choices()
    save_json("permutation_designs", {"results": results, "auto_choices": choices})
    md = markdown(results, choices)
    (RESULTS / "permutation_designs.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
