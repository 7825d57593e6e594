"""Parameters declared once beside each estimator or policy, validated once when it is made.

A class lists its parameters as :class:`Param` entries (name, kind, range or choices,
default, one line of documentation); :func:`validate` checks given values against them and
raises :class:`~neuronshapley.errors.InputError` naming the parameter, the value and what is
allowed. Booleans are not integers here, strings are not numbers, and an integer kind
refuses fractions (``k=2.5``), as scikit-learn's parameter constraints do.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from neuronshapley.errors import InputError

_UNSET = object()


@dataclass(frozen=True)
class Param:
    """One declared parameter.

    ``kind``: ``"int"``, ``"float"``, ``"bool"``, ``"str"`` (one of ``choices``), ``"seconds"``
    (a float), or a class / tuple of classes the value must be an instance of. ``low`` /
    ``high`` bound numbers (``low_open`` / ``high_open`` exclude the end); ``none`` allows
    None; ``coerce`` turns an accepted alternative (e.g. a policy's name) into the value.
    """

    name: str
    kind: Any
    default: Any = None
    doc: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: Sequence[Any] | None = None
    none: bool = True
    coerce: Callable[[Any], Any] | None = None

    def allowed(self) -> str:
        """What the parameter takes, in words (for error messages and help)."""
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif isinstance(self.kind, str):
            text = {"int": "an integer", "float": "a number", "seconds": "a number of seconds",
                    "bool": "True or False", "str": "a string"}[self.kind]
            if self.low is not None or self.high is not None:
                lo = "" if self.low is None else f"{self.low:g} {'<' if self.low_open else '<='} "
                hi = "" if self.high is None else \
                    f" {'<' if self.high_open else '<='} {self.high:g}"
                text += f" with {lo}{self.name}{hi}"
        else:
            kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
            text = "a " + " or ".join(k.__name__ for k in kinds)
        return text + (" or None" if self.none and self.default is None else "")

    def check(self, value: Any, owner: str) -> Any:
        """``value`` if it is allowed (coerced), else an :class:`InputError`."""
        try:
            return self._check(value, owner)
        except InputError:
            raise self._error(value, owner) from None

    def _check(self, value: Any, owner: str) -> Any:
        if value is None:
            if self.none:
                return None
            raise self._error(value, owner)
        if self.coerce is not None:
            try:
                value = self.coerce(value)
            except (ValueError, TypeError, KeyError) as err:
                raise InputError(str(err)) from None
            if value is None and self.none:
                return None
        kind = self.kind
        if kind == "bool":
            if not isinstance(value, (bool, numbers.Integral)) or value not in (0, 1):
                raise self._error(value, owner)
            return bool(value)
        if kind in ("int", "float", "seconds"):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise self._error(value, owner)
            if kind == "int":
                if not isinstance(value, numbers.Integral) and not (
                        math.isfinite(value) and float(value).is_integer()):
                    raise self._error(value, owner)
                value = int(value)
            else:
                value = float(value)
                if not math.isfinite(value):
                    raise self._error(value, owner)
            if self.low is not None and (value < self.low or (self.low_open
                                                              and value == self.low)):
                raise self._error(value, owner)
            if self.high is not None and (value > self.high or (self.high_open
                                                                and value == self.high)):
                raise self._error(value, owner)
            return value
        if kind == "str":
            if not isinstance(value, str) or (self.choices is not None
                                              and value not in self.choices):
                raise self._error(value, owner)
            return value
        if self.choices is not None and value not in self.choices:
            raise self._error(value, owner)
        if not isinstance(kind, str) and not isinstance(value, kind):
            raise self._error(value, owner)
        return value

    def _error(self, value: Any, owner: str, why: str = "") -> InputError:
        extra = f" ({why})" if why else ""
        return InputError(
            f"{owner}: {self.name}={value!r} is not allowed{extra}; {self.name} takes "
            f"{self.allowed()}"
        )


def validate(owner: str, params: Sequence[Param], given: dict[str, Any]) -> dict[str, Any]:
    """All of ``params`` with the given values checked and the others at their defaults.

    Unknown names are an :class:`InputError` that lists the known ones.
    """
    names = {p.name for p in params}
    unknown = sorted(set(given) - names)
    if unknown:
        raise InputError(
            f"{owner} takes no parameter {', '.join(map(repr, unknown))}; it takes "
            f"{', '.join(sorted(names))}"
        )
    return {p.name: p.check(given.get(p.name, p.default), owner) for p in params}


def describe(params: Sequence[Param]) -> list[str]:
    """One line per parameter: ``name: what it takes (default ...). doc``."""
    return [f"{p.name}: {p.allowed()} (default {p.default!r}). {p.doc}".rstrip()
            for p in params]


__all__ = ["Param", "describe", "validate"]


class TypePolicy:
    """A policy with no settings: equal to, and hashed and shown as, its class."""

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
