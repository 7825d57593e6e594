"""Masked evaluation against its physical limit: a plain pass of only the layers that change.

Removing units changes nothing before the first player layer, so no engine can do better
than running the rest of the network (the *tail*, from the first player layer on) once per
mask on activations computed once. For each network and player set, measured in one run on
the same images and walk-shaped masks (``masks_per_pass`` consecutive steps of a random
permutation walk per call):

- limit: the tail alone (``ModelGame.split.suffix``, no hooks) on the cached activations
  repeated once per mask, in passes of the game's size;
- default: ``ModelGame`` with its defaults (prefix cache, pass size from what runs);
- whole: ``ModelGame(prefix_cache=False)`` (every call runs the whole network);

each a median over ``--rounds`` interleaved calls, in milliseconds per evaluation (one mask
on all images). Peak memory: the process's peak resident set after building and running
each case in a fresh child process.

    python benchmarks/engine_tail.py [--threads 1] [--rounds 5] [--images 32]
                                     [--cases digits,residual,eff-head,eff-last,eff-residual]

Writes ``results/engine_tail.json`` and ``results/engine_tail.md``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
from typing import Any

import numpy as np
import torch
from common import RESULTS, save_json, set_threads, walk_masks

CASES = {
    # name: (network, player patterns, description)
    "digits": ("digits", ["features.*"], "digits CNN, all 80 conv filters"),
    "residual": ("residual", ["block*"], "residual CNN (digits), the two residual blocks"),
    "eff-head": ("eff", ["_conv_head"], "EfficientNet-Lite0, head conv (1,280 channels)"),
    "eff-last": ("eff", ["_blocks.15.*", "_conv_head"],
                 "EfficientNet-Lite0, block 15 + head (3,904 channels)"),
    "eff-residual": ("eff", ["_blocks.13._project_conv", "_blocks.14._project_conv",
                             "_blocks.15._project_conv", "_conv_head"],
                     "EfficientNet-Lite0, project convs inside residual blocks 13-14 + 15 + "
                     "head (1,984 channels)"),
}


def _model_and_data(network: str, n_images: int) -> tuple[torch.nn.Module, torch.Tensor,
                                                          torch.Tensor]:
    if network == "eff":
        from scale import image_batch

        from neuronshapley.zoo.efficientnet import pretrained_efficientnet_lite0

        model = pretrained_efficientnet_lite0("cpu")
        x = image_batch(n_images, 0)
        with torch.inference_mode():
            return model, x, model(x).argmax(1)
    from neuronshapley.zoo.architectures import ResidualCNN, fit, make_data
    from neuronshapley.zoo.digits import pretrained_digits_cnn

    if network == "digits":
        model, data = pretrained_digits_cnn()
        return model, data.x_valuation, data.y_valuation
    data = make_data("digits")
    model = ResidualCNN()
    fit(model, data, epochs=3)
    return model.eval(), data.x_test, data.y_test


def run_case(name: str, n_images: int, rounds: int, threads: int) -> dict[str, Any]:
    """One case (in its own process): ms per evaluation of limit, default and whole."""
    from neuronshapley import ModelGame
    from neuronshapley.network import inputs as batch

    set_threads(threads)
    network, patterns, description = CASES[name]
    model, x, y = _model_and_data(network, n_images)
    default = ModelGame(model, x, y, metric="accuracy", players=patterns)
    whole = ModelGame(model, x, y, metric="accuracy", players=patterns, prefix_cache=False,
                      pass_size=default.pass_size)
    m = default.masks_per_pass
    rng = np.random.default_rng(0)
    split = default.split

    def limit() -> None:
        assert split is not None
        cut = default._cut  # noqa: SLF001 - the benchmark reads the game's own cache
        with torch.inference_mode():
            for b0 in range(0, len(x), default.batch_size):
                part = batch.take(cut, slice(b0, b0 + default.batch_size))
                split.suffix(**batch.expand(part, m))

    fns = {"default": lambda: default(walk_masks(default.n_players, m, rng)),
           "whole": lambda: whole(walk_masks(default.n_players, m, rng))}
    if split is not None:
        fns["limit"] = limit
    times: dict[str, list[float]] = {k: [] for k in fns}
    for f in fns.values():
        f()
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append((time.perf_counter() - t0) / m * 1000)
    ms = {k: float(np.median(v)) for k, v in times.items()}
    return {"case": name, "description": description, "players": default.n_players,
            "images": len(x), "masks_per_pass": m, "pass_size": default.pass_size,
            "split": split is not None, "cut": split.cut if split else None,
            "strategy": default.ablator.strategy, "ms_per_evaluation": ms,
            "default_over_limit": ms["default"] / ms["limit"] if "limit" in ms else None,
            "whole_over_default": ms["whole"] / ms["default"],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _child(args: tuple[str, int, int, int], out: Any) -> None:
    out.put(run_case(*args))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    rows = []
    for name in args.cases.split(","):
        queue = ctx.Queue()
        proc = ctx.Process(target=_child, args=((name, args.images, args.rounds,
                                                 args.threads), queue))
        proc.start()
        row = queue.get()
        proc.join()
        rows.append(row)
        print(_line(row), flush=True)
    save_json("engine_tail", {"rows": rows, "threads": args.threads, "images": args.images,
                              "rounds": args.rounds})
    (RESULTS / "engine_tail.md").write_text(render(rows, args))


def _line(r: dict[str, Any]) -> str:
    ms = r["ms_per_evaluation"]
    lim = f"{ms['limit']:.2f}" if "limit" in ms else "-"
    ratio = f"{r['default_over_limit']:.2f}" if r["default_over_limit"] else "-"
    return (f"| {r['description']} | {r['players']} | {r['masks_per_pass']} | {lim} | "
            f"{ms['default']:.2f} | {ms['whole']:.2f} | {ratio} | "
            f"{r['whole_over_default']:.1f}x | {r['peak_rss_mb']:.0f} |")


def render(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    head = [
        "# Masked evaluation against the tail-only limit",
        "",
        f"{args.images} images per evaluation, walk-shaped masks, {args.threads} torch "
        f"thread(s), median of {args.rounds} interleaved calls; ms per evaluation (one mask on "
        "all images). limit: the layers from the first player layer on, run plainly on cached "
        "activations; default: ModelGame's defaults; whole: without the prefix cache.",
        "",
        "| network, players | units | masks/pass | limit ms | default ms | whole ms | "
        "default / limit | whole / default | peak MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    return "\n".join(head + [_line(r) for r in rows]) + "\n"


if __name__ == "__main__":
    main()
