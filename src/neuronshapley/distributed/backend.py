"""Shapley estimation with walks computed by Ray actors, each holding its own game replica.

Scheme (exactly-once, deterministic): the driver numbers tasks 0, 1, 2, ...; task ``i`` (a
permutation walk, or one slice of a round of direct or shared-anchor samples) draws from its
own generator ``np.random.default_rng([seed, i])``, so its result does not depend on which
worker ran it.
Tasks are issued in *rounds*: a round of ``batch`` walks all use the active set (TMAB) that
held when the round began. Results are gathered keyed by task index and applied strictly in
index order through the estimators' own run objects (:class:`~.estimators.tmab.BanditRun`,
:class:`~.estimators.permutation.PermutationRun`), which see a stand-in sampler that replays
the workers' results. So the driver owns the statistics, the bandit's decisions are the
library's own, and the values are the same whichever worker ran what and in what order the
results came back: ``workers=0`` runs the very same scheme in-process (the reference).

A worker that dies (``RayActorError``) is replaced by a fresh actor and its unfinished tasks
are issued again; a task's result is stored once, so nothing is counted twice or lost. A
``game_factory`` that raises in a worker is reported at once, with its error (not retried).

``progress`` (True: a rich bar; a callable: called with ``run.progress()``) reports after
every applied task. Ctrl-C stops the workers, writes the checkpoint (the last round boundary,
so a resumed run equals an uninterrupted one) and raises
:class:`~.estimators.api.EstimationInterrupted` carrying the partial result, whose
``info["interrupted"]`` is True, as :func:`neuronshapley.estimate` does.

This is *not* the same random stream as :func:`neuronshapley.estimate` (one generator for the
whole run, active set refreshed after every walk), so values agree with it statistically, not
bit for bit.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from neuronshapley.estimators.api import (
    EstimationInterrupted,
    _check_budget,
    _jsonable,
    _output_names,
    _players,
    _resume,
    run_result,
)
from neuronshapley.estimators.permutation import PermutationRun
from neuronshapley.estimators.sampler import WalkSampler
from neuronshapley.estimators.tmab import BanditRun, settings_from_options
from neuronshapley.estimators.walks import Truncation, WalkOutcome
from neuronshapley.progress import make_progress
from neuronshapley.result import ShapleyResult

METHODS = ("tmab", "permutation", "truncated")
INSTALL_HINT = "pip install 'neuronshapley[ray]'"

_TRUNC = {"truncation_tolerance", "truncation_patience", "truncation_fill", "truncation_keep"}
_COMMON = {"max_evaluations", "max_time", "chunk", "batch", "checkpoint", "checkpoint_every",
           "resume", "threads_per_worker", "gpus_per_worker", "progress", "_kill_after"}
_OPTIONS = {
    "permutation": _COMMON | {"n_permutations", "confidence"},
    "truncated": _COMMON | _TRUNC | {"n_permutations", "confidence"},
    "tmab": _COMMON | _TRUNC | {"k", "delta", "epsilon", "value_range", "min_samples", "output",
                                "sampling", "rule", "adaptive", "bound", "truncation"},
}
_NOT_IDENTITY = {"max_evaluations", "max_time", "checkpoint", "checkpoint_every", "resume",
                 "threads_per_worker", "gpus_per_worker", "_kill_after", "chunk", "progress"}
_NOT_PARAMS = {"_kill_after", "progress"}  # left out of ``result.params``


def _require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ModuleNotFoundError(
            f"the distributed backend needs Ray, which is not installed: {INSTALL_HINT}"
        ) from None
    return ray


def worker_device() -> Any:
    """The device a game factory should use inside a worker: cuda if available, else cpu."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------------------------- workers
class WalkWorker:
    """Builds the game from ``game_factory`` and computes numbered tasks (walks, direct)."""

    def __init__(self, game_factory: Callable[[], Any], truncation: Truncation | None,
                 chunk: int | None, threads: int | None = 1) -> None:
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        self.game = game_factory()
        n = getattr(self.game, "n_players", None)
        if n is None:
            raise ValueError("the game built by game_factory must have an n_players attribute")
        self.sampler = WalkSampler(self.game, int(n), np.random.default_rng(0), truncation, chunk)

    def describe(self) -> dict[str, Any]:
        s, g = self.sampler, self.game
        fp = getattr(g, "fingerprint", None)
        return {"n_players": s.n, "players": _players(g, s.n), "chunk": s.chunk,
                "v_full": s.v_full.copy(), "v_null": s.v_null.copy(), "d": s.output_dim,
                "output_names": _output_names(g, s.output_dim), "resamples": s.resamples,
                "fingerprint": str(fp()) if callable(fp) else None}

    def run(self, seed: int, kind: str, indices: list[int], payload: Any) -> list[tuple]:
        """Task results ``(index, result, evaluations)``; ``payload``: the active set (walks),
        one id array per index (direct) or one ``(ids, anchors)`` pair per index (shared)."""
        out = []
        for j, i in enumerate(indices):
            self.sampler.rng = np.random.default_rng([seed, i])
            before = self.sampler.evaluations
            if kind == "walk":
                perm, outcome = self.sampler.walk(payload)
                res: Any = (perm, outcome)
            elif kind == "shared":
                ids, anchors = payload[j]
                res = self.sampler.shared(np.asarray(ids, dtype=np.int64), int(anchors))
            else:
                res = self.sampler.direct(np.asarray(payload[j], dtype=np.int64))
            out.append((i, res, self.sampler.evaluations - before))
        return out

    def ping(self) -> bool:
        return True


# --------------------------------------------------------------------- the driver's sampler
class _WalksNeededError(Exception):
    def __init__(self, active: np.ndarray | None) -> None:
        super().__init__("walks needed")
        self.active = None if active is None else active.copy()


class _DirectNeededError(Exception):
    def __init__(self, ids: np.ndarray) -> None:
        super().__init__("direct samples needed")
        self.ids = ids.copy()


class _SharedNeededError(Exception):
    def __init__(self, ids: np.ndarray, anchors: int) -> None:
        super().__init__("shared-anchor samples needed")
        self.ids, self.anchors = ids.copy(), int(anchors)


class _ReplaySampler:
    """Stands in for :class:`WalkSampler` in the driver: hands the run the workers' results.

    When the next result is not there yet it raises (before the run changes anything) and
    the driver fetches it. Task results wait in ``ready`` keyed by index; ``cursor`` is the
    next index to apply.
    """

    def __init__(self, info: dict[str, Any], truncation: Truncation | None) -> None:
        self.n = int(info["n_players"])
        self.chunk = int(info["chunk"])
        self.v_full = np.asarray(info["v_full"], dtype=np.float64)
        self.v_null = np.asarray(info["v_null"], dtype=np.float64)
        self.truncation = truncation
        self.resamples = bool(info["resamples"])
        self.strata = 1
        self.evaluations = 0 if self.resamples else 2  # V(N), V(empty) once
        self.walks = 0
        self.truncated_walks = 0
        self.cursor = 0  # next task index to apply (= first index of the next round)
        self.ready: dict[int, tuple[str, Any, int]] = {}
        self.direct_ids: dict[int, np.ndarray] = {}
        self.shared_asks: dict[int, tuple[np.ndarray, int]] = {}
        self.discarded = 0

    @property
    def output_dim(self) -> int:
        return int(self.v_full.shape[0])

    def begin(self) -> None:  # the driver checkpoints at round boundaries only
        pass

    def commit(self) -> None:
        pass

    def walk(self, active: np.ndarray | None = None) -> tuple[np.ndarray, WalkOutcome]:
        got = self.ready.get(self.cursor)
        if got is None or got[0] != "walk":
            raise _WalksNeededError(active)
        del self.ready[self.cursor]
        self.cursor += 1
        _, (perm, outcome), evals = got
        self.evaluations += evals
        self.walks += 1
        self.truncated_walks += outcome.truncated_at is not None
        return perm, outcome

    def walk_many(self, count: int, active: np.ndarray | None = None
                  ) -> list[tuple[np.ndarray, WalkOutcome]]:
        """One walk per call (``count`` is an upper bound): the run then decides after every
        walk, as this scheme always has, whatever batching the in-process sampler does."""
        return [self.walk(active)]

    def direct(self, players: np.ndarray) -> np.ndarray:
        pieces = sorted(i for i, v in self.ready.items() if v[0] == "direct")
        ids = [self.direct_ids.get(i) for i in pieces]
        if not pieces or pieces[0] != self.cursor or not np.array_equal(
            np.concatenate(ids), players
        ):
            raise _DirectNeededError(np.asarray(players))
        out = []
        for i in pieces:
            _, marg, evals = self.ready.pop(i)
            self.direct_ids.pop(i)
            self.evaluations += evals
            out.append(marg)
        self.cursor = pieces[-1] + 1
        return np.concatenate(out)

    def shared(self, players: np.ndarray, anchors: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The round's shared-anchor results, split over consecutive tasks (see
        :meth:`WalkSampler.shared`); raises when they are not there for this request."""
        pieces = sorted(i for i, v in self.ready.items() if v[0] == "shared")
        asked = [self.shared_asks.get(i) for i in pieces]
        if (not pieces or pieces[0] != self.cursor or any(a is None for a in asked)
                or sum(a[1] for a in asked) != int(anchors)  # type: ignore[index]
                or not all(np.array_equal(a[0], players) for a in asked)):  # type: ignore[index]
            raise _SharedNeededError(np.asarray(players), int(anchors))
        out: list[tuple[np.ndarray, np.ndarray]] = []
        for i in pieces:
            _, groups, evals = self.ready.pop(i)
            self.shared_asks.pop(i)
            self.evaluations += evals
            out.extend(groups)
        self.cursor = pieces[-1] + 1
        return out

    def drop_pending(self) -> None:
        """Forget results computed but not applied (their round was cut short)."""
        if self.ready:
            self.discarded += len(self.ready)
            self.cursor = max(self.ready) + 1
            self.ready.clear()
            self.direct_ids.clear()
            self.shared_asks.clear()

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {"sampler.v_full": self.v_full.copy(), "sampler.v_null": self.v_null.copy()}
        facts = {"evaluations": self.evaluations, "walks": self.walks,
                 "truncated_walks": self.truncated_walks, "next_task": self.cursor,
                 "discarded_tasks": self.discarded}
        return arrays, facts

    def restore(self, arrays: dict[str, np.ndarray], facts: dict[str, Any]) -> None:
        self.v_full = np.asarray(arrays["sampler.v_full"], dtype=np.float64)
        self.v_null = np.asarray(arrays["sampler.v_null"], dtype=np.float64)
        self.evaluations = int(facts["evaluations"])
        self.walks = int(facts["walks"])
        self.truncated_walks = int(facts["truncated_walks"])
        self.cursor = int(facts["next_task"])
        self.discarded = int(facts.get("discarded_tasks", 0))
        self.ready.clear()
        self.direct_ids.clear()
        self.shared_asks.clear()


# -------------------------------------------------------------------------------- pools
Batch = tuple[str, list[int], Any]  # kind, indices, payload


class _LocalPool:
    """The reference: the same tasks computed in this process, in index order."""

    def __init__(self, factory: Callable[[], Any], truncation: Truncation | None,
                 chunk: int | None, threads: int | None) -> None:
        self.worker = WalkWorker(factory, truncation, chunk, threads)
        self.replaced = 0

    def describe(self) -> dict[str, Any]:
        return self.worker.describe()

    def compute(self, seed: int, batches: list[Batch]) -> list[tuple]:
        return [r for kind, idx, payload in batches
                for r in self.worker.run(seed, kind, idx, payload)]

    def close(self) -> None:
        pass


class _RayPool:
    """``workers`` actors; batches go to whichever actor is free; dead actors are replaced."""

    def __init__(self, ray: Any, workers: int, factory: Callable[[], Any],
                 truncation: Truncation | None, chunk: int | None, threads: int | None,
                 gpus: float, kill_after: int | None) -> None:
        self.ray = ray
        self.args = (factory, truncation, chunk, threads)
        self.actor_cls = ray.remote(num_cpus=1, num_gpus=gpus, max_restarts=0)(WalkWorker)
        self.actors: list[Any] = []
        try:
            for _ in range(workers):
                self.actors.append(self._new())
        except BaseException:  # Ctrl-C while starting: no actor is left behind
            self.close()
            raise
        self.replaced = 0
        self.max_replacements = 3 * workers + 3
        self.completed = 0
        self.kill_after = kill_after  # test hook: kill a busy actor after this many batches

    def _new(self) -> Any:
        return self.actor_cls.remote(*self.args)

    def _replace(self, slot: int) -> None:
        self.replaced += 1
        if self.replaced > self.max_replacements:
            raise RuntimeError(f"workers died {self.replaced} times; giving up")
        with contextlib.suppress(Exception):  # already gone
            self.ray.kill(self.actors[slot])
        self.actors[slot] = self._new()

    def _dead(self) -> tuple[type, ...]:
        exc = self.ray.exceptions
        return tuple(getattr(exc, n) for n in ("RayActorError", "WorkerCrashedError")
                     if hasattr(exc, n))

    def _died(self, slot: int, err: BaseException) -> None:
        """Replace the actor in ``slot``, unless it died building the game (a bug to report,
        not a crash to retry)."""
        if getattr(err, "actor_init_failed", False):
            lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
            raise RuntimeError(
                f"game_factory failed in a worker: {lines[-1] if lines else err}\n"
                "(run estimate_distributed(..., workers=0) to debug it in this process)"
            ) from err
        self._replace(slot)

    def describe(self) -> dict[str, Any]:
        while True:
            try:
                return self.ray.get(self.actors[0].describe.remote())
            except self._dead() as err:
                self._died(0, err)

    def compute(self, seed: int, batches: list[Batch]) -> list[tuple]:
        ray = self.ray
        pending: deque[Batch] = deque(batches)
        inflight: dict[Any, tuple[int, Batch]] = {}
        idle = deque(range(len(self.actors)))
        out: dict[int, tuple] = {}
        while pending or inflight:
            while pending and idle:
                slot = idle.popleft()
                kind, idx, payload = batch = pending.popleft()
                inflight[self.actors[slot].run.remote(seed, kind, idx, payload)] = (slot, batch)
            done, _ = ray.wait(list(inflight), num_returns=1)
            ref = done[0]
            slot, batch = inflight.pop(ref)
            try:
                results = ray.get(ref)
            except self._dead() as err:
                self._died(slot, err)
                pending.appendleft(batch)  # its walks are issued again, to another actor
                idle.append(slot)
                continue
            for r in results:
                out.setdefault(r[0], r)  # exactly once per task index
            idle.append(slot)
            self.completed += 1
            if self.kill_after is not None and self.completed >= self.kill_after and inflight:
                victim = next(iter(inflight.values()))[0]
                ray.kill(self.actors[victim])  # its batch will fail and be re-issued
                self.kill_after = None
        return [out[i] for i in sorted(out)]

    def close(self) -> None:
        for a in self.actors:
            with contextlib.suppress(Exception):
                self.ray.kill(a)
        self.actors = []


# ------------------------------------------------------------------------------- driver
def estimate_distributed(
    game_factory: Callable[[], Any],
    n_players: int | None = None,
    method: str = "tmab",
    seed: int = 0,
    workers: int = 2,
    address: str | None = None,
    **options: Any,
) -> ShapleyResult:
    """Shapley values with walks computed by ``workers`` Ray actors (0: in this process).

    Args:
        game_factory: picklable zero-argument callable building the game (one replica per
            worker; it should put its model on :func:`worker_device`).
        n_players: checked against the game's ``n_players`` when given.
        method: ``"tmab"``, ``"permutation"`` or ``"truncated"`` (options as in
            :func:`neuronshapley.estimate`, less ``strata``).
        seed: task ``i`` uses ``np.random.default_rng([seed, i])``.
        workers: number of actors; ``0`` computes the same scheme in-process, with no Ray.
        address: an existing Ray cluster (``"auto"``, ``"ray://..."``); default: a local
            ``ray.init(num_cpus=workers)`` that is shut down afterwards.
        **options: also ``batch`` (walks per round, 8; results do not depend on ``workers``
            but do on ``batch``), ``threads_per_worker`` (torch threads, 1),
            ``gpus_per_worker`` (default: one GPU each, or a share when there are fewer
            GPUs than workers; 0 without GPUs),
            ``checkpoint`` / ``checkpoint_every`` / ``resume`` (as in ``estimate``; saved at
            round boundaries), ``progress`` (True or a callable, as in ``estimate``).
    Raises:
        EstimationInterrupted: on Ctrl-C, with the partial result (workers are stopped and
            the checkpoint written first).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    unknown = set(options) - _OPTIONS[method]
    if unknown:
        raise TypeError(f"method {method!r} takes no option(s) {sorted(unknown)}; "
                        f"it takes {sorted(_OPTIONS[method] - {'_kill_after'})}")
    is_game = not isinstance(game_factory, type) and hasattr(game_factory, "n_players")
    if not callable(game_factory) or is_game:
        raise TypeError(
            "game_factory must be a zero-argument callable building the game (each worker "
            f"builds its own), got {'a game' if is_game else 'a'} {type(game_factory).__name__}"
            "; wrap it, e.g. functools.partial(MyGame, ...) or a module-level function"
        )
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**63))
    seed = int(seed)
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0, got {workers!r}")
    workers = int(workers)
    batch = int(options.get("batch", 8))
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    _check_options(method, options)
    truncation = None
    if method in ("truncated", "tmab") and options.get("truncation", True) is not False:
        truncation = Truncation(
            float(options.get("truncation_tolerance", 0.05)),
            int(options.get("truncation_patience", 3)),
            str(options.get("truncation_fill", "zero")),
            float(options.get("truncation_keep", 0.1)),
        )
    threads = options.get("threads_per_worker", 1)
    chunk = options.get("chunk")
    started = time.perf_counter()
    ray = _require_ray() if workers else None
    owns_ray = False
    pool: _LocalPool | _RayPool | None = None
    try:  # whatever stops the run (Ctrl-C included), the workers and a Ray we started go
        if ray is None:
            pool = _LocalPool(game_factory, truncation, chunk, threads)
        else:
            if not ray.is_initialized():
                owns_ray = True
                if address is None:
                    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
                else:
                    ray.init(address=address, log_to_driver=False)
            gpus = options.get("gpus_per_worker")
            if gpus is None:
                total = float(ray.cluster_resources().get("GPU", 0))
                gpus = min(1.0, total / workers) if total > 0 else 0  # share GPUs if too few
            pool = _RayPool(ray, workers, game_factory, truncation, chunk, threads,
                            float(gpus), options.get("_kill_after"))
        return _drive(pool, method, seed, n_players, truncation, batch, options, started,
                      workers)
    finally:
        if pool is not None:
            pool.close()
        if owns_ray and ray is not None:
            ray.shutdown()


def _check_options(method: str, options: dict[str, Any]) -> None:
    """Bad values fail here, in the driver, before any worker starts."""
    _check_budget(options.get("max_evaluations"), options.get("n_permutations"))
    if options.get("checkpoint_every") is not None and float(options["checkpoint_every"]) <= 0:
        raise ValueError(f"checkpoint_every must be positive, got {options['checkpoint_every']}")
    if float(options.get("threads_per_worker") or 0) < 0:
        raise ValueError(f"threads_per_worker must be >= 0, got {options['threads_per_worker']}")
    if options.get("gpus_per_worker") is not None and float(options["gpus_per_worker"]) < 0:
        raise ValueError(f"gpus_per_worker must be >= 0, got {options['gpus_per_worker']}")
    progress = options.get("progress")
    if progress not in (None, True, False) and not callable(progress):
        raise TypeError(f"progress must be True, False or a callable, got {progress!r}")
    key = "delta" if method == "tmab" else "confidence"
    value = float(options.get(key, 0.05 if method == "tmab" else 0.95))
    if not 0 < value < 1:
        raise ValueError(f"{key} must be in (0, 1), got {value}")


def _drive(pool: Any, method: str, seed: int, n_players: int | None,
           truncation: Truncation | None, batch: int, options: dict[str, Any],
           started: float, workers: int) -> ShapleyResult:
    info = pool.describe()
    n = int(info["n_players"])
    if n_players is not None and int(n_players) != n:
        raise ValueError(f"n_players={n_players} but the game has {n} players")
    sampler = _ReplaySampler(info, truncation)
    params = {k: v for k, v in options.items() if k not in _NOT_PARAMS}
    run: BanditRun | PermutationRun
    n_perm = options.get("n_permutations")
    if method == "tmab":
        settings = settings_from_options(options, n, sampler.v_full, sampler.v_null)
        k, delta, epsilon = settings.k, settings.delta, settings.epsilon
        max_evals = options.get("max_evaluations", 2000 * n)
        run = BanditRun(sampler, settings)  # type: ignore[arg-type]
        confidence = 1 - delta
        params.update(k=k, delta=delta, epsilon=epsilon, max_evaluations=max_evals)
    else:
        confidence = float(options.get("confidence", 0.95))
        max_evals = options.get("max_evaluations")
        if n_perm is None and max_evals is None:
            max_evals = 100 * (n + 1)
        run = PermutationRun(sampler, None if n_perm is None else int(n_perm),  # type: ignore
                             confidence)
        params.setdefault("max_evaluations", max_evals)
    params.update(batch=batch, scheme="per-walk-seeded rounds")
    identity = {"method": method, "seed": seed, "n_players": n,
                "params": _jsonable({k: v for k, v in params.items()
                                     if k not in _NOT_IDENTITY}),
                "game": info["fingerprint"]}

    def snapshot_now() -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, facts = run.state()
        return copy.deepcopy(arrays), {**identity, **copy.deepcopy(facts)}

    checkpointer = _resume(options, identity, run)
    resumed_at = sampler.evaluations if checkpointer is not None and sampler.walks else 0
    boundary = snapshot_now()
    max_time = options.get("max_time")
    received = 0
    calls = 2 * max(workers, 1)  # remote calls per round (results do not depend on it)
    out_info: dict[str, Any] = {}

    def result() -> ShapleyResult:
        out_info.update(
            workers=workers, tasks_issued=sampler.cursor, discarded_tasks=sampler.discarded,
            evaluations_computed=received, workers_replaced=pool.replaced,
        )
        res = run_result(run, out_info, list(info["players"]), method, seed, params, started,
                         confidence, info["output_names"], resumed_at)
        res.state = snapshot_now()
        return res

    description = f"{method} on {workers} workers" if workers else method
    report, close = make_progress(options.get("progress"), max_evals, description)
    stepping = False  # True while run.step() may be half-way through an update
    try:
        while True:
            if run.finished():
                break
            if max_evals is not None and sampler.evaluations >= int(max_evals):
                break
            if max_time is not None and time.perf_counter() - started >= float(max_time):
                break
            stepping = True
            try:
                run.step()
            except _WalksNeededError as need:
                stepping = False
                sampler.drop_pending()
                size = batch
                if n_perm is not None and method != "tmab":
                    size = max(1, min(batch, int(n_perm) - sampler.walks))
                first = sampler.cursor
                batches = [("walk", idx, need.active)
                           for idx in _split(list(range(first, first + size)), calls)]
            except _DirectNeededError as need:
                stepping = False
                sampler.drop_pending()
                first = sampler.cursor
                parts = [p for p in np.array_split(need.ids, min(batch, len(need.ids)))
                         if len(p)]
                for j, p in enumerate(parts):
                    sampler.direct_ids[first + j] = p
                batches = [("direct", idx, [sampler.direct_ids[i] for i in idx])
                           for idx in _split(list(range(first, first + len(parts))), calls)]
            except _SharedNeededError as need:
                stepping = False
                sampler.drop_pending()
                first = sampler.cursor
                sizes = [len(a) for a in np.array_split(np.arange(need.anchors),
                                                        min(batch, need.anchors)) if len(a)]
                for j, size in enumerate(sizes):
                    sampler.shared_asks[first + j] = (need.ids, size)
                batches = [("shared", idx, [sampler.shared_asks[i] for i in idx])
                           for idx in _split(list(range(first, first + len(sizes))), calls)]
            else:
                stepping = False
                report(run.progress())
                continue
            # a round boundary: nothing computed is left unapplied
            boundary = snapshot_now()
            if checkpointer is not None:
                checkpointer.maybe(lambda b=boundary: b)
            for i, res, evals in pool.compute(seed, batches):
                received += evals
                sampler.ready[i] = (batches[0][0], res, evals)
        if run.finished() or not sampler.ready:
            sampler.drop_pending()  # a finished run ended inside a round: the rest is unused
            boundary = snapshot_now()
    except KeyboardInterrupt:
        if stepping:  # the run may be half-updated: fall back to the round's start
            run.restore(*copy.deepcopy(boundary))
        sampler.drop_pending()
        out_info["interrupted"] = True
        if checkpointer is not None:
            out_info["checkpoint_evaluations"] = int(boundary[1]["evaluations"])
        raise EstimationInterrupted(result()) from None
    finally:
        close()
        # stopped inside a round (budget, time, error, Ctrl-C): the checkpoint is the round's
        # start, so a resumed run redoes that round and equals one that was never stopped
        if checkpointer is not None:
            checkpointer.final(lambda: boundary)
    sampler.drop_pending()
    return result()


def _split(indices: list[int], parts: int) -> list[list[int]]:
    """Consecutive task indices in at most ``parts`` non-empty groups (one remote call each)."""
    return [list(map(int, g)) for g in np.array_split(indices, min(parts, len(indices)))]


def estimate_reference(game_factory: Callable[[], Any], n_players: int | None = None,
                       method: str = "tmab", seed: int = 0, **options: Any) -> ShapleyResult:
    """The same per-walk-seeded scheme in this process (``estimate_distributed(workers=0)``)."""
    return estimate_distributed(game_factory, n_players, method, seed, workers=0, **options)


__all__ = ["INSTALL_HINT", "WalkWorker", "estimate_distributed", "estimate_reference",
           "worker_device"]
