"""Exact Shapley values by enumerating all 2^n coalitions (small n only)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from neuronshapley.estimators.walks import as_2d

MAX_EXACT_PLAYERS = 22


def exact_shapley(
    game: Callable[[np.ndarray], np.ndarray], n: int, chunk: int = 4096
) -> tuple[np.ndarray, int]:
    """Exact values (n, d) and the number of evaluations (2^n)."""
    if n > MAX_EXACT_PLAYERS:
        raise ValueError(
            f"exact enumeration needs 2^{n} evaluations; it is limited to "
            f"{MAX_EXACT_PLAYERS} players: use method='tmab' or 'permutation'"
        )
    total = 1 << n
    codes = np.arange(total, dtype=np.int64)
    bits = (codes[:, None] >> np.arange(n)) & 1
    values: list[np.ndarray] = []
    for start in range(0, total, chunk):
        values.append(as_2d(game(bits[start : start + chunk].astype(bool))))
    v = np.concatenate(values)
    sizes = bits.sum(1)
    # weight of a coalition S (not containing i) of size s: s! (n - s - 1)! / n!
    log_w = np.array(
        [math.lgamma(s + 1) + math.lgamma(n - s) - math.lgamma(n + 1) for s in range(n)]
    )
    phi = np.zeros((n, v.shape[1]))
    for i in range(n):
        without = codes[bits[:, i] == 0]
        w = np.exp(log_w[sizes[without]])
        phi[i] = w @ (v[without | (1 << i)] - v[without])
    return phi, total
