"""Which permutations the walks follow: independent uniform ones, or a Sobol sequence.

``"random"``: every walk an independent uniform random permutation (the default; what the
bandit's confidence sequences need).

``"sobol"``: walk ``w`` follows the ranks of the ``w``-th point of one scrambled Sobol
sequence in ``n`` dimensions. Each scrambled point is uniform on the unit cube, so each
walk on its own is a uniform random permutation and every marginal stays unbiased; the
points fill the cube more evenly than independent draws, so the players' positions spread
more evenly over the walks of a run (measured in ``benchmarks/permutation_designs.py``).
Walks of one run are then dependent, which the per-unit normal intervals ignore (they are
computed as for independent walks). Walk ``w``'s permutation depends only on the sequence's
seed and ``w``: a resumed run and a worker pool reproduce it.
"""

from __future__ import annotations

import warnings

import numpy as np

from neuronshapley.errors import InputError

PERMUTATIONS = ("random", "sobol")
#: the most dimensions scipy's Sobol direction numbers cover
SOBOL_MAX_PLAYERS = 21201


def check_permutations(permutations: str, n: int, strata: int) -> None:
    """A clear error for a design that cannot run on ``n`` players with ``strata``."""
    if permutations not in PERMUTATIONS:
        raise InputError(f"permutations must be one of {PERMUTATIONS}, got {permutations!r}")
    if permutations == "sobol":
        if strata > 1:
            raise InputError("strata and permutations='sobol' are two designs of the walks: "
                             "use one of them (strata=1 or permutations='random')")
        if n > SOBOL_MAX_PLAYERS:
            raise InputError(f"permutations='sobol' covers at most {SOBOL_MAX_PLAYERS} "
                             f"players, the game has {n}: use permutations='random'")


class SobolPermutations:
    """Walk ``w``'s permutation from one scrambled Sobol sequence seeded with ``seed``."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed = int(n), int(seed)
        self._engine = None
        self._next = 0  # index of the point the engine draws next

    def __call__(self, w: int) -> np.ndarray:
        from scipy.stats import qmc

        if self._engine is None or w < self._next:
            self._engine = qmc.Sobol(d=self.n, scramble=True, seed=self.seed)
            self._next = 0
        if w > self._next:
            self._engine.fast_forward(w - self._next)
        with warnings.catch_warnings():  # single points: the run as a whole is the sequence
            warnings.simplefilter("ignore", UserWarning)
            point = self._engine.random(1)[0]
        self._next = w + 1
        return np.argsort(point, kind="stable")


__all__ = ["PERMUTATIONS", "SOBOL_MAX_PLAYERS", "SobolPermutations", "check_permutations"]
