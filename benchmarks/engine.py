"""Masked evaluation against a plain forward pass of the same images, in one run.

Throughput in images per second (an evaluation of M masks on B images counts M * B images):
- plain: the model on the repeated batch (channels-last, inference mode), no hooks;
- masked: ``ModelGame`` on random masks (hooks, lazy batch expansion, metric), per pass size.
The ratio masked / plain is the engine's overhead; the target is >= 0.9.

    python benchmarks/engine.py [--threads 1]

Writes ``results/engine.json`` and ``results/engine.md``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import RESULTS, digits_game, save_json, set_threads


def images_per_second(fn, images_per_call: int, seconds: float = 3.0) -> float:
    fn()  # warm up
    calls, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        calls += 1
    return calls * images_per_call / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    set_threads(args.threads)
    rows = []
    for pass_size in (2048, 8192, 32768):
        game = digits_game(pass_size=pass_size)
        m = game.masks_per_pass
        b = len(game.inputs)
        masks = np.random.default_rng(0).random((m, game.n_players)) > 0.3
        x = game.inputs.repeat(m, 1, 1, 1).contiguous(memory_format=torch.channels_last)

        def plain(x: torch.Tensor = x, game=game) -> None:
            with torch.inference_mode():
                game.model(x)

        def masked(masks: np.ndarray = masks, game=game) -> None:
            game(masks)

        # interleave to share the machine's noise fairly
        p1 = images_per_second(plain, m * b, args.seconds)
        q1 = images_per_second(masked, m * b, args.seconds)
        p2 = images_per_second(plain, m * b, args.seconds)
        q2 = images_per_second(masked, m * b, args.seconds)
        plain_ips, masked_ips = (p1 + p2) / 2, (q1 + q2) / 2
        rows.append({"pass_size": pass_size, "masks_per_pass": m, "images": b,
                     "plain_images_per_s": plain_ips, "masked_images_per_s": masked_ips,
                     "evaluations_per_s": masked_ips / b, "ratio": masked_ips / plain_ips})
        print(rows[-1])
    lines = ["# Engine throughput (digits CNN, 80 filters, 360 images)", "",
             "| pass size | masks per pass | plain images/s | masked images/s | "
             "evaluations/s | masked / plain |", "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['pass_size']} | {r['masks_per_pass']} | "
                     f"{r['plain_images_per_s']:.0f} | {r['masked_images_per_s']:.0f} | "
                     f"{r['evaluations_per_s']:.1f} | {r['ratio']:.2f} |")
    md = "\n".join(lines)
    print(md)
    save_json("engine", {"rows": rows})
    (RESULTS / "engine.md").write_text(md + "\n")


if __name__ == "__main__":
    main()
