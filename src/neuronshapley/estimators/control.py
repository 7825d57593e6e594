"""Control variates for walk marginals, as policies: a new one is one subclass of
:class:`ControlVariate` whose ``start`` returns an object with ``adjust``/``state``/``restore``
(see :class:`~.surrogate.SurrogateControl`)."""

from __future__ import annotations

from typing import Any

from neuronshapley.errors import InputError
from neuronshapley.estimators.params import TypePolicy


class ControlVariate(TypePolicy):
    """Builds the per-run control (``start``) once V(N) and V(empty) are known."""

    name = "control"

    def start(self, n: int, v_full: Any, v_null: Any, resamples: bool, seed: int) -> Any:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """Its settings as plain values (a run's parameters and checkpoint identity)."""
        return {}


class Surrogate(ControlVariate):
    """A logistic "collapse" surrogate fitted to earlier walks (:mod:`.surrogate`), its part
    scaled by a fixed coefficient ``beta`` (default 1) or one estimated from earlier walks
    (``beta="estimated"``; measured: no gain over 1 on collapse and signed unanimity games);
    unbiased either way, for scalar games with a fixed evaluation set."""

    name = "surrogate"

    def __init__(self, beta: str | float = 1.0) -> None:
        if beta != "estimated" and (isinstance(beta, bool) or not isinstance(beta, int | float)):
            raise InputError(f"Surrogate beta must be 'estimated' or a number, got {beta!r}")
        self.beta = beta

    def settings(self) -> dict[str, Any]:
        return {"beta": self.beta}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.beta == self.beta  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.beta))

    def __repr__(self) -> str:
        return f"Surrogate(beta={self.beta!r})"

    def start(self, n: int, v_full: Any, v_null: Any, resamples: bool, seed: int) -> Any:
        from neuronshapley.estimators.surrogate import SurrogateControl

        if len(v_full) != 1:
            raise InputError("control='surrogate' needs a game with one output")
        if resamples:
            raise InputError("control='surrogate' needs a fixed evaluation set "
                             "(the game draws a fresh batch per walk)")
        control = SurrogateControl(n, float(v_full[0]), float(v_null[0]), seed,
                                   estimate_beta=self.beta == "estimated")
        if self.beta != "estimated":
            control.beta = float(self.beta)
        return control


CONTROLS: dict[str, type[ControlVariate]] = {"surrogate": Surrogate}


def make_control(control: str | ControlVariate) -> ControlVariate | None:
    """A :class:`ControlVariate` from its name (``"none"``: None) or itself."""
    if isinstance(control, ControlVariate):
        return control
    if control == "none":
        return None
    if control not in CONTROLS:
        raise ValueError(f"control must be 'surrogate' or None, got {control!r}")
    return CONTROLS[control]()


__all__ = ["CONTROLS", "ControlVariate", "Surrogate", "make_control"]
