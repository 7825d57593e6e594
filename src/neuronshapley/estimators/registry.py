"""Estimators by name: what ``estimate(method=...)`` can run and which options each takes.

A class becomes reachable by name with one line, ``REGISTRY["name"] = MyEstimator`` (or the
:func:`register` decorator). Options are the class's declared parameters (less ``seed`` and
``stop``), the flat ``truncation_*`` options where it truncates, and the run options where
it samples; how they become an instance is the class's
:meth:`~.base.Estimator.from_options`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from neuronshapley.errors import InputError, OptionError
from neuronshapley.estimators.base import Estimator

#: method name -> estimator class (the built-in ones register when their modules load)
REGISTRY: dict[str, type[Estimator]] = {}

#: options of the run, not of the estimator (every sampling method takes them)
RUN_OPTIONS = ("progress", "checkpoint", "checkpoint_every", "resume", "trust_unfingerprinted")

E = TypeVar("E", bound=type[Estimator])


def register(cls: E) -> E:
    """Class decorator: ``REGISTRY[cls.method] = cls``."""
    if not cls.method:
        raise InputError(f"{cls.__name__} has no `method` name to register it under")
    REGISTRY[cls.method] = cls
    return cls


def lookup(method: str) -> type[Estimator]:
    """The class registered as ``method``; a specific error names the known ones."""
    try:
        return REGISTRY[method]
    except (KeyError, TypeError):
        raise InputError(f"unknown method {method!r}; choose one of {tuple(REGISTRY)}"
                         ) from None


def method_options(method: str) -> list[str]:
    """The options ``estimate(method=...)`` takes, run options included (sorted)."""
    cls = lookup(method)
    names = set(cls.option_names())
    if cls.sampling:
        names |= set(RUN_OPTIONS)
    return sorted(names)


def accepts(method: str, option: str) -> bool:
    """Whether ``estimate(method=...)`` takes ``option``."""
    return option in method_options(method)


def make_estimator(method: str, seed: int | None = 0, **options: Any) -> Estimator:
    """The estimator ``estimate`` would run for ``method`` and (estimator) ``options``."""
    cls = lookup(method)
    unknown = sorted(set(options) - set(cls.option_names()))
    if unknown:
        raise OptionError(f"method {method!r} takes no option(s) {unknown}; it takes "
                          f"{method_options(method)}")
    return cls.from_options(seed, **options)


__all__ = ["REGISTRY", "RUN_OPTIONS", "accepts", "lookup", "make_estimator",
           "method_options", "register"]
