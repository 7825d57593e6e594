"""Estimators side by side on the same games: evaluations and time to a reliable top-k.

For every game and method, over several seeds: precision@k of the estimated top-k (strict,
and tolerant: a unit counts as correct when its true value is within the reference's
resolution of the k-th true value), Spearman correlation and relative error over all units,
coalitions evaluated and wall time. Anytime methods (plain and truncated Monte-Carlo, peers)
run on a budget grid; self-stopping ones (TMAB) run to their own stop. The budget each method
needs to reach mean tolerant precision@k >= 0.9 is reported.

    python benchmarks/estimators.py                 # closed-form games + digits game
    python benchmarks/estimators.py --quick         # fewer seeds and budgets

Writes ``results/estimators.json`` and ``results/estimators.md``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from common import RESULTS, digits_game, save_json, set_threads
from scipy.stats import spearmanr

import neuronshapley as ns
from neuronshapley.estimators import MonteCarlo, Truncated, Truncation
from neuronshapley.games import UnanimityGame, WeightedThresholdGame


@dataclass
class BenchGame:
    name: str
    game: Any
    n: int
    truth: np.ndarray
    resolution: np.ndarray  # per-unit standard error of the truth (0 for closed form)


class CountingGame:
    """Wraps a game to count evaluations (for peers that do not report them)."""

    def __init__(self, game: Any) -> None:
        self.game, self.n_players, self.evaluations = game, game.n_players, 0

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        self.evaluations += len(masks)
        return np.asarray(self.game(masks), dtype=np.float64).reshape(len(masks))


# ------------------------------------------------------------------- scoring
def precision_at_k(values: np.ndarray, bg: BenchGame, k: int) -> tuple[float, float]:
    """(strict, tolerant) precision of the estimated top-k against the truth."""
    est = np.argsort(-values, kind="stable")[:k]
    true_order = np.argsort(-bg.truth, kind="stable")
    strict = len(set(est) & set(true_order[:k])) / k
    kth = bg.truth[true_order[k - 1]]
    tol = 2.0 * bg.resolution[true_order[k - 1]] + 1e-12
    tolerant = float(np.mean(bg.truth[est] >= kth - tol))
    return strict, tolerant


def score(values: np.ndarray, bg: BenchGame, ks: tuple[int, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k in ks:
        out[f"p@{k}"], out[f"p@{k}_tol"] = precision_at_k(values, bg, k)
    out["spearman"] = float(spearmanr(values, bg.truth).statistic)
    out["rel_err"] = float(np.linalg.norm(values - bg.truth) / np.linalg.norm(bg.truth))
    return out


# ------------------------------------------------------------------- methods
def mc_trajectory(bg: BenchGame, seed: int, budgets: list[int], truncation: Truncation | None,
                  strata: int = 1, control: str | None = None
                  ) -> list[tuple[np.ndarray, int, float]]:
    """One run of the library's walk estimator, snapshot at each budget.

    Returns (values, evaluations, seconds) per budget, from the estimator's anytime
    iterator (pooled walks, optional control variate; the largest budget is never passed).
    """
    t0 = time.perf_counter()
    options = {"seed": seed, "max_evaluations": max(budgets), "strata": strata,
               "control": control}
    est = (MonteCarlo(**options) if truncation is None
           else Truncated(truncation=truncation, **options))
    snaps = [(np.asarray(r.values, dtype=np.float64).copy(), r.evaluations,
              time.perf_counter() - t0) for r in est.iterate(bg.game, at=sorted(budgets))]
    return snaps[: len(budgets)] + [snaps[-1]] * (len(budgets) - len(snaps))


def captum_svs(bg: BenchGame, seed: int, budget: int) -> tuple[np.ndarray, int, float]:
    """Captum's ShapleyValueSampling over the mask input, batched like our engine."""
    import torch
    from captum.attr import ShapleyValueSampling

    counting = CountingGame(bg.game)

    def forward(masks: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(counting(masks.detach().numpy() > 0.5))

    torch.manual_seed(seed)
    t0 = time.perf_counter()
    n_samples = max(1, budget // (bg.n + 1))
    attr = ShapleyValueSampling(forward).attribute(
        torch.ones(1, bg.n, dtype=torch.float64), baselines=torch.zeros(1, bg.n,
                                                                        dtype=torch.float64),
        n_samples=n_samples, perturbations_per_eval=min(64, bg.n),
    )
    return attr[0].numpy(), counting.evaluations, time.perf_counter() - t0


def shapiq_runner(name: str) -> Callable[[BenchGame, int, int], tuple[np.ndarray, int, float]]:
    """A shapiq Shapley-value approximator by class name, given our game."""

    def run(bg: BenchGame, seed: int, budget: int) -> tuple[np.ndarray, int, float]:
        import shapiq

        counting = CountingGame(bg.game)

        def value(coalitions: np.ndarray) -> np.ndarray:
            return counting(np.atleast_2d(np.asarray(coalitions, dtype=bool)))

        t0 = time.perf_counter()
        approximator = getattr(shapiq.approximator, name)(n=bg.n, random_state=seed)
        values = approximator.approximate(budget, value).get_n_order_values(1)
        return np.asarray(values, dtype=np.float64), counting.evaluations, \
            time.perf_counter() - t0

    return run


def peers() -> dict[str, Callable[..., Any]]:
    """Peer estimators that are installed (benchmark-only dependencies)."""
    found: dict[str, Callable[..., Any]] = {}
    try:
        import captum  # noqa: F401

        found["captum-svs"] = captum_svs
    except ImportError:
        print("captum not installed: skipping it")
    try:
        import shapiq

        for name in ("PermutationSamplingSV", "StratifiedSamplingSV", "SVARM", "OwenSamplingSV",
                     "KernelSHAP"):
            if hasattr(shapiq.approximator, name):
                found[f"shapiq-{name}"] = shapiq_runner(name)
    except ImportError:
        print("shapiq not installed: skipping it")
    return found


def run_tmab(bg: BenchGame, seed: int, k: int, **options: Any) -> tuple[np.ndarray, int, float]:
    res = ns.estimate(bg.game, n_players=bg.n, method="tmab", seed=seed, k=k, **options)
    return res.values, res.evaluations, res.wall_time


# --------------------------------------------------------------------- games
def closed_form_games(n: int) -> list[BenchGame]:
    collapse = WeightedThresholdGame.neuron_like(n, rng=np.random.default_rng(0))
    unanimity = UnanimityGame.random(n, n_terms=3 * n, max_size=8, rng=np.random.default_rng(1))
    return [
        BenchGame(f"collapse-{n}", collapse, n, collapse.shapley_values(), np.zeros(n)),
        BenchGame(f"unanimity-{n}", unanimity, n, unanimity.shapley_values(), np.zeros(n)),
    ]


def digits_bench_game() -> BenchGame | None:
    path = RESULTS / "digits_reference.npz"
    if not path.exists():
        print("no digits reference: run benchmarks/make_reference.py first; skipping digits")
        return None
    ref = np.load(path)
    game = digits_game()
    if str(ref["fingerprint"]) != game.fingerprint():
        print("digits reference was made on another model/data (fingerprint differs); skipping")
        return None
    return BenchGame("digits-cnn", game, game.n_players, ref["values"], ref["stderr"])


# ---------------------------------------------------------------------- main
def budget_to_reach(rows: list[dict[str, Any]], key: str, target: float = 0.9) -> int | None:
    """Smallest budget whose mean ``key`` over seeds reaches ``target``."""
    by_budget: dict[int, list[float]] = {}
    for r in rows:
        by_budget.setdefault(r["budget"], []).append(r[key])
    for budget in sorted(by_budget):
        if np.mean(by_budget[budget]) >= target:
            return budget
    return None


def bench_game(bg: BenchGame, seeds: list[int], budgets: list[int], ks: tuple[int, ...],
               extra_methods: dict[str, Callable[..., Any]], tmab_cap: int,
               peer_time_cap: float = 120.0, skip_stopping: bool = False) -> dict[str, Any]:
    k = ks[0]
    out: dict[str, Any] = {"game": bg.name, "n": bg.n, "k": list(ks), "methods": {}}
    anytime = (("permutation", None, 1, None), ("truncated", Truncation(), 1, None),
               ("ours: truncated roulette + strata", Truncation(fill="roulette"), 4, None),
               ("ours + surrogate control variate", Truncation(fill="roulette"), 4,
                "surrogate"))
    for name, trunc, strata, control in anytime:
        rows = []
        for seed in seeds:
            for budget, (vals, evals, secs) in zip(
                sorted(budgets), mc_trajectory(bg, seed, budgets, trunc, strata, control),
                strict=True,
            ):
                rows.append({"seed": seed, "budget": budget, "evaluations": evals,
                             "seconds": secs, **score(vals, bg, ks)})
        out["methods"][name] = {"rows": rows}
        print(f"  {name}: done", flush=True)
    for name, runner in extra_methods.items():
        rows = []
        for seed in seeds:
            for budget in sorted(budgets):
                vals, evals, secs = runner(bg, seed, budget)
                rows.append({"seed": seed, "budget": budget, "evaluations": evals,
                             "seconds": secs, **score(vals, bg, ks)})
                if secs > peer_time_cap:  # larger budgets would take too long here
                    print(f"  {name}: {secs:.0f} s at budget {budget}; stopping its grid")
                    break
        out["methods"][name] = {"rows": rows}
        print(f"  {name}: done", flush=True)
    cap = {"max_evaluations": tmab_cap}
    stopping = (
        ("tmab (ours, betting, default)", {}),
        ("tmab (ours, Bernstein)", {"bound": "bernstein"}),
        ("tmab (ours, normal bound)", {"bound": "normal", "min_samples": 20}),
        ("tmab-paper", {"sampling": "walk", "rule": "paper", "bound": "bernstein"}),
        ("mc-certified", {"adaptive": False, "sampling": "walk"}),
    )
    for name, options in (() if skip_stopping else stopping):
        rows = []
        for seed in seeds:
            vals, evals, secs = run_tmab(bg, seed, k, **cap, **options)
            rows.append({"seed": seed, "budget": evals, "evaluations": evals, "seconds": secs,
                         **score(vals, bg, ks)})
        out["methods"][name] = {"rows": rows}
        print(f"  {name}: done", flush=True)
    for m in out["methods"].values():
        rows = m["rows"]
        m["budget_p@k_tol>=0.9"] = budget_to_reach(rows, f"p@{k}_tol")
        m["budget_p@k>=0.9"] = budget_to_reach(rows, f"p@{k}")
    return out


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["# Estimator benchmark", ""]
    for g in results:
        k = g["k"][0]
        lines += [f"## {g['game']} (n={g['n']}, k={k})", "",
                  f"| method | evaluations for tolerant p@{k} >= 0.9 | for strict p@{k} >= 0.9 "
                  f"| at largest budget: tolerant p@{k} | strict p@{k} | Spearman | rel. error "
                  "| seconds |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name, m in g["methods"].items():
            rows = m["rows"]
            last = max(r["budget"] for r in rows)
            stops = name.startswith(("tmab", "mc-certified"))
            final = rows if stops else [r for r in rows if r["budget"] == last]
            def mean(key: str, final: list[dict[str, Any]] = final) -> float:
                return float(np.mean([r[key] for r in final]))
            tol_b = m["budget_p@k_tol>=0.9"]
            strict_b = m["budget_p@k>=0.9"]
            if stops:
                evals = int(np.mean([r["evaluations"] for r in rows]))
                tol_b = f"{evals} (own stop)" if mean(f"p@{k}_tol") >= 0.9 else "not reached"
                strict_b = f"{evals} (own stop)" if mean(f"p@{k}") >= 0.9 else "not reached"
            lines.append(
                f"| {name} | {tol_b if tol_b is not None else 'not reached'} | "
                f"{strict_b if strict_b is not None else 'not reached'} | "
                f"{mean(f'p@{k}_tol'):.2f} | {mean(f'p@{k}'):.2f} | {mean('spearman'):.3f} | "
                f"{mean('rel_err'):.3f} | {mean('seconds'):.1f} |"
            )
        lines += ["", f"Mean tolerant p@{k} (mean seconds) by budget:", ""]
        anytime = {name: m for name, m in g["methods"].items()
                   if not name.startswith(("tmab", "mc-certified"))}
        budgets = sorted({r["budget"] for m in anytime.values() for r in m["rows"]})
        lines += ["| method | " + " | ".join(f"{b}" for b in budgets) + " |",
                  "| --- |" + " ---: |" * len(budgets)]
        for name, m in anytime.items():
            cells = []
            for b in budgets:
                at = [r for r in m["rows"] if r["budget"] == b]
                cells.append(f"{np.mean([r[f'p@{k}_tol'] for r in at]):.2f} "
                             f"({np.mean([r['seconds'] for r in at]):.1f} s)" if at else "-")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-digits", action="store_true")
    ap.add_argument("--only-digits", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--digits-seeds", type=int, default=3)
    ap.add_argument("--digits-peers", default=None, help="comma-separated peer names")
    ap.add_argument("--digits-tmab-cap", type=int, default=40_000)
    ap.add_argument("--digits-skip-stopping", action="store_true",
                    help="anytime methods and peers only (the TMAB variants need a long run)")
    ap.add_argument("--tag", default="", help="suffix of the result files")
    args = ap.parse_args()
    set_threads(args.threads)
    seeds = list(range(args.seeds or (2 if args.quick else 5)))
    results = []
    for bg in ([] if args.only_digits else closed_form_games(200)):
        print(f"{bg.name}:")
        budgets = [2000, 5000, 10000, 20000] if args.quick else \
            [1000, 2000, 5000, 10000, 20000, 50000]
        results.append(bench_game(bg, seeds, budgets, (10, 20), peers(), 400_000))
    if not args.no_digits:
        bg = digits_bench_game()
        if bg is not None:
            print(f"{bg.name}:")
            budgets = [1000, 2000, 5000, 10000] if args.quick else \
                [1000, 2000, 5000, 10000, 20000]
            chosen = {k: v for k, v in peers().items()
                      if args.digits_peers is None or k in args.digits_peers.split(",")}
            results.append(bench_game(bg, seeds[:args.digits_seeds], budgets, (10, 20),
                                      chosen, args.digits_tmab_cap, peer_time_cap=1e9,
                                      skip_stopping=args.digits_skip_stopping))
    md = markdown(results)
    print(md)
    name = "estimators-digits" if args.only_digits else (
        "estimators-closed-form" if args.no_digits else "estimators")
    name += args.tag
    save_json(name, {"results": results})
    (RESULTS / f"{name}.md").write_text(md + "\n")


if __name__ == "__main__":
    main()
