"""What every estimator needs from a game, with no torch: the :class:`Game` protocol.

A game is a batched value function over coalitions: ``game(masks)`` maps a bool matrix
``(M, n_players)`` (True keeps a player) to values ``(M,)`` or ``(M, d)``. Any callable with
that signature is a game; ``n_players`` tells its width.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from neuronshapley.errors import GameError


@runtime_checkable
class Game(Protocol):
    """What the estimators need: a batched value function over coalitions."""

    n_players: int

    def __call__(self, masks: np.ndarray) -> np.ndarray: ...


def check_masks(masks: Any, n_players: int) -> np.ndarray:
    """Validate a coalition matrix and return it as a bool array (M, n_players)."""
    arr = np.asarray(masks)
    if arr.ndim == 1 and arr.shape[0] == n_players:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise GameError(f"masks must be a 2-D array (M, {n_players}), got shape {arr.shape}")
    if arr.shape[1] != n_players:
        raise GameError(
            f"masks have width {arr.shape[1]} but the game has {n_players} players"
        )
    if arr.dtype != np.bool_:
        if not np.isin(arr, (0, 1)).all():
            raise GameError("masks must be boolean (or 0/1): True keeps a player")
        arr = arr.astype(bool)
    return arr
