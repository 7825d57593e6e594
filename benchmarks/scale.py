"""Scale: a fidelity game on EfficientNet-Lite0 (ImageNet) with all 21,008 conv channels.

V(S) = agreement of the network with S kept (others mean-replaced) with the full network's
own top-1, on real photos bundled with scikit-image (astronaut, coffee, chelsea, rocket) and
scikit-learn (china, flower), expanded with random crops and flips to ``--images`` 224x224
images. Measured in one run, in coalition evaluations per second:

- plain: the bare network on the same images (one forward of all images = one evaluation);
- engine: ``ModelGame`` on random masks (hooks, mean replacement, metric), in-process, at the
  automatic pass size and at ``--masks-per-pass``; plain and engine calls are interleaved
  round-robin (``--rounds``) and each rate is the median of its calls;
- ray-1 / ray-2: the same evaluations as direct-sampling tasks through the Ray backend's
  actor pool (``neuronshapley.distributed.backend``), 1 and 2 local workers (start-up timed apart).

Then the truncation point of a walk is measured on a few random walks (coarse grid of
positions; the first grid point whose value is within ``tolerance * |V(N) - V(empty)|`` of
``V(empty)``), and the time of a full TMAB run is extrapolated with the arithmetic shown: on
this CPU from the measured rate, and on one GPU from an assumption (no GPU was measured):
the network's counted FLOPs per image over a stated peak (``--gpu-peak-tflops``, default an
H100 SXM's FP32 figure) times a stated achievable fraction (``--gpu-fraction``), times the
engine's masked / plain ratio measured here. ``--gpu-evals-per-s`` replaces that estimate by
a measured rate.

    python benchmarks/scale.py [--images 16] [--threads 1] [--walks 3] [--no-ray]
                               [--gpu-peak-tflops 67] [--gpu-fraction 0.15]
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
    from neuronshapley.distributed.backend import worker_device
    from neuronshapley.zoo.efficientnet import pretrained_efficientnet_lite0

    if threads:
        torch.set_num_threads(threads)
    device = worker_device()
    model = pretrained_efficientnet_lite0(device)
    x = image_batch(n_images, seed).to(device)
    with torch.inference_mode():
        y = model(x).argmax(1)
    return ModelGame(model, x, y, metric="accuracy", pass_size=n_images * masks_per_pass)


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


def flops_per_image(model: torch.nn.Module, example: torch.Tensor) -> float:
    """Floating-point operations of one image: 2 x multiply-adds of every conv and linear
    layer (batch norms, activations and pooling not counted)."""
    total = 0

    def count(module: torch.nn.Module, _inp: object, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            per_out = module.in_channels // module.groups * int(np.prod(module.kernel_size))
            total += 2 * out[0].numel() * per_out
        elif isinstance(module, torch.nn.Linear):
            total += 2 * out[0].numel() * module.in_features

    handles = [m.register_forward_hook(count) for m in model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    try:
        with torch.inference_mode():
            model(example[:1])
    finally:
        for h in handles:
            h.remove()
    return float(total)


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=10.0, help="per Ray measurement")
    ap.add_argument("--rounds", type=int, default=4, help="rounds of the in-process race")
    ap.add_argument("--masks-per-pass", type=int, default=4)
    ap.add_argument("--walks", type=int, default=3, help="walks for the truncation point")
    ap.add_argument("--grid", type=int, default=25, help="positions per walk (coarse grid)")
    ap.add_argument("--tolerance", type=float, default=0.05)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--gpu-peak-tflops", type=float, default=67.0,
                    help="assumed GPU peak, TFLOP/s (default: H100 SXM, FP32, no tensor cores)")
    ap.add_argument("--gpu-fraction", type=float, default=0.15,
                    help="assumed fraction of that peak a batched pass of this network reaches")
    ap.add_argument("--gpu-evals-per-s", type=float, default=None,
                    help="a measured GPU rate for this game, used instead of the estimate")
    args = ap.parse_args()
    set_threads(args.threads)
    t_start = time.perf_counter()
    factory = functools.partial(fidelity_game, args.images, args.masks_per_pass, 0, 1)
    game = factory()
    from neuronshapley import ModelGame

    auto = ModelGame(game.model, game.inputs, game.targets, metric="accuracy")
    n = game.n_players
    b = len(game.inputs)
    m = game.masks_per_pass
    print(f"{game!r}; v(N) = {float(game(np.ones((1, n), bool))[0]):.3f}")
    x = game.inputs
    rng = np.random.default_rng(0)
    masks = rng.random((m, n)) > 0.3
    masks_auto = rng.random((auto.masks_per_pass, n)) > 0.3

    def plain() -> None:
        with torch.inference_mode():
            game.model(x)

    rates = race({
        "plain forward": (plain, 1),
        f"engine (ModelGame, auto pass size {auto.pass_size}, 1 process)": (
            lambda: auto(masks_auto), auto.masks_per_pass),
        f"engine (ModelGame, {m} masks per pass, 1 process)": (lambda: game(masks), m),
    }, args.rounds)
    rows: dict[str, Any] = {k: {"evaluations_per_s": v} for k, v in rates.items()}
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
    engine_ratio = max(v for k, v in rates.items() if k != "plain forward") / rates[
        "plain forward"]
    flops = flops_per_image(game.model, x)
    gpu_plain = args.gpu_peak_tflops * 1e12 * args.gpu_fraction / (flops * b)
    gpu_rate = args.gpu_evals_per_s or gpu_plain * engine_ratio
    gpu = {"measured": args.gpu_evals_per_s is not None, "peak_tflops": args.gpu_peak_tflops,
           "fraction": args.gpu_fraction, "flops_per_image": flops,
           "plain_evaluations_per_s": gpu_plain, "engine_ratio": engine_ratio,
           "evaluations_per_s": gpu_rate}
    walk_counts = (100, 1000, 10000)
    extrap = []
    for walks in walk_counts:
        evals = walks * per_walk
        extrap.append({"walks": walks, "evaluations": evals, "cpu_hours": evals / best / 3600,
                       "gpu_hours": evals / gpu_rate / 3600})
    payload = {
        "game": repr(game), "players": n, "images": b, "masks_per_pass": m,
        "throughput": rows, "truncation_points": points, "truncation_fraction": t_frac,
        "truncation_grid": args.grid, "truncation_tolerance": args.tolerance,
        "truncation_seconds": trunc_s, "evaluations_per_walk": per_walk,
        "cpu_rate_used": {"setting": cpu_name, "evaluations_per_s": best},
        "gpu": gpu, "extrapolation": extrap,
        "total_seconds": time.perf_counter() - t_start,
        "load_average_at_end": list(os.getloadavg()),
    }
    md = render(payload)
    print(md)
    save_json("scale", payload)
    (RESULTS / "scale.md").write_text(md + "\n")


def render(p: dict[str, Any]) -> str:
    n, b = p["players"], p["images"]
    g = p["gpu"]
    lines = [
        f"# Scale: EfficientNet-Lite0 fidelity game, {n} channels, {b} images (224x224)", "",
        "Coalition evaluations per second (one evaluation = the network on all "
        f"{b} images with one coalition of channels), measured in one run on this machine "
        "(torch threads per process: 1; plain and in-process engine rows interleaved "
        "round-robin, median of each one's calls):", "",
        "| setting | evaluations/s | start-up (s) |", "| --- | ---: | ---: |",
    ]
    for name, r in p["throughput"].items():
        su = f"{r['startup_s']:.1f}" if "startup_s" in r else ""
        lines.append(f"| {name} | {r['evaluations_per_s']:.2f} | {su} |")
    gpu_row = (f"{g['evaluations_per_s']:.1f} (measured)" if g["measured"] else
               "not measured (no GPU in this run): see the estimate below")
    lines.append(f"| one GPU | {gpu_row} | |")
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
        "## GPU rate: an assumption-based estimate", "",
    ]
    if g["measured"]:
        lines.append(f"Measured GPU rate passed in: {g['evaluations_per_s']:.1f} evaluations/s.")
    else:
        fl = g["flops_per_image"]
        lines += [
            "No GPU was available to this run, so the GPU column below is **not a "
            "measurement**. It rests on two stated assumptions:",
            f"- peak: {g['peak_tflops']:g} TFLOP/s (NVIDIA's figure for an H100 SXM in FP32 "
            "without tensor cores; the engine runs float32);",
            f"- achieved: {g['fraction']:.0%} of that peak for batched passes of this network "
            "(depthwise convolutions and batch norms are memory-bound, so far below peak).",
            "Arithmetic: FLOPs per image (2 x multiply-adds of every conv and linear layer, "
            f"counted on the model) = {fl / 1e9:.3f} GFLOP; plain evaluations/s = peak x "
            f"fraction / (FLOPs per image x images) = {g['peak_tflops']:g}e12 x "
            f"{g['fraction']:g} / ({fl:.3g} x {b}) = {g['plain_evaluations_per_s']:.0f}; "
            f"times the engine's masked / plain ratio measured above on CPU "
            f"({g['engine_ratio']:.2f}, assumed to carry over) = "
            f"**{g['evaluations_per_s']:.0f} evaluations/s**. Halve the fraction and the "
            "GPU times double.",
        ]
    lines += [
        "", "## Extrapolated full TMAB run", "",
        f"Evaluations per walk = t x n = {t:.4f} x {n} = {pw:.0f} (early in TMAB every "
        "player is in play, so walks run to the truncation point; later walks stop "
        "earlier, so this over-estimates the late rounds).",
        f"CPU rate used: {rate_cpu:.2f} evaluations/s ({p['cpu_rate_used']['setting']}); "
        f"GPU rate: {g['evaluations_per_s']:.0f} evaluations/s "
        f"({'measured' if g['measured'] else 'estimate above'}). An evaluation's cost grows "
        f"about linearly with the number of images ({b} here).",
        "The number of walks the paper's runs needed is an assumption, not measured here: "
        "rows for 100, 1,000 and 10,000 walks.", "",
        "| walks | evaluations = walks x t x n | CPU time = evaluations / rate | "
        "one GPU = evaluations / GPU rate |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for r in p["extrapolation"]:
        gh = r["gpu_hours"]
        gpu = f"{r['evaluations']:.3g} / {g['evaluations_per_s']:.0f} = " + (
            f"{gh * 60:.3g} min" if gh < 1 else f"{gh:.3g} h")
        if not g["measured"]:
            gpu += " (estimate)"
        lines.append(f"| {r['walks']} | {r['walks']} x {pw:.0f} = {r['evaluations']:.3g} | "
                     f"{r['evaluations']:.3g} / {rate_cpu:.2f} = {r['cpu_hours']:.3g} h "
                     f"({r['cpu_hours'] / 24:.3g} days) | {gpu} |")
    load = ", ".join(f"{x:.1f}" for x in p["load_average_at_end"])
    lines += ["", f"Benchmark wall time: {p['total_seconds']:.0f} s. The machine (2 cores) is "
              f"shared with other jobs (load average at the end {load}), which caps what 2 "
              "workers can show."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
