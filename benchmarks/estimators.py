"""Estimators side by side on the same games: evaluations and time to a reliable top-k.

For every game and method, over several seeds: precision@k of the estimated top-k (strict,
and tolerant: a unit counts as correct when its true value is within the reference's
resolution of the k-th true value), Spearman correlation and relative error over all units,
coalitions evaluated and wall time. Ours: the default ``estimate`` (TMAB, run to its own
stop: its joint intervals' ``top_k_status()`` says whether the top-k is certified), ``auto``,
truncated walks with roulette fill and plain Monte-Carlo (``permutation``). Peers: Captum's
ShapleyValueSampling and every shapiq approximator installed (SVARM and Owen sampling; shapiq
1.8's RegressionMSR, ProxySHAP, OddSHAP, LeverageSHAP, PolySHAP). Anytime methods run on a
budget grid; the budget each needs to reach mean tolerant precision@k >= 0.9 is reported,
and the goals of the default estimator are checked against the same run.

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
                  strata: int = 1, control: str | None = None, permutations: str = "random"
                  ) -> list[tuple[np.ndarray, int, float]]:
    """One run of the library's walk estimator, snapshot at each budget.

    Returns (values, evaluations, seconds) per budget, from the estimator's anytime
    iterator (pooled walks, optional control variate; the largest budget is never passed).
    """
    t0 = time.perf_counter()
    options = {"seed": seed, "max_evaluations": max(budgets), "strata": strata,
               "control": control, "permutations": permutations}
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


#: shapiq approximators compared (SVARM, Owen sampling: shapiq 1.4 era; the others 1.8) and
#: the options that make each estimate Shapley values (order 1)
SHAPIQ_PEERS: dict[str, dict[str, Any]] = {
    "RegressionMSR": {"index": "SV"}, "ProxySHAP": {"index": "SV", "max_order": 1},
    "LeverageSHAP": {}, "OddSHAP": {}, "OwenSamplingSV": {}, "SVARM": {}, "PolySHAP": {},
}
#: PolySHAP regresses on all pairs: skip budgets whose design matrix (budget x n^2 / 2
#: entries) would not fit this machine's memory (8.5 GB were measured at n=200, 10,000)
POLY_MAX_ENTRIES = 5e7


def peer_fits(name: str, n: int, budget: int) -> bool:
    """Whether a peer run at this size fits in memory here."""
    return not name.endswith("PolySHAP") or budget * n * (n + 1) / 2 <= POLY_MAX_ENTRIES


def shapiq_runner(name: str) -> Callable[[BenchGame, int, int], tuple[np.ndarray, int, float]]:
    """A shapiq Shapley-value approximator by class name, given our game."""

    def run(bg: BenchGame, seed: int, budget: int) -> tuple[np.ndarray, int, float]:
        import shapiq

        counting = CountingGame(bg.game)

        def value(coalitions: np.ndarray) -> np.ndarray:
            return counting(np.atleast_2d(np.asarray(coalitions, dtype=bool)))

        t0 = time.perf_counter()
        approximator = getattr(shapiq.approximator, name)(n=bg.n, random_state=seed,
                                                          **SHAPIQ_PEERS[name])
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

        for name in SHAPIQ_PEERS:
            if hasattr(shapiq.approximator, name):
                found[f"shapiq-{name}"] = shapiq_runner(name)
            else:
                print(f"shapiq {shapiq.__version__} has no {name}: skipping it")
    except ImportError:
        print("shapiq not installed: skipping it")
    return found


def capped_tmab(k: int) -> Callable[[BenchGame, int, int], tuple[np.ndarray, int, float]]:
    """The default estimator stopped at a budget (``max_evaluations``): its anytime use."""

    def run(bg: BenchGame, seed: int, budget: int) -> tuple[np.ndarray, int, float]:
        r = run_tmab(bg, seed, k, max_evaluations=budget)
        return r["values"], r["evaluations"], r["seconds"]

    return run


def run_auto(bg: BenchGame, seed: int, budget: int) -> tuple[np.ndarray, int, float]:
    """``method="auto"`` at one budget (it sizes its strata by the budget)."""
    res = ns.estimate(bg.game, n_players=bg.n, method="auto", seed=seed,
                      max_evaluations=budget, progress=False)
    return res.values, res.evaluations, res.wall_time


def run_tmab(bg: BenchGame, seed: int, k: int, **options: Any) -> dict[str, Any]:
    """The default estimator (TMAB) to its own stop; whether its top-k is certified."""
    res = ns.estimate(bg.game, n_players=bg.n, method="tmab", seed=seed, k=k,
                      progress=False, **options)
    status = res.top_k_status(k)
    top = np.argsort(-res.values, kind="stable")[:k]
    all_in = status is not None and all(status[i] == "in" for i in top)
    converged = bool(res.info.get("converged", False))
    return {"values": res.values, "evaluations": res.evaluations, "seconds": res.wall_time,
            "intervals": res.intervals, "top_k_all_in": all_in, "converged": converged,
            "certified": all_in or converged,
            "undecided": None if status is None else status.count("undecided")}


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


def grid_rows(bg: BenchGame, name: str, runner: Callable[..., Any], seeds: list[int],
              budgets: list[int], ks: tuple[int, ...], time_cap: float,
              stop_at_target: bool) -> list[dict[str, Any]]:
    """A non-anytime method at each budget (ascending), every seed at each.

    The grid stops before a budget whose mean seconds, scaled from the previous budget,
    would exceed ``time_cap``, after the first budget where mean tolerant p@k reaches 0.9
    (``stop_at_target``), and before a budget the method cannot hold in memory here.
    """
    rows: list[dict[str, Any]] = []
    for budget in sorted(budgets):
        if rows and np.mean([r["seconds"] for r in rows if r["budget"] == rows[-1]["budget"]]
                            ) * budget / rows[-1]["budget"] > time_cap:
            print(f"  {name}: budget {budget} would take over {time_cap:.0f} s a run; "
                  "stopping its grid")
            break
        if not peer_fits(name, bg.n, budget):
            print(f"  {name}: budget {budget} would not fit in memory; stopping its grid")
            break
        at = []
        for seed in seeds:
            vals, evals, secs = runner(bg, seed, budget)
            at.append({"seed": seed, "budget": budget, "evaluations": evals,
                       "seconds": secs, **score(vals, bg, ks)})
        rows += at
        if stop_at_target and np.mean([r[f"p@{ks[0]}_tol"] for r in at]) >= 0.9:
            break
    return rows


def bench_game(bg: BenchGame, seeds: list[int], budgets: list[int], ks: tuple[int, ...],
               extra_methods: dict[str, Callable[..., Any]], tmab_cap: int,
               peer_time_cap: float = 120.0, stop_at_target: bool = False,
               saved: Callable[[dict[str, Any]], None] | None = None,
               shapiq_budgets: list[int] | None = None) -> dict[str, Any]:
    """Every method on one game; ``saved(partial)`` after each (results survive a stop).
    ``shapiq_budgets``: a shorter grid for the shapiq peers (default ``budgets``)."""
    k = ks[0]
    out: dict[str, Any] = {"game": bg.name, "n": bg.n, "k": list(ks), "seeds": seeds,
                           "budgets": sorted(budgets), "methods": {}}
    rows = []
    for seed in seeds:  # the default estimator first: it runs to its own stop
        r = run_tmab(bg, seed, k, max_evaluations=tmab_cap)
        rows.append({"seed": seed, "budget": r["evaluations"], **{
            key: v for key, v in r.items() if key != "values"}, **score(r["values"], bg, ks)})
    out["methods"][DEFAULT] = {"rows": rows, "cap": tmab_cap}
    print(f"  {DEFAULT}: done", flush=True)
    out["methods"][CAPPED] = {"rows": grid_rows(
        bg, CAPPED, capped_tmab(k), seeds, budgets, ks, peer_time_cap, stop_at_target)}
    print(f"  {CAPPED}: done", flush=True)
    out["methods"]["ours: auto"] = {"rows": grid_rows(
        bg, "auto", run_auto, seeds, budgets, ks, peer_time_cap, stop_at_target)}
    print("  ours: auto: done", flush=True)
    anytime = (("ours: truncated, roulette fill", Truncation(fill="roulette"), "random"),
               ("ours: truncated, roulette fill, Sobol", Truncation(fill="roulette"), "sobol"),
               ("ours: permutation (plain Monte-Carlo)", None, "random"),
               ("ours: permutation, Sobol", None, "sobol"))
    for name, trunc, perms in anytime:
        rows = []
        for seed in seeds:
            for budget, (vals, evals, secs) in zip(
                sorted(budgets), mc_trajectory(bg, seed, budgets, trunc, permutations=perms),
                strict=True,
            ):
                rows.append({"seed": seed, "budget": budget, "evaluations": evals,
                             "seconds": secs, **score(vals, bg, ks)})
        out["methods"][name] = {"rows": rows}
        print(f"  {name}: done", flush=True)
    for name, runner in extra_methods.items():
        if saved is not None:
            saved(finish(out))
        grid = shapiq_budgets if shapiq_budgets and name.startswith("shapiq") else budgets
        out["methods"][name] = {"rows": grid_rows(bg, name, runner, seeds, grid, ks,
                                                  peer_time_cap, stop_at_target)}
        print(f"  {name}: done", flush=True)
        if saved is not None:
            saved(finish(out))
    return finish(out)


def finish(out: dict[str, Any]) -> dict[str, Any]:
    """Budgets to reach 0.9 and the goals, from the rows so far."""
    k = out["k"][0]
    for m in out["methods"].values():
        rows = m["rows"]
        m["budget_p@k_tol>=0.9"] = budget_to_reach(rows, f"p@{k}_tol")
        m["budget_p@k>=0.9"] = budget_to_reach(rows, f"p@{k}")
        reach = m["budget_p@k_tol>=0.9"]
        at = [r for r in rows if r["budget"] == reach]
        m["seconds_p@k_tol>=0.9"] = float(np.mean([r["seconds"] for r in at])) if at else None
    out["goals"] = goals(out)
    return out


DEFAULT = "ours: tmab (default estimate)"
CAPPED = "ours: tmab (default, stopped at the budget)"
PLAIN = "ours: permutation (plain Monte-Carlo)"


def goals(g: dict[str, Any]) -> dict[str, Any]:
    """The default estimator against the peers and plain Monte-Carlo, in this run."""
    k = g["k"][0]
    rows = g["methods"][DEFAULT]["rows"]
    evals = float(np.mean([r["evaluations"] for r in rows]))
    secs = float(np.mean([r["seconds"] for r in rows]))
    tol = float(np.mean([r[f"p@{k}_tol"] for r in rows]))
    out: dict[str, Any] = {
        "default_evaluations": evals, "default_seconds": secs, "default_p@k_tol": tol,
        "default_certified": f"{sum(r['certified'] for r in rows)}/{len(rows)}",
        "default_top_k_all_in": f"{sum(r['top_k_all_in'] for r in rows)}/{len(rows)}",
    }
    peers_reach = {name: (m["budget_p@k_tol>=0.9"], m["seconds_p@k_tol>=0.9"])
                   for name, m in g["methods"].items() if not name.startswith("ours")}
    out["peers_to_tol_0.9"] = peers_reach
    captum = peers_reach.get("captum-svs")
    if captum is not None and captum[0] is not None:
        out["evaluations_vs_captum"] = evals / captum[0]
        out["seconds_vs_captum"] = secs / captum[1]
    capped = g["methods"].get(CAPPED)
    if capped is not None:  # the default estimate stopped at a budget
        b, t = capped["budget_p@k_tol>=0.9"], capped["seconds_p@k_tol>=0.9"]
        out["capped_to_tol_0.9"] = b
        out["capped_seconds_to_tol_0.9"] = t
        if b is not None and captum is not None and captum[0] is not None:
            out["capped_evaluations_vs_captum"] = b / captum[0]
            out["capped_seconds_vs_captum"] = t / captum[1]
    ours = {name: (m["budget_p@k_tol>=0.9"], m["seconds_p@k_tol>=0.9"])
            for name, m in g["methods"].items()
            if name.startswith("ours") and name != DEFAULT and m["budget_p@k_tol>=0.9"]}
    if ours:
        best = min(ours, key=lambda name: ours[name][0])
        out["best_ours"] = [best, *ours[best]]
        if captum is not None and captum[0] is not None:
            out["best_ours_vs_captum"] = [ours[best][0] / captum[0], ours[best][1] / captum[1]]
    plain = g["methods"][PLAIN]["budget_p@k_tol>=0.9"] if PLAIN in g["methods"] else None
    out["plain_mc_to_tol_0.9"] = plain
    if plain is not None:
        out["certified_vs_plain_mc"] = evals / plain
    return out


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["# Estimator benchmark", "",
             "One run, one torch thread, on a shared 2-core CPU machine under load from other "
             "jobs (wall times are inflated and comparable only within this run). Tolerant "
             "p@k: a unit counts as right when its true value is within 2 reference standard "
             "errors of the k-th (exact ties on closed-form games). Non-anytime methods stop "
             "their grid at a time cap or once they reach 0.9.", ""]
    for g in results:
        k = g["k"][0]
        lines += [f"## {g['game']} (n={g['n']}, k={k}, seeds {g['seeds']}, budgets "
                  f"{g['budgets']})", "",
                  f"| method | evaluations for tolerant p@{k} >= 0.9 | for strict p@{k} >= 0.9 "
                  f"| at largest budget: tolerant p@{k} | strict p@{k} | Spearman | rel. error "
                  "| seconds |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name, m in g["methods"].items():
            rows = m["rows"]
            if not rows:
                lines.append(f"| {name} | not run (memory) | | | | | | |")
                continue
            last = max(r["budget"] for r in rows)
            stops = name == DEFAULT
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
                   if name != DEFAULT}
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
        lines += ["", *goal_lines(g), ""]
    return "\n".join(lines)


def goal_lines(g: dict[str, Any]) -> list[str]:
    """The default estimator's figures against the peers', in words."""
    go, k = g["goals"], g["k"][0]
    cap = g["methods"][DEFAULT]["cap"]
    lines = [f"Default estimator (TMAB, k={k}, cap {cap} evaluations): mean "
             f"{go['default_evaluations']:.0f} evaluations, {go['default_seconds']:.1f} s, "
             f"tolerant p@{k} {go['default_p@k_tol']:.2f}; certified (returned top-{k} all "
             f"'in', or converged up to epsilon) in {go['default_certified']} seeds, all 'in' "
             f"in {go['default_top_k_all_in']}."]
    if "evaluations_vs_captum" in go:
        lines.append(f"Against Captum at its first budget with tolerant p@{k} >= 0.9: "
                     f"{go['evaluations_vs_captum']:.2f}x its evaluations, "
                     f"{go['seconds_vs_captum']:.2f}x its wall time.")
    else:
        lines.append(f"Captum did not reach tolerant p@{k} >= 0.9 within the grid.")
    if "capped_to_tol_0.9" in go:
        b = go["capped_to_tol_0.9"]
        lines.append(f"The default estimator stopped at a budget reaches tolerant p@{k} >= 0.9 "
                     f"at {b if b is not None else 'no budget of the grid'}" + (
                         f" ({go['capped_evaluations_vs_captum']:.2f}x Captum's evaluations, "
                         f"{go['capped_seconds_vs_captum']:.2f}x its wall time)."
                         if "capped_evaluations_vs_captum" in go else "."))
    if "best_ours" in go:
        name, b, t = go["best_ours"]
        vs = go.get("best_ours_vs_captum")
        lines.append(f"Our fewest evaluations to tolerant p@{k} >= 0.9: {name}, {b} ({t:.1f} s)"
                     + (f": {vs[0]:.2f}x Captum's evaluations, {vs[1]:.2f}x its wall time."
                        if vs else "."))
    reach = {name: b for name, (b, _) in go["peers_to_tol_0.9"].items()}
    largest = {name: max((r["budget"] for r in m["rows"]), default=0)
               for name, m in g["methods"].items()}
    lines.append("Peers' evaluations to tolerant p@k >= 0.9: " + ", ".join(
        f"{name} {b}" if b is not None else f"{name} not reached within {largest[name]}"
        for name, b in reach.items()) + ".")
    if go.get("certified_vs_plain_mc") is not None:
        lines.append(f"Plain Monte-Carlo reaches it (uncertified) at {go['plain_mc_to_tol_0.9']}"
                     f" evaluations: the default run costs {go['certified_vs_plain_mc']:.1f}x "
                     "that.")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-digits", action="store_true")
    ap.add_argument("--only-digits", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--digits-seeds", type=int, default=3)
    ap.add_argument("--peers", default=None, help="comma-separated peer names")
    ap.add_argument("--tmab-cap", type=int, default=400_000, help="collapse game")
    ap.add_argument("--unanimity-tmab-cap", type=int, default=30_000)
    ap.add_argument("--digits-tmab-cap", type=int, default=5_000)
    ap.add_argument("--digits-budgets", default="250,500,1000,2000,5000")
    ap.add_argument("--digits-shapiq-budgets", default="2000",
                    help="the shapiq peers' grid on digits (its evaluations are the slow part)")
    ap.add_argument("--peer-time-cap", type=float, default=60.0,
                    help="stop a peer's budget grid after a budget slower than this (s)")
    ap.add_argument("--tag", default="", help="suffix of the result files")
    args = ap.parse_args()
    set_threads(args.threads)
    seeds = list(range(args.seeds or (2 if args.quick else 3)))
    chosen = {k: v for k, v in peers().items()
              if args.peers is None or k in args.peers.split(",")}
    name = "estimators-digits" if args.only_digits else (
        "estimators-closed-form" if args.no_digits else "estimators")
    name += args.tag
    results: list[dict[str, Any]] = []

    def saved(partial: dict[str, Any]) -> None:
        write(name, [*results, partial])

    for bg in ([] if args.only_digits else closed_form_games(200)):
        print(f"{bg.name}:")
        budgets = [2000, 5000, 10000, 20000] if args.quick else \
            [1000, 2000, 5000, 10000, 20000]
        cap = args.tmab_cap if bg.name.startswith("collapse") else args.unanimity_tmab_cap
        results.append(bench_game(bg, seeds, budgets, (10, 20), chosen, cap,
                                  peer_time_cap=args.peer_time_cap, stop_at_target=True,
                                  saved=saved))
    if not args.no_digits:
        bg = digits_bench_game()
        if bg is not None:
            print(f"{bg.name}:")
            budgets = [int(b) for b in args.digits_budgets.split(",")]
            results.append(bench_game(bg, seeds[:args.digits_seeds], budgets, (10, 20),
                                      chosen, args.digits_tmab_cap,
                                      peer_time_cap=args.peer_time_cap, stop_at_target=True,
                                      saved=saved, shapiq_budgets=[
                                          int(b) for b in args.digits_shapiq_budgets.split(",")]))
    print(write(name, results))


def write(name: str, results: list[dict[str, Any]]) -> str:
    """``results/<name>.json`` and ``.md``; returns the markdown."""
    md = markdown(results)
    save_json(name, {"results": results})
    (RESULTS / f"{name}.md").write_text(md + "\n")
    return md


if __name__ == "__main__":
    main()
