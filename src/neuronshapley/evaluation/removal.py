"""Removal curves: the metric after removing the top-j units of a ranking, beside random sets."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def prefix_masks(
    order: Sequence[int] | np.ndarray, n_players: int, sizes: Sequence[int]
) -> np.ndarray:
    """Masks (len(sizes), n_players), bool: row ``s`` removes (False) the first ``sizes[s]``
    players of ``order``."""
    order = np.asarray(order, dtype=np.int64)
    masks = np.ones((len(sizes), n_players), dtype=bool)
    for s, j in enumerate(sizes):
        if not 0 <= j <= n_players:
            raise ValueError(f"cannot remove {j} of {n_players} players")
        masks[s, order[:j]] = False
    return masks


def random_masks(
    n_players: int, sizes: Sequence[int], draws: int, rng: np.random.Generator
) -> np.ndarray:
    """Masks (len(sizes), draws, n_players), bool: ``draws`` random sets of ``sizes[s]``
    players removed (False) per size, drawn size by size with ``rng.permutation``."""
    masks = np.ones((len(sizes), draws, n_players), dtype=bool)
    for s, j in enumerate(sizes):
        if not 0 <= j <= n_players:
            raise ValueError(f"cannot remove {j} of {n_players} players")
        for d in range(draws):
            masks[s, d, rng.permutation(n_players)[:j]] = False
    return masks


def removal_masks(
    order: Sequence[int] | np.ndarray,
    n_players: int,
    sizes: Sequence[int],
    draws: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Masks removing the first ``j`` players of ``order``, and ``draws`` random sets of ``j``.

    Returns ``top`` (len(sizes), n_players) (:func:`prefix_masks`) and ``random``
    (len(sizes), draws, n_players) (:func:`random_masks`), bool, False = removed.
    """
    return prefix_masks(order, n_players, sizes), random_masks(n_players, sizes, draws, rng)


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
