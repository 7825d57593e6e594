"""How the top-k bandit draws its next marginals, as policies.

Each round the bandit asks its sampler for a request (:mod:`.requests`) for the players
still in play:

- :class:`WalkSampling` (``"walk"``): whole permutation walks; the players in play take
  their marginal on each (the paper's rule);
- :class:`DirectSampling` (``"direct"``): each player in play at its own random position
  (one or two evaluations per marginal, the same distribution as a walk's);
- :class:`SharedSampling` (``"shared"``): random coalitions shared by the players in play,
  about ``1 + m / ln(n)`` evaluations per marginal;
- :class:`AutoSampling` (``"auto"``, the default): walks while they are cheaper per marginal,
  then shared coalitions.

A new sampler is one subclass of :class:`Sampling` with a ``request`` method.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuronshapley.estimators.params import TypePolicy
from neuronshapley.estimators.requests import Direct, Request, Shared, Walks


@dataclass(frozen=True)
class Round:
    """What a sampler decides from: the players in play, what draws have cost so far
    (evaluations and marginals of walks and of direct draws), and the run's sizes."""

    ids: np.ndarray  # players in play
    active: np.ndarray | None  # their mask for walks (None: every player on every walk)
    walk_cost: int
    walk_samples: int
    direct_cost: int
    direct_samples: int
    n: int
    chunk: int
    walks: int  # walks so far


class Sampling(TypePolicy):
    """A sampler policy (see the module docstring)."""

    name = "sampling"

    def request(self, now: Round) -> Request:
        raise NotImplementedError

    @staticmethod
    def walks(now: Round) -> Walks:
        # several walks share game calls, but few enough that the active set is refreshed
        # before the samples grow by more than about an eighth
        return Walks(max(1, now.walks // 8), now.active)

    @staticmethod
    def reps(now: Round) -> int:
        return max(1, now.chunk // (2 * len(now.ids)))


class WalkSampling(Sampling):
    """Whole permutation walks."""

    name = "walk"

    def request(self, now: Round) -> Request:
        return self.walks(now)


class DirectSampling(Sampling):
    """Each player in play at its own random position; several marginals per player when
    few are in play (fuller batches)."""

    name = "direct"

    def request(self, now: Round) -> Request:
        return Direct(np.tile(now.ids, self.reps(now)))


class SharedSampling(Sampling):
    """Random anchor coalitions shared by the players in play."""

    name = "shared"

    def request(self, now: Round) -> Request:
        harmonic = float(np.sum(1.0 / np.arange(1, now.n + 1)))
        return Shared(now.ids, int(np.ceil(harmonic * self.reps(now))))


class AutoSampling(SharedSampling):
    """Walks while they cost no more per marginal than direct draws, then shared anchors."""

    name = "auto"

    def request(self, now: Round) -> Request:
        if now.walk_samples == 0:
            return self.walks(now)
        per_walk = now.walk_cost / now.walk_samples
        if now.direct_samples == 0:
            cheaper = per_walk > 2.0
        else:
            cheaper = now.direct_cost / now.direct_samples < per_walk
        return super().request(now) if cheaper else self.walks(now)


SAMPLINGS: dict[str, type[Sampling]] = {
    "auto": AutoSampling, "walk": WalkSampling, "direct": DirectSampling,
    "shared": SharedSampling}


def make_sampling(sampling: str | Sampling) -> Sampling:
    """A :class:`Sampling` from its name or itself."""
    if isinstance(sampling, Sampling):
        return sampling
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {tuple(SAMPLINGS)} or a Sampling, got "
                         f"{sampling!r}")
    return SAMPLINGS[sampling]()


__all__ = ["SAMPLINGS", "AutoSampling", "DirectSampling", "Round", "Sampling",
           "SharedSampling", "WalkSampling", "make_sampling"]
