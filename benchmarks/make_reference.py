"""Long plain Monte-Carlo run on the digits game: the reference the estimator benchmark
compares against, stored with its standard errors and the game's fingerprint.

    python benchmarks/make_reference.py --permutations 1200
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import RESULTS, digits_game, set_threads

import neuronshapley as ns


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--permutations", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    set_threads(args.threads)
    game = digits_game()
    t0 = time.perf_counter()
    res = ns.estimate(game, method="permutation", n_permutations=args.permutations,
                      seed=args.seed, progress=True,
                      checkpoint=RESULTS / f".reference-ckpt-{args.seed}",
                      resume=(RESULTS / f".reference-ckpt-{args.seed}" / "state.npz").exists(),
                      checkpoint_every=60.0)
    sd = (res.ci_high - res.ci_low) / (2 * 1.959963984540054)
    out = RESULTS / "digits_reference.npz"
    np.savez(out, values=res.values, stderr=sd, samples=res.samples,
             players=np.array(res.players), fingerprint=game.fingerprint(),
             evaluations=res.evaluations, seconds=time.perf_counter() - t0)
    print(f"wrote {out}: {res.evaluations} evaluations, fingerprint {game.fingerprint()}")
    order = np.argsort(-res.values)
    for r, i in enumerate(order[:12]):
        print(f"{r + 1:2d} {res.players[i]:14s} {res.values[i]:+.4f} +- {sd[i]:.4f}")


if __name__ == "__main__":
    main()
