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


class Surrogate(ControlVariate):
    """A logistic "collapse" surrogate fitted to earlier walks (:mod:`.surrogate`);
    unbiased, for scalar games with a fixed evaluation set."""

    name = "surrogate"

    def start(self, n: int, v_full: Any, v_null: Any, resamples: bool, seed: int) -> Any:
        from neuronshapley.estimators.surrogate import SurrogateControl

        if len(v_full) != 1:
            raise InputError("control='surrogate' needs a game with one output")
        if resamples:
            raise InputError("control='surrogate' needs a fixed evaluation set "
                             "(the game draws a fresh batch per walk)")
        return SurrogateControl(n, float(v_full[0]), float(v_null[0]), seed)


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
