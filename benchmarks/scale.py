"""Scale: a fidelity game on EfficientNet-Lite0 (ImageNet) with all 21,008 conv channels.

V(S) = agreement of the network with S kept (others mean-replaced) with the full network's
own top-1, on real photos bundled with scikit-image (astronaut, coffee, chelsea, rocket) and
scikit-learn (china, flower), expanded with random crops and flips to ``--images`` 224x224
images. Measured in one run, in coalition evaluations per second:

- plain: the bare network on the same images (one forward of all images = one evaluation);
- engine: ``ModelGame`` on random masks (hooks, mean replacement, metric), in-process;
- ray-1 / ray-2: the same evaluations as direct-sampling tasks through the Ray backend's
  actor pool (``neuronshapley.distributed``), 1 and 2 local workers (start-up timed apart).

Then the truncation point of a walk is measured on a few random walks (coarse grid of
positions; the first grid point whose value is within ``tolerance * |V(N) - V(empty)|`` of
``V(empty)``), and the time of a full TMAB run is extrapolated with the arithmetic shown.

    python benchmarks/scale.py [--images 16] [--threads 1] [--walks 3] [--no-ray]
                               [--gpu-evals-per-s X]

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
from common import RESULTS, save_json, set_threads


def photos() -> dict[str, np.ndarray]:
    """The colour photos bundled with scikit-image and scikit-learn (no download)."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    out: dict[str, np.ndarray] = {}
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        try:
            out[name] = np.asarray(getattr(skimage.data, name)())[..., :3]
        except Exception:  # noqa: BLE001 - a photo that needs a download is skipped
            continue
    sk = load_sample_images()
    for fname, im in zip(sk.filenames, sk.images, strict=True):
        out[fname.rsplit("/", 1)[-1].split(".")[0]] = np.asarray(im)[..., :3]
    return out


def image_batch(n_images: int, seed: int = 0, size: int = 224) -> torch.Tensor:
    """``n_images`` random crops (50-100% of the short side) and flips of the photos,
    as network inputs (n, 3, size, size)."""
    from neuronshapley.zoo.efficientnet import preprocess

    rng = np.random.default_rng(seed)
    ims = list(photos().values())
    out = []
    for i in range(n_images):
        im = ims[i % len(ims)]
        h, w = im.shape[:2]
        c = int(min(h, w) * (1.0 if i < len(ims) else rng.uniform(0.5, 1.0)))
        y, x = rng.integers(0, h - c + 1), rng.integers(0, w - c + 1)
        crop = im[y : y + c, x : x + c]
        if i >= len(ims) and rng.random() < 0.5:
            crop = crop[:, ::-1]
        t = torch.tensor(np.ascontiguousarray(crop)).permute(2, 0, 1).float()[None] / 255
        out.append(preprocess(t, size))
    return torch.cat(out)


def fidelity_game(n_images: int = 16, masks_per_pass: int = 4, seed: int = 0,
                  threads: int | None = None) -> Any:
    """The game: agreement with the full model's top-1; all 21,008 channels are players.

    Builds everything from scratch (so it can run inside a Ray worker)."""
    from neuronshapley import ModelGame
    from neuronshapley.distributed import worker_device
    from neuronshapley.zoo.efficientnet import pretrained_efficientnet_lite0

    if threads:
        torch.set_num_threads(threads)
    device = worker_device()
    model = pretrained_efficientnet_lite0(device)
    x = image_batch(n_images, seed).to(device)
    with torch.inference_mode():
        y = model(x).argmax(1)
    return ModelGame(model, x, y, metric="accuracy", pass_size=n_images * masks_per_pass)


def rate(fn, evals_per_call: int, seconds: float, min_calls: int = 2) -> float:
    fn()  # warm up
    calls, t0 = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - t0 < seconds:
        fn()
        calls += 1
    return calls * evals_per_call / (time.perf_counter() - t0)


def ray_rate(factory, workers: int, n_players: int, tasks: int, players_per_task: int,
             seconds: float) -> dict[str, float]:
    """Evaluations/s of direct-sampling tasks through the Ray actor pool."""
    import ray

    from neuronshapley.distributed import _RayPool

    t0 = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    pool = _RayPool(ray, workers, factory, None, None, 1, 0.0, None)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--masks-per-pass", type=int, default=4)
    ap.add_argument("--walks", type=int, default=3, help="walks for the truncation point")
    ap.add_argument("--grid", type=int, default=25, help="positions per walk (coarse grid)")
    ap.add_argument("--tolerance", type=float, default=0.05)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--gpu-evals-per-s", type=float, default=None,
                    help="a measured GPU rate for this game, to fill the GPU row")
    args = ap.parse_args()
    set_threads(args.threads)
    t_start = time.perf_counter()
    factory = functools.partial(fidelity_game, args.images, args.masks_per_pass, 0, 1)
    game = factory()
    n = game.n_players
    b = len(game.inputs)
    m = game.masks_per_pass
    print(f"{game!r}; v(N) = {float(game(np.ones((1, n), bool))[0]):.3f}")
    rows: dict[str, Any] = {}

    x = game.inputs

    def plain() -> None:
        with torch.inference_mode():
            game.model(x)

    masks = np.random.default_rng(0).random((m, n)) > 0.3

    def engine() -> None:
        game(masks)

    rows["plain forward"] = {"evaluations_per_s": rate(plain, 1, args.seconds)}
    rows["engine (ModelGame, 1 process)"] = {"evaluations_per_s": rate(engine, m, args.seconds)}
    if not args.no_ray:
        try:
            for w in (1, 2):
                rows[f"ray, {w} worker{'s' * (w > 1)}"] = ray_rate(
                    factory, w, n, tasks=4 * w, players_per_task=max(1, m // 2),
                    seconds=args.seconds)
        except ImportError as e:
            print(f"ray not measured: {e}")
    for name, r in rows.items():
        print(f"{name:32s} {r['evaluations_per_s']:8.2f} evaluations/s"
              + (f"  (start-up {r['startup_s']:.1f} s)" if "startup_s" in r else ""))

    t0 = time.perf_counter()
    points = truncation_points(game, args.walks, args.grid, args.tolerance, seed=1)
    trunc_s = time.perf_counter() - t0
    t_frac = float(np.mean(points))
    print(f"truncation points (fraction of players removed): {points}; mean {t_frac:.2f}")

    per_walk = t_frac * n  # evaluations of one truncated walk (TMAB: every player active)
    best = max(r["evaluations_per_s"] for k, r in rows.items() if k != "plain forward")
    cpu_name = max((k for k in rows if k != "plain forward"),
                   key=lambda k: rows[k]["evaluations_per_s"])
    walk_counts = (100, 1000, 10000)
    extrap = []
    for walks in walk_counts:
        evals = walks * per_walk
        row = {"walks": walks, "evaluations": evals, "cpu_hours": evals / best / 3600,
               "gpu_hours": None if args.gpu_evals_per_s is None
               else evals / args.gpu_evals_per_s / 3600}
        extrap.append(row)
    payload = {
        "game": repr(game), "players": n, "images": b, "masks_per_pass": m,
        "throughput": rows, "truncation_points": points, "truncation_fraction": t_frac,
        "truncation_grid": args.grid, "truncation_tolerance": args.tolerance,
        "truncation_seconds": trunc_s, "evaluations_per_walk": per_walk,
        "cpu_rate_used": {"setting": cpu_name, "evaluations_per_s": best},
        "gpu_evaluations_per_s": args.gpu_evals_per_s, "extrapolation": extrap,
        "total_seconds": time.perf_counter() - t_start,
        "load_average_at_end": list(os.getloadavg()),
    }
    md = render(payload)
    print(md)
    save_json("scale", payload)
    (RESULTS / "scale.md").write_text(md + "\n")


def render(p: dict[str, Any]) -> str:
    n, b = p["players"], p["images"]
    lines = [
        f"# Scale: EfficientNet-Lite0 fidelity game, {n} channels, {b} images (224x224)", "",
        "Coalition evaluations per second (one evaluation = the network on all "
        f"{b} images with one coalition of channels), measured in one run on this machine "
        "(torch threads per process: 1):", "",
        "| setting | evaluations/s | start-up (s) |", "| --- | ---: | ---: |",
    ]
    for name, r in p["throughput"].items():
        su = f"{r['startup_s']:.1f}" if "startup_s" in r else ""
        lines.append(f"| {name} | {r['evaluations_per_s']:.2f} | {su} |")
    lines.append("| one GPU | **not measured: no GPU in this run (slot)** | |")
    t, pw = p["truncation_fraction"], p["evaluations_per_walk"]
    rate_cpu = p["cpu_rate_used"]["evaluations_per_s"]
    lines += [
        "", "## Truncation point", "",
        f"{len(p['truncation_points'])} random walks, value read at {p['truncation_grid']} "
        f"evenly spaced positions; dead = within {p['truncation_tolerance']} x "
        f"|V(N) - V(empty)| of V(empty). Points (fraction of players removed): "
        f"{', '.join(f'{x:.4f}' for x in p['truncation_points'])}; mean t = {t:.4f} "
        "(first dead grid point, refined by bisection between it and the last live one; "
        "assumes a walk stays dead once dead, patience 1).", "",
        "## Extrapolated full TMAB run", "",
        f"Evaluations per walk = t x n = {t:.4f} x {n} = {pw:.0f} (early in TMAB every "
        "player is in play, so walks run to the truncation point; later walks stop "
        "earlier, so this over-estimates the late rounds).",
        f"CPU rate used: {rate_cpu:.2f} evaluations/s ({p['cpu_rate_used']['setting']}); "
        f"an evaluation's cost grows about linearly with the number of images ({b} here).",
        "The number of walks the paper's runs needed is an assumption, not measured here: "
        "rows for 100, 1,000 and 10,000 walks.", "",
        "| walks | evaluations = walks x t x n | CPU time = evaluations / rate | one GPU |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for r in p["extrapolation"]:
        gpu = "slot: pass --gpu-evals-per-s" if r["gpu_hours"] is None else \
            f"{r['gpu_hours']:.1f} h"
        lines.append(f"| {r['walks']} | {r['walks']} x {pw:.0f} = {r['evaluations']:.3g} | "
                     f"{r['evaluations']:.3g} / {rate_cpu:.2f} = {r['cpu_hours']:.3g} h "
                     f"({r['cpu_hours'] / 24:.3g} days) | {gpu} |")
    load = ", ".join(f"{x:.1f}" for x in p["load_average_at_end"])
    lines += ["", f"Benchmark wall time: {p['total_seconds']:.0f} s. The machine (2 cores) is "
              f"shared: load average at the end {load}, so 2 workers cannot show a 2x here."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
