"""Scale: a fidelity game on EfficientNet-Lite0 (ImageNet): walks per hour on this CPU and
the time to a stable top-k.

V(S) = agreement of the network with S kept (others mean-replaced) with the full network's
own top-1, on ``--images`` 224x224 crops of the real photos bundled with scikit-image and
scikit-learn (:mod:`neuronshapley.zoo.photos`: each photo whole, then seeded random crops
and flips). ``ModelGame`` runs with its defaults: the layers before the first player layer
are computed once per image (prefix cache) and the pass size is automatic.

For each player set (``--sets``; see ``PLAYER_SETS``: the head conv, block 15 + head, every
conv channel): evaluations per second on walk-shaped masks (interleaved round-robin with a
plain forward pass, median of ``--rounds`` calls each), the truncation point of a few walks
(coarse grid refined by bisection) and from them the walks per hour.

Then, on ``--stable-set``, two independent halves of truncated walks (roulette fill,
different seeds) grow until their top-``--k`` overlap reaches ``--target`` or
``--budget-minutes`` are spent; if not reached, a parametric bootstrap extrapolates the
walks needed (marked as an extrapolation). ``--ray`` also times 1 and 2 local Ray workers
on every channel.

    python benchmarks/scale.py [--images 16] [--threads 1] [--sets head,last,all]
                               [--k 30] [--target 0.9] [--budget-minutes 20] [--ray]

Writes ``results/scale.json`` and ``results/scale.md``.
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from typing import Any

import numpy as np
import torch
from common import RESULTS, save_json, set_threads, walk_masks

from neuronshapley.estimators.sampler import WALK_CHUNK
from neuronshapley.studies.efficientnet import top_overlap


def top_share(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Share of the top-``k`` players of values ``a`` that are also in the top-``k`` of ``b``."""
    return top_overlap(a, b, k) / k


def image_batch(n_images: int, seed: int = 0, size: int = 224) -> torch.Tensor:
    """``n_images`` crops of the bundled photos (:mod:`neuronshapley.zoo.photos`): each
    photo whole first, then random crops (50-100% of the short side) and flips, as network
    inputs (n, 3, size, size)."""
    from neuronshapley.zoo.photos import bundled_photos, crop_inputs, random_crops

    ims = bundled_photos()
    return crop_inputs(random_crops(n_images, seed, ims, full_first=True), ims, size)


PLAYER_SETS = {
    # name: (player patterns or None for every conv channel, description)
    "head": (["_conv_head"], "head conv (1,280 channels)"),
    "last": (["_blocks.15.*", "_conv_head"], "block 15 + head conv (3,904 channels)"),
    "all": (None, "every conv channel (21,008; the stem is a player: nothing to cache)"),
}


def fidelity_game(n_images: int = 16, players: str = "all", seed: int = 0,
                  threads: int | None = None, **options: Any) -> Any:
    """The game: agreement with the full model's top-1 on ``n_images`` photo crops, with
    the channels of ``PLAYER_SETS[players]`` as players (prefix cache and automatic pass
    size unless ``options`` say otherwise). Builds everything from scratch (so it can run
    inside a Ray worker)."""
    from neuronshapley import ModelGame
    from neuronshapley.distributed.backend import worker_device
    from neuronshapley.zoo.efficientnet import pretrained_efficientnet_lite0

    if threads:
        torch.set_num_threads(threads)
    device = worker_device()
    model = pretrained_efficientnet_lite0(device)
    x = image_batch(n_images, seed).to(device)
    with torch.inference_mode():
        y = model(x).argmax(1)
    return ModelGame(model, x, y, metric="accuracy", players=PLAYER_SETS[players][0],
                     **options)


def race(fns: dict[str, tuple[Any, int]], rounds: int) -> dict[str, float]:
    """Evaluations/s of each ``(function, evaluations per call)``: calls interleaved
    round-robin after one warm-up call each, median of the per-call rates."""
    for fn, _ in fns.values():
        fn()
    rates: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, (fn, evals) in fns.items():
            t0 = time.perf_counter()
            fn()
            rates[k].append(evals / (time.perf_counter() - t0))
    return {k: float(np.median(v)) for k, v in rates.items()}


def ray_rate(factory, workers: int, n_players: int, tasks: int, players_per_task: int,
             seconds: float) -> dict[str, float]:
    """Evaluations/s of direct-sampling tasks through the Ray actor pool."""
    import ray

    from neuronshapley.distributed.backend import _RayPool

    t0 = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    pool = _RayPool(ray, workers, factory, None, None, 1, 1, 0.0, None)
    pool.describe()
    ray.get([a.ping.remote() for a in pool.actors])  # every replica built
    startup = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    try:
        def one_round(start=[0]) -> int:  # noqa: B006 - a counter of task indices
            ids = [rng.choice(n_players, players_per_task, replace=False) for _ in range(tasks)]
            idx = list(range(start[0], start[0] + tasks))
            start[0] += tasks
            groups = np.array_split(np.arange(tasks), min(tasks, 2 * workers))
            batches = [("direct", [idx[j] for j in g], [ids[j] for j in g]) for g in groups]
            return sum(r[2] for r in pool.compute(0, batches))

        one_round()  # warm up
        evals, t1 = 0, time.perf_counter()
        while evals == 0 or time.perf_counter() - t1 < seconds:
            evals += one_round()
        eps = evals / (time.perf_counter() - t1)
    finally:
        pool.close()
        ray.shutdown()
    return {"evaluations_per_s": eps, "startup_s": startup}


def truncation_points(game, walks: int, grid: int, tolerance: float, seed: int) -> list[float]:
    """Fraction of players removed when the walk first counts as dead: the first dead point
    of a coarse grid, refined by bisection (assumes V stays dead once dead; patience 1)."""
    n = game.n_players
    ends = game(np.stack([np.ones(n, bool), np.zeros(n, bool)]))
    v_full, v_null = float(ends[0]), float(ends[1])
    scale = abs(v_full - v_null)
    rng = np.random.default_rng(seed)
    fractions = np.arange(1, grid + 1) / grid
    out = []
    for _ in range(walks):
        perm = rng.permutation(n)
        pos = np.empty(n, dtype=np.int64)
        pos[perm] = np.arange(n)
        steps = np.round(fractions * n).astype(np.int64)
        values = np.asarray(game(pos[None, :] >= steps[:, None]), dtype=float)
        dead = np.flatnonzero(np.abs(values - v_null) <= tolerance * scale)
        if not dead.size:
            out.append(1.0)
            continue
        # bisect between the last live grid point and the first dead one (to one player)
        lo = int(steps[dead[0] - 1]) if dead[0] > 0 else 0
        hi = int(steps[dead[0]])
        while hi - lo > 1:
            mid = (lo + hi) // 2
            v = float(np.asarray(game((pos >= mid)[None, :]), dtype=float)[0])
            if abs(v - v_null) <= tolerance * scale:
                hi = mid
            else:
                lo = mid
        out.append(hi / n)
    return out


def _pooled(runs: list[Any]) -> Any:
    from neuronshapley.estimators.merge import merge_results

    return runs[0] if len(runs) == 1 else merge_results(runs)


def stability(game: Any, k: int, target: float, budget_s: float, batch_walks: int,
              seeds: tuple[int, int]) -> dict[str, Any]:
    """Two independent halves of truncated walks (roulette fill), grown ``batch_walks``
    walks at a time each (seeds ``seeds[h] + round``), until their top-``k`` overlap
    reaches ``target`` or ``budget_s`` seconds are spent. Returns the trajectory and the
    final halves' values and standard errors."""
    from neuronshapley import estimate

    halves: list[list[Any]] = [[], []]
    trace = []
    t0 = time.perf_counter()
    walk_seconds = 0.0
    r = 0
    while True:
        for h in (0, 1):
            t1 = time.perf_counter()
            halves[h].append(estimate(game, method="truncated", seed=seeds[h] + r,
                                      n_permutations=batch_walks,
                                      truncation_fill="roulette", progress=False))
            walk_seconds += time.perf_counter() - t1
        r += 1
        a, b = _pooled(halves[0]), _pooled(halves[1])
        ov = top_share(a.values, b.values, k)
        elapsed = time.perf_counter() - t0
        trace.append({"walks_per_half": r * batch_walks, "overlap": ov, "elapsed_s": elapsed,
                      "evaluations": int(a.evaluations + b.evaluations)})
        print(f"  {r * batch_walks:4d} walks per half, top-{k} overlap {ov:.2f}, "
              f"{elapsed / 60:.1f} min", flush=True)
        if ov >= target or elapsed >= budget_s:
            break
    z = 1.959963984540054  # the merged intervals are normal 95% intervals
    se = [np.asarray((res.ci_high - res.ci_low) / (2 * z)) for res in (a, b)]
    walks = 2 * r * batch_walks
    return {"k": k, "target": target, "budget_s": budget_s, "batch_walks": batch_walks,
            "seeds": list(seeds), "trace": trace, "reached": ov >= target,
            "walks": walks, "walk_seconds": walk_seconds,
            "walks_per_hour": walks / walk_seconds * 3600,
            "evaluations_per_walk": (a.evaluations + b.evaluations) / walks,
            "_values": (a.values, b.values), "_se": se}


def extrapolate(values: tuple[np.ndarray, np.ndarray], se: list[np.ndarray], walks: int,
                k: int, target: float, sims: int = 200, seed: int = 0) -> dict[str, Any]:
    """Walks per half at which two independent halves' top-``k`` overlap would reach
    ``target``: a parametric bootstrap around the measured values (an extrapolation).

    Truth = the mean of the two halves (``raw``; its own noise spreads the values, so this
    is optimistic) or that mean shrunk towards its average by the share of its variance
    that is not noise (``shrunk``; pessimistic). Each half after ``w`` walks = truth +
    normal noise with the measured standard errors scaled by ``sqrt(walks / w)``."""
    rng = np.random.default_rng(seed)
    mean = (values[0] + values[1]) / 2
    noise = (se[0] ** 2 + se[1] ** 2) / 4  # variance of the mean of the halves
    lam = max(0.0, 1.0 - float(noise.mean()) / max(float(mean.var()), 1e-300))
    truths = {"raw": mean, "shrunk": mean.mean() + lam * (mean - mean.mean())}
    grid = np.unique(np.round(walks * np.geomspace(1, 1000, 61)).astype(int))
    out: dict[str, Any] = {"shrink_factor": lam, "walks_measured_per_half": walks}
    for name, truth in truths.items():
        curve = []
        hit = None
        for w in grid:
            f = np.sqrt(walks / w)
            ovs = [top_share(truth + se[0] * f * rng.standard_normal(len(truth)),
                               truth + se[1] * f * rng.standard_normal(len(truth)), k)
                   for _ in range(sims)]
            curve.append((int(w), float(np.mean(ovs))))
            if np.mean(ovs) >= target:
                hit = int(w)
                break
        out[name] = {"walks_per_half": hit, "curve": curve}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=4, help="rounds of the throughput race")
    ap.add_argument("--sets", default="head,last,all", help="player sets to time")
    ap.add_argument("--walks", type=int, default=3, help="walks for the truncation point")
    ap.add_argument("--grid", type=int, default=25, help="positions per walk (coarse grid)")
    ap.add_argument("--tolerance", type=float, default=0.05)
    ap.add_argument("--keep", type=float, default=0.1, help="roulette truncation's keep")
    ap.add_argument("--stable-set", default="head", help="player set of the stability run")
    ap.add_argument("--k", type=int, default=30)
    ap.add_argument("--target", type=float, default=0.9, help="top-k overlap counted stable")
    ap.add_argument("--budget-minutes", type=float, default=20.0)
    ap.add_argument("--batch-walks", type=int, default=None,
                    help="walks per half per round (default: as many as one game call "
                         "carries in lockstep, masks per pass // 16)")
    ap.add_argument("--ray", action="store_true", help="also time 1 and 2 local Ray workers")
    ap.add_argument("--seconds", type=float, default=10.0, help="per Ray measurement")
    args = ap.parse_args()
    set_threads(args.threads)
    t_start = time.perf_counter()
    rows: dict[str, Any] = {}
    games: dict[str, Any] = {}
    for name in args.sets.split(","):
        t0 = time.perf_counter()
        game = fidelity_game(args.images, name)
        build = time.perf_counter() - t0
        n = game.n_players
        m = game.masks_per_pass
        rng = np.random.default_rng(0)
        x = game.inputs

        def plain(model=game.model, x=x) -> None:
            with torch.inference_mode():
                model(x)

        rates = race({"plain": (plain, 1),
                      "engine": (lambda g=game, n=n, m=m, r=rng: g(walk_masks(n, m, r)), m)},
                     args.rounds)
        t0 = time.perf_counter()
        points = truncation_points(game, args.walks, args.grid, args.tolerance, seed=1)
        t = float(np.mean(points))
        per_walk = n * (t + args.keep * (1 - t))
        rows[name] = {
            "description": PLAYER_SETS[name][1], "players": n, "layers":
            len(game.players_set.layers), "prefix_cached": game.split is not None,
            "pass_size": game.pass_size, "masks_per_pass": m, "build_s": build,
            "plain_evaluations_per_s": rates["plain"],
            "evaluations_per_s": rates["engine"], "ms_per_evaluation": 1000 / rates["engine"],
            "truncation_points": points, "truncation_fraction": t,
            "truncation_seconds": time.perf_counter() - t0,
            "evaluations_per_walk": per_walk,
            "walks_per_hour": rates["engine"] * 3600 / per_walk,
        }
        print(f"{name}: {game!r}; {rows[name]['ms_per_evaluation']:.1f} ms/evaluation, "
              f"t = {t:.3f}, {rows[name]['walks_per_hour']:.1f} walks/h", flush=True)
        games[name] = game
    ray_rows: dict[str, Any] = {}
    if args.ray:
        factory = functools.partial(fidelity_game, args.images, "all", 0, 1)
        for w in (1, 2):
            ray_rows[f"ray, {w} worker{'s' * (w > 1)}"] = ray_rate(
                factory, w, 21008, tasks=4 * w, players_per_task=2, seconds=args.seconds)
    game = games.get(args.stable_set) or fidelity_game(args.images, args.stable_set)
    games.clear()
    print(f"stability of the top-{args.k}: {game!r}", flush=True)
    batch_walks = args.batch_walks or max(1, game.masks_per_pass // WALK_CHUNK)
    st = stability(game, args.k, args.target, args.budget_minutes * 60, batch_walks,
                   (1000, 2000))
    values, se = st.pop("_values"), st.pop("_se")
    st["extrapolation"] = None if st["reached"] else extrapolate(
        values, se, st["walks"] // 2, args.k, args.target)
    st["set"] = args.stable_set
    payload = {"images": args.images, "threads": args.threads, "rounds": args.rounds,
               "tolerance": args.tolerance, "keep": args.keep, "grid": args.grid,
               "player_sets": rows, "ray": ray_rows, "stability": st,
               "total_seconds": time.perf_counter() - t_start,
               "load_average_at_end": list(os.getloadavg())}
    md = render(payload)
    print(md)
    save_json("scale", payload)
    (RESULTS / "scale.md").write_text(md + "\n")


def _hours(s: float) -> str:
    return f"{s / 60:.0f} min" if s < 3600 else f"{s / 3600:.1f} h"


def render(p: dict[str, Any]) -> str:
    b = p["images"]
    lines = [
        f"# Scale: EfficientNet-Lite0 fidelity game, {b} photo crops (224x224)", "",
        "V(S) = agreement with the full network's top-1 on the bundled photos (the six whole "
        "photos, then seeded random crops and flips). ModelGame defaults: the layers before "
        "the first player layer run once per image (prefix cache) and the pass size is "
        f"automatic. {p['threads']} torch thread; the machine (2 cores) is shared with other "
        "jobs, so every rate depends on their load (the load average at the end is below; "
        "the plain pass of the whole network is timed beside each game for scale).", "",
        "## Throughput and walks per hour", "",
        "Evaluations/s: median over "
        f"{p['rounds']} calls of walk-shaped masks (one call = one pass of masks), interleaved "
        "with a plain forward pass of the whole network. Walk length: t x n + keep x (1 - t) "
        f"x n with t the truncation point ({p['grid']}-point grid refined by bisection, "
        f"{p['tolerance']} x |V(N) - V(empty)| of V(empty), mean of "
        f"{len(next(iter(p['player_sets'].values()))['truncation_points'])} walks) and keep = "
        f"{p['keep']} (roulette truncation: a dead walk goes on with that probability).", "",
        "| players | prefix cached | masks/pass | ms/evaluation | plain pass ms | t | "
        "evaluations/walk | walks/hour |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in p["player_sets"].values():
        lines.append(
            f"| {r['description']} | {'yes' if r['prefix_cached'] else 'no'} | "
            f"{r['masks_per_pass']} | {r['ms_per_evaluation']:.1f} | "
            f"{1000 / r['plain_evaluations_per_s']:.0f} | {r['truncation_fraction']:.3f} | "
            f"{r['evaluations_per_walk']:.0f} | {r['walks_per_hour']:.1f} |")
    for name, r in p["ray"].items():
        lines.append(f"| all channels, {name} (start-up {r['startup_s']:.0f} s) | no | | "
                     f"{1000 / r['evaluations_per_s']:.0f} | | | | |")
    st = p["stability"]
    k, tr = st["k"], st["trace"]
    desc = p["player_sets"].get(st["set"], {}).get("description", st["set"])
    lines += [
        "", f"## Time to a stable top-{k}", "",
        f"Players: {desc}. Two independent halves of truncated walks (`method='truncated'`, "
        f"roulette fill), seeds {st['seeds'][0]}+r and {st['seeds'][1]}+r for round r, "
        f"{st['batch_walks']} walks per half per round; stable = the halves' top-{k} overlap "
        f">= {st['target']}; budget {st['budget_s'] / 60:.0f} min. Measured: "
        f"{st['walks']} walks in {_hours(st['walk_seconds'])} = "
        f"**{st['walks_per_hour']:.0f} walks/hour** ({st['evaluations_per_walk']:.0f} "
        "evaluations per walk).", "",
        f"| walks per half | top-{k} overlap | minutes |", "| ---: | ---: | ---: |",
    ]
    step = max(1, len(tr) // 12)
    for row in tr[::step] + ([tr[-1]] if (len(tr) - 1) % step else []):
        lines.append(f"| {row['walks_per_half']} | {row['overlap']:.2f} | "
                     f"{row['elapsed_s'] / 60:.1f} |")
    if st["reached"]:
        lines += ["", f"Stable after {tr[-1]['walks_per_half']} walks per half, "
                  f"{tr[-1]['elapsed_s'] / 60:.1f} min."]
    else:
        ex = st["extrapolation"]
        lines += ["", f"**Not reached within the budget**: overlap {tr[-1]['overlap']:.2f} "
                  f"after {tr[-1]['walks_per_half']} walks per half. **Extrapolation** "
                  "(a parametric bootstrap, not a measurement): each half = a truth plus "
                  "normal noise with the measured per-channel standard errors shrinking as "
                  "1/sqrt(walks), 200 draws per point; truth = the mean of the two halves "
                  "(optimistic: its noise spreads the values apart) or that mean shrunk by "
                  f"{ex['shrink_factor']:.2f} towards its average (pessimistic)."]
        for name in ("raw", "shrunk"):
            w = ex[name]["walks_per_half"]
            if w is None:
                lines.append(f"- {name}: not reached within {ex[name]['curve'][-1][0]} walks "
                             f"per half (overlap {ex[name]['curve'][-1][1]:.2f}).")
            else:
                hours = 2 * w / st["walks_per_hour"]
                lines.append(f"- {name}: about {w} walks per half, {2 * w} in all = "
                             f"{_hours(hours * 3600)} at the measured rate (extrapolation).")
    load = ", ".join(f"{x:.1f}" for x in p["load_average_at_end"])
    lines += ["", f"Benchmark wall time: {p['total_seconds'] / 60:.0f} min; load average at "
              f"the end {load}."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
