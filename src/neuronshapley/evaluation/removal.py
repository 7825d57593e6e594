"""Removal curves: the metric after removing the top-j units of a ranking, beside random sets."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def removal_masks(
    order: Sequence[int] | np.ndarray,
    n_players: int,
    sizes: Sequence[int],
    draws: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Masks removing the first ``j`` players of ``order``, and ``draws`` random sets of ``j``.

    Returns ``top`` (len(sizes), n_players) and ``random`` (len(sizes), draws, n_players),
    bool, False = removed.
    """
    order = np.asarray(order, dtype=np.int64)
    top = np.ones((len(sizes), n_players), dtype=bool)
    rand = np.ones((len(sizes), draws, n_players), dtype=bool)
    for s, j in enumerate(sizes):
        if not 0 <= j <= n_players:
            raise ValueError(f"cannot remove {j} of {n_players} players")
        top[s, order[:j]] = False
        for d in range(draws):
            rand[s, d, rng.permutation(n_players)[:j]] = False
    return top, rand


def removal_curve(
    game: Callable[[np.ndarray], np.ndarray], top: np.ndarray, rand: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Values of ``game`` for :func:`removal_masks` output, each distinct mask evaluated once.

    Returns ``(top values (S,), random values (S, draws))``.
    """
    s, draws, n = rand.shape
    stacked = np.concatenate([top, rand.reshape(s * draws, n)])
    unique, inverse = np.unique(stacked, axis=0, return_inverse=True)
    values = np.asarray(game(unique), dtype=np.float64)[np.ravel(inverse)]
    return values[:s], values[s:].reshape(s, draws)
