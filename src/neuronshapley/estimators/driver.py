"""THE loop: runs any estimator on any engine with budgets, progress, checkpoints and Ctrl-C.

Each step: the stopping rules are checked, the estimator asks, the engine answers (sized to
the evaluations left: a budget is never overshot), and the estimator is told, with Ctrl-C
held back while it applies the answer. A step cut short (Ctrl-C inside the game, a budget
spent mid-request) is rolled back whole: the engine's generator and counters return to the
step's start, so a resumed run repeats the step and equals one that was never stopped.
Checkpoints hold a state at a step boundary (for worker pools, a round boundary).
"""

from __future__ import annotations

import copy
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neuronshapley.errors import CheckpointError, InputError, OptionError
from neuronshapley.estimators.checkpoint import Checkpointer, has_state, load_state
from neuronshapley.estimators.requests import BudgetSpent
from neuronshapley.estimators.stopping import RunView
from neuronshapley.interrupts import deferred_interrupts
from neuronshapley.progress import make_progress
from neuronshapley.result import ShapleyResult

ProgressArg = bool | Callable[[dict[str, Any]], None] | None


class EstimationInterrupted(KeyboardInterrupt):
    """Ctrl-C during an estimation: ``.result`` holds what was computed (and checkpointed)."""

    def __init__(self, result: ShapleyResult | None) -> None:
        super().__init__("estimation interrupted")
        self.result = result


def squeeze(a: np.ndarray) -> np.ndarray:
    """(n, 1) -> (n,); (n, d) unchanged."""
    return a[:, 0] if a.ndim == 2 and a.shape[1] == 1 else a


def _jsonable(obj: Any) -> Any:
    import json

    return json.loads(json.dumps(obj, default=str))


def resolve_players(game: Any, n_players: int | None) -> int:
    """The number of players of ``game`` (checked), from ``n_players`` or the game."""
    if not callable(game):
        raise InputError(f"game must be callable masks -> values, got {type(game).__name__}")
    if n_players is None:
        n_players = getattr(game, "n_players", None)
        if n_players is None:
            raise InputError("n_players is required for a game without an n_players attribute")
    if isinstance(n_players, bool) or not isinstance(n_players, (int, np.integer)):
        raise InputError(f"n_players must be an integer, got {n_players!r}")
    n = int(n_players)
    if n < 1:
        raise InputError(f"n_players must be positive, got {n}")
    return n


def in_process(game: Any, n_players: int | None, estimator: Any) -> Callable[[], Any]:
    """A factory of the in-process engine for ``estimator`` on ``game`` (built when the
    driver starts, after the checkpoint folder has been checked)."""
    from neuronshapley.estimators.engine import InProcessEngine

    n = resolve_players(game, n_players)

    def make() -> InProcessEngine:
        return InProcessEngine(game, n, estimator.seed, estimator.truncation(),
                               estimator.chunk(), estimator.strata(),
                               estimator.permutations())

    return make


def check_checkpoint_folder(folder: str | os.PathLike[str]) -> Path:
    """The folder, created if needed and proven writable, or a :class:`CheckpointError`."""
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"checkpoint folder {path} is a file: choose a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise CheckpointError(
            f"checkpoint folder {path} cannot be written ({err.strerror or err}): choose "
            "another folder or fix its permissions"
        ) from None
    return path


class Driver:
    """Runs ``estimator`` on the engine built by ``make_engine`` (see the module docstring).

    ``description`` names the run in a progress bar.
    """

    def __init__(self, estimator: Any, make_engine: Callable[[], Any], *,
                 progress: ProgressArg = None, checkpoint: str | os.PathLike[str] | None = None,
                 checkpoint_every: float = 30.0, resume: bool = False,
                 trust_unfingerprinted: bool = False, description: str | None = None,
                 extra_identity: dict[str, Any] | None = None,
                 extra_params: dict[str, Any] | None = None,
                 extra_info: dict[str, Any] | None = None) -> None:
        if progress not in (None, True, False) and not callable(progress):
            raise OptionError(f"progress must be True, False or a callable, got {progress!r}")
        if isinstance(checkpoint_every, bool) or not isinstance(
                checkpoint_every, (int, float)) or not checkpoint_every > 0:
            raise InputError(f"checkpoint_every must be a positive number of seconds, got "
                             f"{checkpoint_every!r}")
        if not isinstance(resume, bool) or not isinstance(trust_unfingerprinted, bool):
            raise InputError("resume and trust_unfingerprinted must be True or False")
        if resume and checkpoint is None:
            raise CheckpointError("resume=True needs checkpoint=<folder>")
        self.estimator = estimator
        self.started = time.perf_counter()
        self.progress = progress
        self.folder = None if checkpoint is None else check_checkpoint_folder(checkpoint)
        if self.folder is not None:
            if resume and not has_state(self.folder):
                raise CheckpointError(
                    f"resume=True but {self.folder} holds no checkpoint (state.npz): check the "
                    "path, or drop resume to start afresh"
                )
            if not resume and has_state(self.folder):
                raise CheckpointError(
                    f"{self.folder} already holds a checkpoint: pass resume=True to continue "
                    "it, or choose another folder"
                )
        self.checkpoint_every = float(checkpoint_every)
        self.resume = resume
        self.trust = trust_unfingerprinted
        self.description = description or estimator.method
        self.extra_identity = extra_identity or {}
        self.engine = make_engine()
        self.info_: dict[str, Any] = dict(extra_info or {})
        self.extra_params = dict(extra_params or {})
        self.discarded = 0
        self.resumed_at = 0
        self.boundary: tuple[dict[str, np.ndarray], dict[str, Any]] | None = None

    # ---------------------------------------------------------------------- state
    def _identity(self) -> dict[str, Any]:
        est, info = self.estimator, self.engine.info
        return {"method": est.method, "seed": est.seed, "n_players": info.n,
                "params": _jsonable(est.identity_params()), "game": info.fingerprint,
                **self.extra_identity}

    def snapshot_now(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, facts = self.engine.state()
        arrays = {**arrays, **self.estimator.state()}
        return arrays, {**self.identity, **facts}

    def snapshot(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """What a checkpoint holds: the last boundary (worker pools mid-round) or now."""
        return self.boundary if self.boundary is not None else self.snapshot_now()

    def restore(self, arrays: dict[str, np.ndarray], facts: dict[str, Any]) -> None:
        self.engine.restore(arrays, facts)
        self.estimator.restore(arrays)

    def _resume(self) -> None:
        assert self.folder is not None
        arrays, facts = load_state(self.folder)
        if self.identity["game"] is None and not self.trust:
            raise CheckpointError(
                "this game has no fingerprint() so the library cannot check that the "
                f"checkpoint in {self.folder} was made on the same game: pass "
                "trust_unfingerprinted=True if you are sure it was"
            )
        for key, want in self.identity.items():
            if facts.get(key) != want:
                raise CheckpointError(
                    f"checkpoint in {self.folder} was made with a different {key} "
                    f"({facts.get(key)!r}, this run: {want!r}); it cannot be resumed here"
                )
        self.restore(arrays, facts)
        self.resumed_at = int(self.engine.evaluations)

    # ----------------------------------------------------------------------- result
    def result(self) -> ShapleyResult:
        est, engine = self.estimator, self.engine
        low, high = est.interval()
        info = self.info_
        if not est.sampling:  # enumeration: no walks, no state to resume or merge
            return ShapleyResult(
                squeeze(est.values()), squeeze(low), squeeze(high), est.samples().copy(),
                int(engine.evaluations), list(engine.info.players), est.method, est.seed,
                est.resolved_params(), time.perf_counter() - self.started, est.confidence(),
                engine.info.output_names, info={**info, **est.result_info()},
                intervals=est.interval_kind())
        info.update(walks=engine.walks, truncated_walks=engine.truncated_walks,
                    v_full=engine.info.v_full.tolist(), v_null=engine.info.v_null.tolist())
        info.update(est.result_info())
        info.update(engine.result_info() if hasattr(engine, "result_info") else {})
        if self.resumed_at:
            info["resumed_at_evaluations"] = self.resumed_at
        if self.discarded:
            info["discarded_evaluations"] = self.discarded
        res = ShapleyResult(
            squeeze(est.values()), squeeze(low), squeeze(high), est.samples().copy(),
            int(engine.evaluations) + self.discarded, list(engine.info.players), est.method,
            est.seed, {**est.resolved_params(), **self.extra_params},
            time.perf_counter() - self.started,
            est.confidence(), engine.info.output_names, info=info,
            intervals=est.interval_kind(),
        )
        units = est.unit_interval()
        if units is not None:
            res.unit_low, res.unit_high = squeeze(units[0]), squeeze(units[1])
        res.state = copy.deepcopy(self.snapshot_now())
        return res

    # ------------------------------------------------------------------------ loop
    def run(self) -> ShapleyResult:
        for _ in self._steps(None):
            pass
        res = self.result()
        if self.estimator.sampling and not np.any(res.samples):
            cut = f", {self.discarded} of them on a walk it could not finish" \
                if self.discarded else ""
            raise InputError(f"the run stopped before any player got a sample "
                             f"({res.evaluations} evaluations{cut}): raise max_evaluations "
                             "or max_time")
        return res

    def iterate(self, every: int | None = None, at: Sequence[int] | None = None
                ) -> Iterator[ShapleyResult]:
        if at is None:
            if every is None or isinstance(every, bool) or int(every) < 1:
                raise InputError(f"iterate needs every=<evaluations >= 1> or at=[...], "
                                 f"got every={every!r}")
            marks: Iterator[int] | None = None
            step = int(every)
        else:
            marks = iter(sorted(int(a) for a in at))
            step = 0
        nxt = [next(marks, None) if marks is not None else step]

        def next_mark() -> int | None:
            return nxt[0]

        for reached in self._steps(next_mark):
            while reached:  # one step may pass several marks: one result for each
                yield self.result()
                nxt[0] = next(marks, None) if marks is not None else nxt[0] + step  # type: ignore
                if nxt[0] is None:
                    return
                reached = self.engine.evaluations >= nxt[0]
        yield self.result()

    def _steps(self, next_mark: Callable[[], int | None] | None) -> Iterator[bool]:
        est, engine = self.estimator, self.engine
        est.begin(engine.info, engine)
        self.identity = self._identity()
        checkpointer = None
        if self.folder is not None:
            checkpointer = Checkpointer(self.folder, self.checkpoint_every)
            if self.resume:
                self._resume()
        stop = est.stop_rule()
        hard = stop.max_evaluations() if stop is not None else None
        walk_cap = stop.max_walks() if stop is not None else None
        report, close = make_progress(self.progress, hard, self.description)
        try:
            while True:
                view = RunView(engine.evaluations, engine.walks,
                               time.perf_counter() - self.started, est)
                if est.converged() or (stop is not None and stop.done(view)):
                    break
                hard_left = None if hard is None else hard - engine.evaluations
                if hard_left is not None and hard_left <= 0:
                    break
                hint = hard_left
                mark = next_mark() if next_mark is not None else None
                if mark is not None and mark > engine.evaluations:
                    hint = mark - engine.evaluations if hint is None else min(
                        hint, mark - engine.evaluations)
                walks_left = None if walk_cap is None else walk_cap - engine.walks
                request = est.ask(view, walks_left)
                if engine.starts_round(request):
                    self.boundary = copy.deepcopy(self.snapshot_now())
                    if checkpointer is not None and checkpointer.due():
                        self._save(checkpointer, final=False)
                memento = engine.memento()
                try:
                    answer = engine.run(request, hint, hard_left)
                except BudgetSpent as spent:  # the last request does not fit: not applied
                    self.discarded += spent.spent
                    engine.rollback(memento)
                    break
                except KeyboardInterrupt:
                    self.discarded += engine.spent_in_step()
                    engine.rollback(memento)
                    raise
                try:
                    with deferred_interrupts():
                        est.tell(request, answer)
                except KeyboardInterrupt:
                    if self.boundary is not None:  # raised inside tell: back to the boundary
                        self.restore(*copy.deepcopy(self.boundary))
                    raise
                if checkpointer is not None and engine.at_boundary and checkpointer.due():
                    self._save(checkpointer, final=False)
                report({"evaluations": engine.evaluations, "walks": engine.walks,
                        **est.progress()})
                yield mark is not None and engine.evaluations >= mark
            if engine.finish(est.converged()):
                self.boundary = None
        except KeyboardInterrupt:
            engine.finish(False)
            self.info_["interrupted"] = True
            if checkpointer is not None:
                self.info_["checkpoint_evaluations"] = int(self.snapshot()[1]["evaluations"])
            with deferred_interrupts():
                result = self.result()
            raise EstimationInterrupted(result) from None
        finally:
            close()
            if checkpointer is not None:
                with deferred_interrupts():
                    self._save(checkpointer, final=True)

    def _save(self, checkpointer: Checkpointer, final: bool) -> None:
        """Write the checkpoint; a failure is reported (warning + ``info``), not fatal, so
        the values computed are still returned."""
        try:
            checkpointer.final(self.snapshot)
            self.info_.pop("checkpoint_error", None)
        except OSError as err:
            message = f"checkpoint write to {checkpointer.folder} failed: {err}"
            self.info_["checkpoint_error"] = message
            warnings.warn(message + " (the run goes on; its result is still returned)",
                          RuntimeWarning, stacklevel=3)


__all__ = ["Driver", "EstimationInterrupted", "check_checkpoint_folder", "in_process",
           "resolve_players", "squeeze"]
