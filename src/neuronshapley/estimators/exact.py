"""Exact Shapley values by enumerating all 2^n coalitions (small n only)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from neuronshapley.errors import InputError
from neuronshapley.estimators.base import SEED, Estimator
from neuronshapley.estimators.engine import GameInfo, fingerprint, output_names, player_ids
from neuronshapley.estimators.params import Param
from neuronshapley.estimators.registry import register
from neuronshapley.estimators.requests import Answer, Coalitions, Request
from neuronshapley.estimators.stopping import RunView
from neuronshapley.estimators.walks import call_game

MAX_EXACT_PLAYERS = 22


def shapley_from_values(v: np.ndarray, n: int) -> np.ndarray:
    """Exact values (n, d) from ``v`` (2^n, d): the value of the coalition whose bit i is
    player i, for every code 0 .. 2^n - 1."""
    total = 1 << n
    codes = np.arange(total, dtype=np.int64)
    bits = (codes[:, None] >> np.arange(n)) & 1
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
    return phi


def _bits(n: int, start: int, stop: int) -> np.ndarray:
    codes = np.arange(start, stop, dtype=np.int64)
    return ((codes[:, None] >> np.arange(n)) & 1).astype(bool)


def exact_shapley(game: Callable[[np.ndarray], np.ndarray], n: int, chunk: int = 4096
                  ) -> tuple[np.ndarray, int]:
    """Exact values (n, d) and the number of evaluations (2^n)."""
    _check_size(n)
    total = 1 << n
    v = np.concatenate([call_game(game, _bits(n, s, min(s + chunk, total)))
                        for s in range(0, total, chunk)])
    return shapley_from_values(v, n), total


def _check_size(n: int) -> None:
    if n > MAX_EXACT_PLAYERS:
        raise InputError(
            f"exact enumeration needs 2^{n} evaluations; it is limited to "
            f"{MAX_EXACT_PLAYERS} players: use method='tmab' or 'permutation'"
        )


class CoalitionEngine:
    """Evaluates the coalitions it is asked for, nothing else (no V(N) / V(empty) first)."""

    at_boundary = True

    def __init__(self, game: Any, n: int) -> None:
        self.game, self.n = game, n
        self.evaluations = 0
        self.walks = self.truncated_walks = 0
        self._d = 1
        self._fp = fingerprint(game)

    @property
    def info(self) -> GameInfo:
        empty = np.zeros(self._d)
        return GameInfo(self.n, player_ids(self.game, self.n), output_names(self.game, self._d),
                        empty, empty, 0, False, self._fp)

    def run(self, request: Request, hint: int | None, hard: int | None) -> Answer:
        assert isinstance(request, Coalitions)
        v = call_game(self.game, request.masks)
        self.evaluations += len(v)
        self._d = v.shape[1]
        return Answer(v, len(v))

    def starts_round(self, request: Request) -> bool:
        return False

    def finish(self, converged: bool) -> bool:
        return True

    def spent_in_step(self) -> int:
        return 0

    def memento(self) -> Any:
        return self.evaluations

    def rollback(self, memento: Any) -> None:
        self.evaluations = memento

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {"evaluations": self.evaluations}

    def restore(self, arrays: dict[str, np.ndarray], facts: dict[str, Any]) -> None:
        raise InputError("exact enumeration cannot be resumed")


@register
class Exact(Estimator):
    """Every coalition evaluated once, ``chunk`` per game call (n <= 22)."""

    method = "exact"
    sampling = False
    PARAMS = (SEED, Param("chunk", "int", 4096, "coalitions per game call", low=1,
                          none=False))

    def begin(self, info: Any, engine: Any) -> None:
        _check_size(info.n)
        self.n, self.next, self.parts = info.n, 0, []
        self.phi: np.ndarray | None = None

    def converged(self) -> bool:
        return self.phi is not None

    def ask(self, view: RunView, walks_left: int | None) -> Request:
        stop = min(self.next + self._params["chunk"], 1 << self.n)
        return Coalitions(_bits(self.n, self.next, stop))

    def tell(self, request: Request, answer: Answer) -> None:
        self.parts.append(answer.result)
        self.next += len(answer.result)
        if self.next == 1 << self.n:
            self.phi = shapley_from_values(np.concatenate(self.parts), self.n)
            self.parts = []

    def values(self) -> np.ndarray:
        if self.phi is None:
            raise InputError("exact enumeration was stopped before it finished")
        return self.phi

    def interval(self) -> tuple[np.ndarray, np.ndarray]:
        return self.values(), self.values()

    def samples(self) -> np.ndarray:
        return np.full(self.n, 1 << (self.n - 1), dtype=np.int64)

    def confidence(self) -> float | None:
        return 1.0

    def interval_kind(self) -> str:
        return "exact"

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        raise InputError("exact enumeration cannot be resumed")

    def fit(self, game: Callable[[np.ndarray], np.ndarray], n_players: int | None = None,
            **run: Any) -> Any:
        """Enumerate (no checkpoints, budgets or progress: it takes 2^n evaluations)."""
        from neuronshapley.errors import OptionError
        from neuronshapley.estimators.driver import Driver, resolve_players

        extra = {k: v for k, v in run.items() if v not in (None, False)}
        if extra:
            raise OptionError(f"method 'exact' takes no option(s) {sorted(extra)}; it takes "
                              "chunk")
        n = resolve_players(game, n_players)
        _check_size(n)
        return Driver(self, lambda: CoalitionEngine(game, n)).run()


__all__ = ["MAX_EXACT_PLAYERS", "Exact", "exact_shapley", "shapley_from_values"]
