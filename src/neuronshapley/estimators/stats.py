"""Running mean and variance of marginal contributions, per player and output (Welford)."""

from __future__ import annotations

import numpy as np


class RunningStats:
    """Per-player running mean and sum of squared deviations of (d,)-vectors.

    ``count`` has shape (n,); ``mean`` and ``m2`` have shape (n, d).
    """

    def __init__(self, n: int, d: int = 1) -> None:
        self.count = np.zeros(n, dtype=np.int64)
        self.mean = np.zeros((n, d), dtype=np.float64)
        self.m2 = np.zeros((n, d), dtype=np.float64)

    def update(self, players: np.ndarray, x: np.ndarray) -> None:
        """Add one observation ``x[r]`` (d,) for each player ``players[r]`` (players unique)."""
        players = np.asarray(players, dtype=np.int64)
        if players.size == 0:
            return
        x = np.asarray(x, dtype=np.float64).reshape(len(players), -1)
        c = self.count[players] + 1
        delta = x - self.mean[players]
        new_mean = self.mean[players] + delta / c[:, None]
        self.m2[players] += delta * (x - new_mean)
        self.mean[players] = new_mean
        self.count[players] = c

    def variance(self) -> np.ndarray:
        """Unbiased sample variance (n, d); 0 where fewer than two samples."""
        denom = np.maximum(self.count - 1, 1)[:, None]
        return np.where(self.count[:, None] > 1, self.m2 / denom, 0.0)

    def merge(self, other: RunningStats) -> RunningStats:
        """Combine with statistics of independent samples of the same players (Chan et al.)."""
        if other.mean.shape != self.mean.shape:
            raise ValueError(
                f"cannot merge stats of shape {other.mean.shape} into {self.mean.shape}"
            )
        out = RunningStats(*self.mean.shape)
        n = self.count + other.count
        safe = np.maximum(n, 1)[:, None]
        delta = other.mean - self.mean
        out.count = n
        out.mean = self.mean + delta * (other.count[:, None] / safe)
        out.m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count)[:, None] / safe
        return out

    def state(self) -> dict[str, np.ndarray]:
        return {"count": self.count.copy(), "mean": self.mean.copy(), "m2": self.m2.copy()}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> RunningStats:
        n, d = np.asarray(state["mean"]).shape
        out = cls(n, d)
        out.count = np.asarray(state["count"], dtype=np.int64).copy()
        out.mean = np.asarray(state["mean"], dtype=np.float64).copy()
        out.m2 = np.asarray(state["m2"], dtype=np.float64).copy()
        return out
