"""Engines answer an estimator's requests on a game; this one in the calling process.

An engine owns the random stream and the evaluation counters, knows V(N) and V(empty), and
can be rolled back to the start of a step (:meth:`memento` / :meth:`rollback`), which the
driver does when a step is cut short (Ctrl-C in the game, a spent budget). The worker-pool
engine (``neuronshapley.distributed``) has the same methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from neuronshapley.estimators.requests import (
    Answer,
    BudgetSpent,
    Coalitions,
    Direct,
    Request,
    Shared,
    Walks,
)
from neuronshapley.estimators.sampler import WalkSampler
from neuronshapley.estimators.truncation import TruncationRule
from neuronshapley.estimators.walks import call_game


@dataclass
class GameInfo:
    """What the estimator and the result need to know about the game."""

    n: int
    players: list[str]
    output_names: list[str] | None
    v_full: np.ndarray  # (d,) V(N)
    v_null: np.ndarray  # (d,) V(empty)
    chunk: int
    resamples: bool
    fingerprint: str | None

    @property
    def d(self) -> int:
        return int(self.v_full.shape[0])


def player_ids(game: Any, n: int) -> list[str]:
    """The game's ``players`` ids when it has ``n`` of them, else ``p0, p1, ...``."""
    ids = getattr(game, "players", None)
    if ids is not None and not callable(ids) and len(ids) == n:
        return [str(p) for p in ids]
    return [f"p{i}" for i in range(n)]


def output_names(game: Any, d: int) -> list[str] | None:
    if d == 1:
        return None
    names = getattr(game, "output_names", None)
    return list(names) if names is not None and len(names) == d else None


def fingerprint(game: Any) -> str | None:
    """The game's ``fingerprint()`` (None when it has none)."""
    fp = getattr(game, "fingerprint", None)
    return str(fp()) if callable(fp) else None


class BudgetGuard:
    """The game, refusing any call that would take the evaluations past ``left``."""

    def __init__(self, game: Any) -> None:
        self.game = game
        self.left: int | None = None
        self.used = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.game, name)

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        if self.left is not None and self.used + len(masks) > self.left:
            raise BudgetSpent(self.used)
        self.used += len(masks)
        return self.game(masks)


class InProcessEngine:
    """Answers requests with a :class:`WalkSampler` on one generator seeded with ``seed``."""

    at_boundary = True  # every step ends with nothing computed and left unapplied

    def __init__(self, game: Any, n: int, seed: int | None, truncation: TruncationRule | None,
                 chunk: int | None, strata: int, permutations: str = "random") -> None:
        self.rng = np.random.default_rng(seed)
        self.sampler = WalkSampler(game, n, self.rng, truncation, chunk, strata, permutations)
        d = self.sampler.output_dim
        self.guard = BudgetGuard(game)
        self.sampler.game = self.guard
        self.info = GameInfo(n, player_ids(game, n), output_names(game, d),
                             self.sampler.v_full.copy(), self.sampler.v_null.copy(),
                             self.sampler.chunk, self.sampler.resamples, fingerprint(game))

    # counters
    @property
    def evaluations(self) -> int:
        return self.sampler.evaluations

    @property
    def walks(self) -> int:
        return self.sampler.walks

    @property
    def truncated_walks(self) -> int:
        return self.sampler.truncated_walks

    def seed_for(self, purpose: int) -> int:
        """A seed drawn from the run's stream (e.g. for a control variate's own generator)."""
        return int(self.rng.integers(2**63))

    def run(self, request: Request, hint: int | None, hard: int | None) -> Answer:
        """Answer ``request``; ``hint``: evaluations the caller would like it to cost at most
        (sizes walk pools), ``hard``: evaluations it may cost (else :class:`BudgetSpent`)."""
        s = self.sampler
        before = s.evaluations
        self.guard.left, self.guard.used = hard, 0
        try:
            if isinstance(request, Walks):
                s.budget_left = hint
                count = request.count if request.most is None else min(request.count,
                                                                        request.most)
                result: Any = s.walk_many(max(1, count), request.active)
            elif isinstance(request, Direct):
                result = s.direct(request.ids)
            elif isinstance(request, Shared):
                result = s.shared(request.ids, request.anchors)
            elif isinstance(request, Coalitions):
                result = call_game(self.guard, request.masks)
                s.evaluations += len(request.masks)
            else:
                raise TypeError(f"unknown request {request!r}")
        finally:
            self.guard.left = None
        return Answer(result, s.evaluations - before)

    def spent_in_step(self) -> int:
        """Evaluations made by the last (possibly cut) request."""
        return self.guard.used

    def memento(self) -> Any:
        return self.sampler.state()

    def rollback(self, memento: Any) -> None:
        self.sampler.restore(*memento)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return self.sampler.state()

    def restore(self, arrays: dict[str, np.ndarray], facts: dict[str, Any]) -> None:
        self.sampler.restore(arrays, facts)

    def starts_round(self, request: Request) -> bool:
        """Whether answering ``request`` starts a round of precomputed work (never here)."""
        return False

    def finish(self, converged: bool) -> bool:
        """End of the run; True: the current state is a boundary (always here)."""
        return True

    def close(self) -> None:
        pass


__all__ = ["GameInfo", "InProcessEngine", "fingerprint", "output_names", "player_ids"]
