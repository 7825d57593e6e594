"""When a sub-network counts as dead, and what the marginals it skips become.

A truncation rule has one test, :meth:`TruncationRule.dead`, used alike by permutation
walks, direct draws and shared anchors; walks wait for ``patience`` dead steps in a row,
the other two samplers decide on one coalition. Its :class:`Fill` says what a skipped
marginal becomes:

- :class:`Zero` (the paper's rule): 0, biased by whatever value is left;
- :class:`Share`: the value still left, ``V(dead step) - V(empty)``, split equally over the
  skipped players, so every walk's marginals sum to ``V(N) - V(empty)``;
- :class:`Roulette` (unbiased): at the dead point the sample goes on anyway with
  probability ``keep`` and what it measures from there is divided by ``keep``; otherwise 0
  (E = keep * x / keep = x), at ``keep`` times the cost of the skipped part.

A new rule is one subclass of :class:`TruncationRule` with a ``dead`` method; a new fill one
subclass of :class:`Fill`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuronshapley.estimators.params import Param, validate


class Fill:
    """What skipped marginals become (see the module docstring). Subclasses override."""

    name = "zero"
    keep = 1.0  # probability that a dead sample goes on anyway
    unbiased = False  # True: filled marginals have the true marginals' expectation

    def goes_on(self, rng: np.random.Generator | None) -> bool:
        """Whether one dead walk goes on past its dead point (draws from ``rng`` if needed)."""
        return False

    def goes_on_many(self, rng: np.random.Generator, m: int) -> np.ndarray:
        """Which of ``m`` dead coalitions are evaluated anyway, bool (m,)."""
        return np.zeros(m, dtype=bool)

    def rest(self, values: np.ndarray, cut: int, stop_at: int, v_null: np.ndarray,
             n: int) -> None:
        """Fill ``values[cut + 1 : stop_at + 1]`` (V along a walk cut after step ``cut``)."""
        values[cut + 1 : stop_at + 1] = values[cut]


class Zero(Fill):
    """Skipped marginals are 0 (the paper's rule)."""


class Share(Fill):
    """The value left at the dead point is split equally over the skipped players."""

    name = "share"

    def rest(self, values: np.ndarray, cut: int, stop_at: int, v_null: np.ndarray,
             n: int) -> None:
        rest = np.arange(cut + 1, stop_at + 1)
        per_player = (values[cut] - v_null) / (n - cut)
        values[rest] = values[cut] - per_player * (rest - cut)[:, None]


@dataclass(frozen=True)
class Roulette(Fill):
    """Unbiased: a dead sample goes on with probability ``keep``, reweighted by 1/keep."""

    keep: float = 0.1  # type: ignore[misc]
    name = "roulette"  # type: ignore[misc]
    unbiased = True  # type: ignore[misc]

    def __post_init__(self) -> None:
        validate("Roulette", [Param("keep", "float", 0.1, "probability of going on",
                                    low=0.0, high=1.0, low_open=True, none=False)],
                 {"keep": self.keep})

    def goes_on(self, rng: np.random.Generator | None) -> bool:
        if rng is None:
            raise ValueError("roulette truncation needs a random generator")
        return bool(rng.random() < self.keep)

    def goes_on_many(self, rng: np.random.Generator, m: int) -> np.ndarray:
        return rng.random(m) < self.keep


FILLS: dict[str, type[Fill]] = {"zero": Zero, "share": Share, "roulette": Roulette}


def make_fill(fill: str | Fill, keep: float = 0.1) -> Fill:
    """A :class:`Fill` from its name (``keep`` for roulette) or itself."""
    if isinstance(fill, Fill):
        return fill
    if fill not in FILLS:
        raise ValueError(f"truncation fill must be one of {tuple(FILLS)}, got {fill!r}")
    return Roulette(keep) if fill == "roulette" else FILLS[fill]()


class TruncationRule:
    """A dead-network test with its ``patience`` (dead walk steps in a row) and ``fill``."""

    patience: int = 1
    fill: Fill = Zero()

    def dead(self, values: np.ndarray, v_null: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Which coalitions count as dead: ``values`` (m, d) -> bool (m,).

        ``v_null`` (d,) is V(empty) and ``scale`` (d,) ``|V(N) - V(empty)|``.
        """
        raise NotImplementedError

    @property
    def keep(self) -> float:
        return self.fill.keep

    def params(self) -> dict[str, Any]:
        """The rule's settings as plain values (for provenance and checkpoints)."""
        return {"rule": type(self).__name__, "patience": self.patience,
                "fill": self.fill.name, "keep": self.fill.keep}


@dataclass(frozen=True)
class DeadNetwork(TruncationRule):
    """Dead when every output is within ``tolerance * |V(N) - V(empty)|`` of V(empty)."""

    tolerance: float = 0.05
    patience: int = 3  # type: ignore[misc]
    fill: Fill = field(default_factory=Zero)  # type: ignore[misc]

    PARAMS = (
        Param("tolerance", "float", 0.05, "fraction of |V(N) - V(empty)|", low=0.0, high=1.0,
              high_open=True, none=False),
        Param("patience", "int", 3, "dead walk steps in a row", low=1, none=False),
        Param("fill", Fill, None, "what skipped marginals become", coerce=make_fill,
              none=False),
    )

    def __post_init__(self) -> None:
        checked = validate("DeadNetwork", self.PARAMS, {
            "tolerance": self.tolerance, "patience": self.patience, "fill": self.fill})
        for key, value in checked.items():
            object.__setattr__(self, key, value)

    def dead(self, values: np.ndarray, v_null: np.ndarray, scale: np.ndarray) -> np.ndarray:
        return np.all(np.abs(values - v_null) <= self.tolerance * scale, axis=-1)

    @property
    def fill_name(self) -> str:
        return self.fill.name

    def params(self) -> dict[str, Any]:
        return {**super().params(), "tolerance": self.tolerance}


def Truncation(  # noqa: N802 - reads as the rule it builds
        tolerance: float = 0.05, patience: int = 3, fill: str | Fill = "zero",
        keep: float = 0.1) -> DeadNetwork:
    """:class:`DeadNetwork` from flat settings (the facade's ``truncation_*`` options)."""
    return DeadNetwork(tolerance, patience, make_fill(fill, keep))


#: the facade's flat truncation options, translated into a :class:`DeadNetwork` rule
TRUNCATION_OPTIONS = (
    Param("truncation_tolerance", "float", 0.05, "fraction of |V(N) - V(empty)|", low=0.0,
          high=1.0, high_open=True, none=False),
    Param("truncation_patience", "int", 3, "dead walk steps in a row", low=1, none=False),
    Param("truncation_fill", "str", "zero", "what skipped marginals become",
          choices=tuple(FILLS), none=False),
    Param("truncation_keep", "float", 0.1, "roulette: probability of going on", low=0.0,
          high=1.0, low_open=True, none=False),
)
FLAT_NAMES = tuple(p.name for p in TRUNCATION_OPTIONS)


def from_flat(where: str, flat: dict[str, Any]) -> DeadNetwork:
    """The rule the flat ``truncation_*`` options in ``flat`` describe (checked)."""
    got = validate(where, TRUNCATION_OPTIONS, flat)
    return Truncation(got["truncation_tolerance"], got["truncation_patience"],
                      got["truncation_fill"], got["truncation_keep"])


def flat_truncation(rule: TruncationRule | None) -> dict[str, Any]:
    """A truncation rule as the facade's flat ``truncation_*`` options."""
    if rule is None:
        return {"truncation": False}
    p = rule.params()
    out = {"truncation_tolerance": p.get("tolerance"), "truncation_patience": p["patience"],
           "truncation_fill": p["fill"], "truncation_keep": p["keep"]}
    if type(rule) is not DeadNetwork:
        out["truncation_rule"] = p["rule"]
    return out


__all__ = ["FILLS", "FLAT_NAMES", "TRUNCATION_OPTIONS", "DeadNetwork", "Fill", "Roulette",
           "Share", "Truncation", "TruncationRule", "Zero", "flat_truncation", "from_flat",
           "make_fill"]
