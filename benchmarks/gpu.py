"""The GPU path, measured on one CUDA device: agreement with the CPU, then throughput.

Run where ``torch.cuda.is_available()``; CI never does (it has no GPU), this script is for a
lent GPU machine. In one run:

1. agreement: the same coalitions evaluated on the CPU (float32) and on the GPU: the digits
   CNN (accuracy and log-probability on 128 random masks; a seeded ``truncated`` run's
   values) and EfficientNet-Lite0's fidelity game (agreement and log-probability on 16
   masks);
2. throughput of EfficientNet-Lite0 with all 21,008 conv channels as players, on
   ``--images`` photos: the bare network (one forward of all images = one evaluation) and
   ``ModelGame`` on random masks at several masks per pass, in float32 and bfloat16, each
   the median of ``--rounds`` timed calls after a warm-up (CUDA synchronised);
3. a real ``truncated`` run on that game for ``--run-seconds``: walks, evaluations per walk,
   evaluations/s, and the time 1,000 walks would take at that rate.

    python benchmarks/gpu.py [--images 64] [--rounds 5] [--run-seconds 180]

Writes ``results/gpu.json`` and ``results/gpu.md`` (or under ``--out``).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import RESULTS
from scale import image_batch

#: the device measured; ``--cpu-dry-run`` sets "cpu" to check the script without a GPU
DEV = "cuda"


def sync() -> None:
    if DEV == "cuda":
        torch.cuda.synchronize()


def median_rate(fn, evals: int, rounds: int) -> float | str:
    """Evaluations/s: one warm-up call, then the median over ``rounds`` timed calls
    ("out of memory" if the device cannot hold a pass of that size)."""
    try:
        fn()
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return "out of memory"
    sync()
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        sync()
        rates.append(evals / (time.perf_counter() - t0))
    return float(np.median(rates))


def digits_agreement(seed: int = 0) -> dict[str, Any]:
    """CPU vs GPU on the digits CNN: the same masks, the same seeded estimate, with the
    GPU game in strict float32 (the default) and in TF32."""
    from neuronshapley import ModelGame, estimate
    from neuronshapley.zoo import pretrained_digits_cnn

    model, data = pretrained_digits_cnn(seed=seed)
    games: dict[str, dict[str, Any]] = {}
    for dev, precision in (("cpu", "float32"), (DEV, "float32"), (DEV, "tf32")):
        m = copy.deepcopy(model).eval().to(dev)
        games[f"{dev} {precision}"] = {
            metric: ModelGame(m, data.x_valuation, data.y_valuation, metric=metric,
                                players=["features.*"])
            for metric in ("accuracy", "log_prob")
        }
        for g in games[f"{dev} {precision}"].values():
            g.precision = precision  # set directly: the game's own check would refuse TF32
    ref = games["cpu float32"]
    n = ref["accuracy"].n_players
    masks = np.random.default_rng(seed).random((128, n)) < np.linspace(0.05, 0.95, 128)[:, None]
    out: dict[str, Any] = {"n_players": n, "masks": len(masks)}
    ref_run = estimate(ref["accuracy"], method="truncated", seed=seed, max_evaluations=3000)
    for name in (f"{DEV} float32", f"{DEV} tf32"):
        for metric in ("accuracy", "log_prob"):
            a = np.asarray(ref[metric](masks), dtype=float)
            b = np.asarray(games[name][metric](masks), dtype=float)
            out[f"{name}: {metric} max abs diff vs cpu"] = float(np.max(np.abs(a - b)))
            out[f"{name}: {metric} masks differing"] = int(np.sum(a != b))
        run = estimate(games[name]["accuracy"], method="truncated", seed=seed,
                       max_evaluations=3000)
        out[f"{name}: seeded truncated run, max abs value diff vs cpu"] = float(
            np.max(np.abs(ref_run.values - run.values)))
    return out


def efficientnet_games(n_images: int, devices: tuple[str, ...], precision: str = "float32",
                       metric: str = "accuracy",
                       channels_last: bool | None = None) -> dict[str, Any]:
    """The fidelity game (agreement with the full network's top-1) on each device."""
    from neuronshapley import ModelGame
    from neuronshapley.network.game import cuda_math
    from neuronshapley.zoo.efficientnet import pretrained_efficientnet_lite0

    x = image_batch(n_images, 0)
    out = {}
    for dev in devices:
        model = pretrained_efficientnet_lite0(dev)
        xd = x.to(dev)
        with torch.inference_mode(), cuda_math(allow_tf32=False):
            y = model(xd).argmax(1)
        out[dev] = ModelGame(model, xd, y, metric=metric, precision=precision,
                             channels_last=channels_last)
    return out


def efficientnet_agreement(n_images: int) -> dict[str, Any]:
    """CPU vs GPU on EfficientNet-Lite0: 16 random masks, two metrics."""
    rng = np.random.default_rng(1)
    out: dict[str, Any] = {}
    for metric in ("accuracy", "log_prob"):
        games = efficientnet_games(n_images, ("cpu", DEV), metric=metric)
        n = games["cpu"].n_players
        masks = rng.random((16, n)) < np.linspace(0.5, 1.0, 16)[:, None]
        a = np.asarray(games["cpu"](masks), dtype=float)
        b = np.asarray(games[DEV](masks), dtype=float)
        out[f"{metric}_cpu"] = a.round(4).tolist()
        out[f"{metric}_max_abs_diff"] = float(np.max(np.abs(a - b)))
        del games
    return out


def throughput(n_images: int, rounds: int) -> dict[str, Any]:
    """Evaluations/s of the bare network and of the game at several masks per pass."""
    from neuronshapley.network.game import GameError, cuda_math
    from neuronshapley.zoo.efficientnet import pretrained_efficientnet_lite0

    model = pretrained_efficientnet_lite0(DEV)
    x = image_batch(n_images, 0).to(DEV)
    rows: dict[str, Any] = {}

    def plain(reps: int, dtype: torch.dtype | None, tf32: bool = False):
        def fn() -> None:
            with torch.inference_mode(), cuda_math(tf32), torch.autocast(
                DEV, dtype=dtype or torch.float32, enabled=dtype is not None
            ):
                big = x.repeat(reps, 1, 1, 1)
                model(big).argmax(1)
        return fn

    for reps in (1, 8, 32) if DEV == "cuda" else (1,):
        rows[f"plain fp32, {reps} x {n_images} images per pass"] = median_rate(
            plain(reps, None), reps, rounds)
        rows[f"plain tf32, {reps} x {n_images} images per pass"] = median_rate(
            plain(reps, None, True), reps, rounds)
        rows[f"plain bf16, {reps} x {n_images} images per pass"] = median_rate(
            plain(reps, torch.bfloat16), reps, rounds)
    model = model.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
    rows[f"plain fp32 channels-last, 8 x {n_images} images per pass"] = median_rate(
        plain(8, None), 8, rounds)
    model = None
    torch.cuda.empty_cache()
    rng = np.random.default_rng(0)
    for precision in ("float32", "float32 channels-last", "tf32", "bfloat16"):
        try:
            game = efficientnet_games(n_images, (DEV,), precision=precision.split()[0],
                                      channels_last="channels-last" in precision)[DEV]
        except GameError as exc:
            rows[f"engine {precision}"] = f"refused: {exc}"
            continue
        n = game.n_players
        rows[f"auto pass size ({precision})"] = game.pass_size
        for masks_per_pass in (1, 8, 32, "auto") if DEV == "cuda" else (1, "auto"):
            if masks_per_pass != "auto":
                game.pass_size = n_images * masks_per_pass
            per_call = 64 if DEV == "cuda" else 2
            masks = rng.random((per_call, n)) < 0.7
            rows[f"engine {precision}, random masks, {masks_per_pass} masks per pass"] = (
                median_rate(lambda m=masks, g=game: g(m), per_call, rounds))
            if masks_per_pass == "auto":
                # walk-shaped: consecutive prefixes of one permutation (what a walk asks for)
                perm = rng.permutation(n)
                pos = np.empty(n, dtype=np.int64)
                pos[perm] = np.arange(n)
                walk = pos[None, :] >= np.arange(0, per_call * 8, 8)[:, None]
                rows[f"engine {precision}, walk masks, auto masks per pass"] = median_rate(
                    lambda m=walk, g=game: g(m), per_call, rounds)
        del game
        torch.cuda.empty_cache()
    return rows


def real_run(n_images: int, seconds: float) -> dict[str, Any]:
    """A ``truncated`` run on the fidelity game with all channels, stopped by time."""
    from neuronshapley import estimate

    game = efficientnet_games(n_images, (DEV,))[DEV]
    t0 = time.perf_counter()
    res = estimate(game, method="truncated", seed=0, max_time=seconds)
    wall = time.perf_counter() - t0
    walks = int(res.info.get("walks", 0))
    eps = res.evaluations / wall
    per_walk = res.evaluations / max(walks, 1)
    return {
        "n_players": game.n_players, "wall_s": wall, "evaluations": res.evaluations,
        "walks": walks, "evaluations_per_walk": per_walk, "evaluations_per_s": eps,
        "hours_for_1000_walks": 1000 * per_walk / eps / 3600,
        "top5": [res.players[i] for i in np.argsort(-res.values)[:5]],
    }


def tmab_run(n_images: int, seconds: float, k: int = 10) -> dict[str, Any]:
    """The default TMAB on the fidelity game with all channels, stopped by time: how far
    the bandit gets (players still undecided) and what its interval state weighs."""
    from neuronshapley import estimate

    game = efficientnet_games(n_images, (DEV,))[DEV]
    t0 = time.perf_counter()
    res = estimate(game, method="tmab", k=k, seed=0, max_time=seconds)
    wall = time.perf_counter() - t0
    arrays, _ = res.state
    top = np.argsort(-res.values)[:k]
    return {
        "n_players": game.n_players, "k": k, "wall_s": wall, "evaluations": res.evaluations,
        "evaluations_per_s": res.evaluations / wall, "walks": int(res.info["walks"]),
        "undecided": int(res.info["undecided"]), "converged": bool(res.info["converged"]),
        "interval_state_mb": sum(v.nbytes for key, v in arrays.items()
                                 if key.startswith("betting.")) / 2**20,
        "top": [res.players[i] for i in top],
        "top_intervals": [[round(float(res.ci_low[i]), 4), round(float(res.ci_high[i]), 4)]
                          for i in top],
    }


def write_markdown(payload: dict[str, Any], path: Path) -> None:
    """The measurements as a table, with the ratios that matter computed from them."""
    t, run = payload["throughput"], payload["run"]
    img = payload["images"]
    lines = [f"# GPU path ({payload['device']}, torch {payload['torch']})", "",
             f"Measured {payload.get('measured', '')} by `benchmarks/gpu.py` in one run; "
             "throughput in coalition evaluations/s, one evaluation = the network on all "
             f"{img} images with one coalition (median of timed calls after a warm-up).", ""]
    plain = t.get(f"plain fp32, 8 x {img} images per pass")
    engine = t.get("engine float32, random masks, auto masks per pass")
    walk = t.get("engine float32, walk masks, auto masks per pass")
    tf32 = t.get("engine tf32, random masks, auto masks per pass")
    if all(isinstance(v, float) for v in (plain, engine, walk, tf32)):
        lines += [
            f"- engine / plain (float32): {engine / plain:.2f} on random masks, "
            f"{walk / plain:.2f} on walk-shaped masks;",
            f"- strict float32 / TF32 engine: {engine / tf32:.2f} (the price of CPU-equal "
            "values; see the agreement rows);",
            f"- images/s of the masked engine: {engine * img:,.0f};",
            f"- a real `truncated` run: {run['evaluations_per_s']:.1f} evaluations/s, "
            f"{run['evaluations_per_walk']:.0f} evaluations per walk, 1,000 walks in "
            f"{run['hours_for_1000_walks']:.1f} h.",
            "",
        ]
    lines += ["| measurement | value |", "| --- | ---: |"]
    for section in ("digits_agreement", "efficientnet_agreement", "throughput", "run"):
        for k, v in payload[section].items():
            val = f"{v:.4g}" if isinstance(v, float) else str(v)
            lines.append(f"| {section}: {k} | {val.replace('|', '/')} |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--run-seconds", type=float, default=180.0)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--cpu-dry-run", action="store_true",
                   help="run every step on the CPU at tiny sizes (checks the script only)")
    p.add_argument("--tmab-seconds", type=float, default=0.0,
                   help="only run the default TMAB for this long (writes gpu-tmab.json)")
    p.add_argument("--markdown-only", action="store_true",
                   help="rewrite gpu.md from an existing gpu.json under --out")
    a = p.parse_args()
    if a.markdown_only:
        write_markdown(json.loads((a.out / "gpu.json").read_text()), a.out / "gpu.md")
        return
    global DEV
    if a.cpu_dry_run:
        DEV, a.images, a.rounds, a.run_seconds = "cpu", 2, 1, 5.0
        a.out = a.out / "dry-run"
    elif not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu.py needs a CUDA device (torch.cuda.is_available())")
    torch.set_num_threads(8)
    if a.tmab_seconds:
        out = {"device": torch.cuda.get_device_name() if DEV == "cuda" else "cpu (dry run)",
               "torch": torch.__version__, "images": a.images,
               "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
               "tmab": tmab_run(a.images, a.tmab_seconds)}
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "gpu-tmab.json").write_text(json.dumps(out, indent=1) + "\n")
        print(json.dumps(out, indent=1))
        return
    payload: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if DEV == "cuda" else "cpu (dry run)",
        "torch": torch.__version__, "images": a.images,
    }
    for name, fn in (("digits_agreement", lambda: digits_agreement()),
                     ("efficientnet_agreement", lambda: efficientnet_agreement(16)),
                     ("throughput", lambda: throughput(a.images, a.rounds)),
                     ("run", lambda: real_run(a.images, a.run_seconds))):
        t0 = time.perf_counter()
        payload[name] = fn()
        print(f"{name} ({time.perf_counter() - t0:.0f} s): {payload[name]}", flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    payload["measured"] = time.strftime("%Y-%m-%d %H:%M:%S")
    (a.out / "gpu.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    write_markdown(payload, a.out / "gpu.md")
    print((a.out / "gpu.md").read_text())


if __name__ == "__main__":
    main()
