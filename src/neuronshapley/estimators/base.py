"""The estimator interface: declared parameters, ask/tell, state, and ``fit`` / ``iterate``.

An estimator is configured once (its :attr:`Estimator.PARAMS`, validated in the
constructor) and then run by the driver (:mod:`.driver`), which for every step asks it what
to sample (:meth:`Estimator.ask`), has an engine answer, and tells it the answer
(:meth:`Estimator.tell`). A step is applied whole or not at all. A new estimator is one
subclass: its ``PARAMS``, ``begin``, ``ask``, ``tell``, ``values``/``interval``/``samples``
and ``state``/``restore``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import numpy as np

from neuronshapley.errors import InputError
from neuronshapley.estimators.params import Param, validate
from neuronshapley.estimators.requests import Answer, Request
from neuronshapley.estimators.stopping import RunView, StoppingRule
from neuronshapley.estimators.truncation import FLAT_NAMES, TruncationRule, from_flat

SEED = Param("seed", "int", 0, "seed of the random generator (None: fresh entropy)")


class Estimator:
    """Base class of every estimator (see the module docstring)."""

    #: the name the facade knows it by (``method=...``)
    method: ClassVar[str] = ""
    #: the declared parameters
    PARAMS: ClassVar[tuple[Param, ...]] = (SEED,)
    #: whether it samples walks (takes checkpoints, budgets, engines)
    sampling: ClassVar[bool] = True

    def __init__(self, **params: Any) -> None:
        self._params = validate(type(self).__name__, self.PARAMS, params)
        self._check()

    # ------------------------------------------------------------ the facade's options
    @classmethod
    def option_names(cls) -> list[str]:
        """The options ``estimate(method=...)`` passes on to this class: its parameters (less
        ``seed`` and ``stop``) and, where it has a ``truncation`` parameter, the flat
        ``truncation_*`` options."""
        names = [p.name for p in cls.PARAMS if p.name not in ("seed", "stop")]
        if "truncation" in names:
            names += list(FLAT_NAMES)
        return names

    @classmethod
    def from_options(cls, seed: int | None = 0, **options: Any) -> Estimator:
        """An instance from the facade's flat options: ``truncation=True`` or any
        ``truncation_*`` option builds the dead-network rule they describe, ``False`` or
        None means whole walks; a rule object is taken as it is."""
        params = {k: v for k, v in options.items() if k not in FLAT_NAMES}
        flat = {k: v for k, v in options.items() if k in FLAT_NAMES}
        if "truncation" in params or flat:
            rule = params.get("truncation", True)
            if rule is True:
                params["truncation"] = from_flat(f"method {cls.method!r}", flat)
            elif flat:
                raise InputError(
                    f"method {cls.method!r}: {sorted(flat)} describe a truncation rule but "
                    f"truncation={rule!r}: pass truncation=True with them, or drop them")
            elif rule is False:
                params["truncation"] = None
        return cls(seed=seed, **params)

    def _check(self) -> None:
        """Checks that involve several parameters (subclasses)."""

    def __getattr__(self, name: str) -> Any:
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def get_params(self) -> dict[str, Any]:
        """The validated parameters (defaults filled in)."""
        return dict(self._params)

    def __repr__(self) -> str:
        given = ", ".join(f"{p.name}={self._params[p.name]!r}" for p in self.PARAMS
                          if self._params[p.name] != p.default)
        return f"{type(self).__name__}({given})"

    # ---------------------------------------------------------------- what the engine needs
    def truncation(self) -> TruncationRule | None:
        """The truncation rule its walks use (None: whole walks)."""
        return None

    def strata(self) -> int:
        return 1

    def permutations(self) -> str:
        """Which permutations the walks follow (:mod:`.permutations`)."""
        return "random"

    def chunk(self) -> int | None:
        return self._params.get("chunk")

    # ------------------------------------------------------------------------ one run
    def begin(self, info: Any, engine: Any) -> None:
        """Start a run on a game described by ``info`` (:class:`~.engine.GameInfo`)."""
        raise NotImplementedError

    def stop_rule(self) -> StoppingRule | None:
        """When the run is done besides :meth:`converged` (budgets, time, walks)."""
        return None

    def converged(self) -> bool:
        """Whether the estimator is done on its own (e.g. the top-k is settled)."""
        return False

    def ask(self, view: RunView, walks_left: int | None) -> Request:
        raise NotImplementedError

    def tell(self, request: Request, answer: Answer) -> None:
        raise NotImplementedError

    def values(self) -> np.ndarray:
        """Current estimates (n, d)."""
        raise NotImplementedError

    def interval(self) -> tuple[np.ndarray, np.ndarray]:
        """Current lower and upper bounds (n, d)."""
        raise NotImplementedError

    def samples(self) -> np.ndarray:
        """Marginals drawn per player (n,)."""
        raise NotImplementedError

    def confidence(self) -> float | None:
        return None

    def interval_kind(self) -> str:
        """What :meth:`interval` gives: ``"per-unit"`` (each unit's interval on its own),
        ``"joint"`` (all units at once, at every round) or ``"exact"``."""
        return "per-unit"

    def unit_interval(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-unit intervals (n, d) where :meth:`interval` is joint; else None."""
        return None

    def progress(self) -> dict[str, Any]:
        """Facts for a progress report besides evaluations and walks."""
        return {"active": None}

    def result_info(self) -> dict[str, Any]:
        return {}

    def state(self) -> dict[str, np.ndarray]:
        """Arrays from which :meth:`restore` continues exactly (after :meth:`begin`)."""
        raise NotImplementedError

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def resolved_params(self) -> dict[str, Any]:
        """Parameters as plain values after :meth:`begin` (defaults that depend on the game
        resolved): the result's ``params`` and the checkpoint's identity."""
        return {k: v for k, v in self._params.items() if k != "seed"}

    #: parameters that do not define the estimate (budgets, batching): a checkpoint made
    #: with other values of these can be resumed
    NOT_IDENTITY: ClassVar[frozenset[str]] = frozenset(
        {"max_evaluations", "n_permutations", "max_time", "chunk", "stop"})

    def identity_params(self) -> dict[str, Any]:
        """:meth:`resolved_params` less :attr:`NOT_IDENTITY` (a checkpoint's identity)."""
        return {k: v for k, v in self.resolved_params().items() if k not in self.NOT_IDENTITY}

    # ------------------------------------------------------------------------ running
    def fit(self, game: Callable[[np.ndarray], np.ndarray], n_players: int | None = None, *,
            progress: bool | Callable[[dict[str, Any]], None] | None = None,
            checkpoint: str | os.PathLike[str] | None = None, checkpoint_every: float = 30.0,
            resume: bool = False, trust_unfingerprinted: bool = False) -> Any:
        """Estimate on ``game`` in this process; a :class:`~neuronshapley.result.ShapleyResult`.

        ``checkpoint``: a folder the state is saved in every ``checkpoint_every`` seconds and
        at exit; ``resume``: continue the checkpoint there (same game, estimator and seed;
        a game without ``fingerprint()`` only with ``trust_unfingerprinted=True``).
        Ctrl-C raises :class:`~.driver.EstimationInterrupted` carrying the partial result.
        """
        from neuronshapley.estimators.driver import Driver, in_process

        return Driver(self, in_process(game, n_players, self), progress=progress,
                      checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
                      trust_unfingerprinted=trust_unfingerprinted).run()

    def iterate(self, game: Callable[[np.ndarray], np.ndarray], every: int | None = None, *,
                at: Sequence[int] | None = None, n_players: int | None = None
                ) -> Iterator[Any]:
        """Anytime results: one :class:`~neuronshapley.result.ShapleyResult` each time the
        evaluations reach the next mark (``at``, or multiples of ``every``), and the last one
        when the run stops. Walks are sized to land near each mark."""
        from neuronshapley.estimators.driver import Driver, in_process

        driver = Driver(self, in_process(game, n_players, self))
        return driver.iterate(every=every, at=at)


__all__ = ["SEED", "Estimator"]
