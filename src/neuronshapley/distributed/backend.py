"""A worker pool for the estimators' own driver: Ray actors, each holding a game replica.

Scheme (exactly-once, deterministic): tasks are numbered 0, 1, 2, ...; task ``i`` (a
permutation walk, or one slice of a round of direct or shared-anchor samples) draws from its
own generator ``np.random.default_rng([seed, i])`` (stratified walks: their block's groups
from ``default_rng([seed, STRATA_STREAM, block])``), so its result does not depend on which
worker ran it. :class:`TaskEngine` answers the driver's requests with such tasks, in rounds
(see its docstring), and applies results strictly in index order: the values are the same
whichever worker ran what and in what order results came back; ``workers=0`` runs the very
same scheme in-process (the reference). The loop, budgets, progress, checkpoints and Ctrl-C
are the driver's (:mod:`neuronshapley.estimators.driver`), as for ``estimate``; every
estimator option works here too.

A worker that dies (``RayActorError``) is replaced by a fresh actor and its unfinished tasks
are issued again; a task's result is stored once, so nothing is counted twice or lost. A
``game_factory`` that raises in a worker is reported at once, with its error (not retried).
Ctrl-C stops the workers, writes the checkpoint (the last round start, so a resumed run
equals an uninterrupted one) and raises
:class:`~neuronshapley.estimators.driver.EstimationInterrupted` with the partial result.

This is *not* the same random stream as :func:`neuronshapley.estimate` (one generator for the
whole run, active set refreshed after every walk), so values agree with it statistically, not
bit for bit.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from neuronshapley.errors import InputError, OptionError
from neuronshapley.estimators.driver import Driver
from neuronshapley.estimators.engine import GameInfo, fingerprint, output_names, player_ids
from neuronshapley.estimators.permutations import SobolPermutations, check_permutations
from neuronshapley.estimators.registry import RUN_OPTIONS, make_estimator
from neuronshapley.estimators.requests import Answer, BudgetSpent, Direct, Request, Shared, Walks
from neuronshapley.estimators.sampler import WalkSampler
from neuronshapley.estimators.truncation import TruncationRule
from neuronshapley.result import ShapleyResult

METHODS = ("tmab", "permutation", "truncated")
INSTALL_HINT = "pip install 'neuronshapley[ray]'"

POOL_OPTIONS = ("batch", "threads_per_worker", "gpus_per_worker", "_kill_after")
STRATA_STREAM = 104729  # block b of stratified walks draws from default_rng([seed, this, b])
SOBOL_STREAM = 130363  # the run's Sobol sequence is seeded from default_rng([seed, this])
CONTROL_STREAM = 2**32 - 1  # a control variate's seed: default_rng([seed, this])


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

    def __init__(self, game_factory: Callable[[], Any], truncation: TruncationRule | None,
                 chunk: int | None, threads: int | None = 1, strata: int = 1,
                 permutations: str = "random") -> None:
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        self.game = game_factory()
        n = getattr(self.game, "n_players", None)
        if n is None:
            raise InputError("the game built by game_factory must have an n_players attribute")
        self.strata = min(int(strata), int(n))
        check_permutations(permutations, int(n), self.strata)
        self.permutations = permutations
        self._sobol: SobolPermutations | None = None
        self.sampler = WalkSampler(self.game, int(n), np.random.default_rng(0), truncation, chunk)

    def describe(self) -> dict[str, Any]:
        s, g = self.sampler, self.game
        return {"n_players": s.n, "players": player_ids(g, s.n), "chunk": s.chunk,
                "v_full": s.v_full.copy(), "v_null": s.v_null.copy(), "d": s.output_dim,
                "output_names": output_names(g, s.output_dim), "resamples": s.resamples,
                "fingerprint": fingerprint(g)}

    def _permutation(self, seed: int, i: int) -> np.ndarray | None:
        """Walk ``i``'s permutation: the ``i``-th of the run's Sobol sequence, or stratified
        (None without strata): walks come in blocks of ``strata`` sharing random groups, as
        in :class:`WalkSampler`, seeded per block."""
        m, n = self.strata, self.sampler.n
        if self.permutations == "sobol":
            sobol_seed = int(np.random.default_rng([seed, SOBOL_STREAM]).integers(2**63))
            if self._sobol is None or self._sobol.seed != sobol_seed:
                self._sobol = SobolPermutations(n, sobol_seed)
            return self._sobol(i)
        if m <= 1:
            return None
        block, pos = divmod(i, m)
        brng = np.random.default_rng([seed, STRATA_STREAM, block])
        labels = (brng.permutation(n) * m) // n
        shifts = brng.permutation(m)
        stratum = (labels + shifts[pos]) % m
        return np.argsort(stratum + self.sampler.rng.random(n), kind="stable")

    def run(self, seed: int, kind: str, indices: list[int], payload: Any) -> list[tuple]:
        """Task results ``(index, result, evaluations)``; ``payload``: the active set (walks),
        one id array per index (direct) or one ``(ids, anchors)`` pair per index (shared)."""
        out = []
        for j, i in enumerate(indices):
            self.sampler.rng = np.random.default_rng([seed, i])
            before = self.sampler.evaluations
            if kind == "walk":
                perm, outcome = self.sampler.walk(payload, self._permutation(seed, i))
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


# ---------------------------------------------------------------------- the engine
class TaskEngine:
    """Answers the driver's requests with numbered tasks computed by a worker pool.

    A :class:`Walks` request starts a round of ``batch`` walks that all use the active set
    given (fewer when fewer walks are still wanted); each later request takes the next walk
    of the round, in index order, until the round is used up. A :class:`Direct` or
    :class:`Shared` request is split over up to ``batch`` tasks, computed and answered at
    once; walks left over from a round are then dropped (counted as discarded). So the
    values depend on ``seed`` and ``batch``, never on the workers.
    """

    at_boundary = False  # checkpoints are taken at round starts

    def __init__(self, pool: Any, seed: int, batch: int, calls: int) -> None:
        self.pool, self.seed, self.batch, self.calls = pool, seed, batch, calls
        d = pool.describe()
        self.info = GameInfo(int(d["n_players"]), list(d["players"]), d["output_names"],
                             np.asarray(d["v_full"], dtype=np.float64),
                             np.asarray(d["v_null"], dtype=np.float64), int(d["chunk"]),
                             bool(d["resamples"]), d["fingerprint"])
        self.evaluations = 0 if self.info.resamples else 2  # V(N), V(empty) once
        self.walks = 0
        self.truncated_walks = 0
        self.cursor = 0  # next task index to apply (= first index of the next round)
        self.ready: dict[int, tuple[Any, int]] = {}
        self.discarded = 0
        self.received = 0

    def seed_for(self, purpose: int) -> int:
        return int(np.random.default_rng([self.seed, CONTROL_STREAM - purpose]).integers(2**63))

    def starts_round(self, request: Request) -> bool:
        """Whether ``request`` starts a new round (work left from the last one is dropped)."""
        if isinstance(request, Walks) and self.cursor in self.ready:
            return False
        self._drop_pending()
        return True

    def _drop_pending(self) -> None:
        if self.ready:
            self.discarded += len(self.ready)
            self.cursor = max(self.ready) + 1
            self.ready.clear()

    def _compute(self, kind: str, payloads: list[Any], shared_payload: Any = None) -> None:
        first = self.cursor
        idx = list(range(first, first + len(payloads)))
        batches = [(kind, g, shared_payload if kind == "walk" else [payloads[i - first]
                                                                    for i in g])
                   for g in _split(idx, self.calls)]
        for i, res, evals in self.pool.compute(self.seed, batches):
            self.received += evals
            self.ready[i] = (res, evals)

    def run(self, request: Request, hint: int | None, hard: int | None) -> Answer:
        if isinstance(request, Walks):
            if self.cursor not in self.ready:
                size = self.batch if request.most is None else max(1, min(self.batch,
                                                                           request.most))
                self._compute("walk", [None] * size, request.active)
            (perm, outcome), evals = self.ready[self.cursor]
            if hard is not None and evals > hard:
                raise BudgetSpent(0)
            del self.ready[self.cursor]
            self.cursor += 1
            self.evaluations += evals
            self.walks += 1
            self.truncated_walks += outcome.truncated_at is not None
            return Answer([(perm, outcome)], evals)
        if isinstance(request, Direct):
            ids = request.ids
            parts: list[Any] = [p for p in np.array_split(ids, min(self.batch, len(ids)))
                                if len(p)]
            kind = "direct"
        elif isinstance(request, Shared):
            parts = [(request.ids, len(a)) for a in np.array_split(
                np.arange(request.anchors), min(self.batch, request.anchors)) if len(a)]
            kind = "shared"
        else:
            raise InputError(f"the worker pool cannot answer {type(request).__name__}")
        first = self.cursor
        self._compute(kind, parts)
        got = [self.ready.pop(i) for i in range(first, first + len(parts))]
        evals = sum(e for _, e in got)
        if hard is not None and evals > hard:
            raise BudgetSpent(0)
        self.cursor = first + len(parts)
        self.evaluations += evals
        if kind == "direct":
            result: Any = np.concatenate([r for r, _ in got])
        else:
            result = [g for r, _ in got for g in r]
        return Answer(result, evals)

    def spent_in_step(self) -> int:
        return 0

    def memento(self) -> Any:
        return (self.cursor, self.evaluations, self.walks, self.truncated_walks,
                self.discarded, dict(self.ready))

    def rollback(self, memento: Any) -> None:
        (self.cursor, self.evaluations, self.walks, self.truncated_walks, self.discarded,
         ready) = memento
        self.ready = dict(ready)

    def finish(self, converged: bool) -> bool:
        had = bool(self.ready)
        self._drop_pending()
        return converged or not had

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {"sampler.v_full": self.info.v_full.copy(),
                  "sampler.v_null": self.info.v_null.copy()}
        facts = {"evaluations": self.evaluations, "walks": self.walks,
                 "truncated_walks": self.truncated_walks, "next_task": self.cursor,
                 "discarded_tasks": self.discarded}
        return arrays, facts

    def restore(self, arrays: dict[str, np.ndarray], facts: dict[str, Any]) -> None:
        self.evaluations = int(facts["evaluations"])
        self.walks = int(facts["walks"])
        self.truncated_walks = int(facts["truncated_walks"])
        self.cursor = int(facts["next_task"])
        self.discarded = int(facts.get("discarded_tasks", 0))
        self.ready.clear()

    def result_info(self) -> dict[str, Any]:
        return {"tasks_issued": self.cursor, "discarded_tasks": self.discarded,
                "evaluations_computed": self.received, "workers_replaced": self.pool.replaced}

    def close(self) -> None:
        self.pool.close()


# -------------------------------------------------------------------------------- pools
Batch = tuple[str, list[int], Any]  # kind, indices, payload


class _LocalPool:
    """The reference: the same tasks computed in this process, in index order."""

    def __init__(self, factory: Callable[[], Any], truncation: TruncationRule | None,
                 chunk: int | None, threads: int | None, strata: int, permutations: str
                 ) -> None:
        self.worker = WalkWorker(factory, truncation, chunk, threads, strata, permutations)
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
                 truncation: TruncationRule | None, chunk: int | None, threads: int | None,
                 strata: int, permutations: str, gpus: float, kill_after: int | None) -> None:
        self.ray = ray
        self.args = (factory, truncation, chunk, threads, strata, permutations)
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
        raise InputError(f"unknown method {method!r}; choose one of {METHODS}")
    is_game = not isinstance(game_factory, type) and hasattr(game_factory, "n_players")
    if not callable(game_factory) or is_game:
        raise OptionError(
            "game_factory must be a zero-argument callable building the game (each worker "
            f"builds its own), got {'a game' if is_game else 'a'} {type(game_factory).__name__}"
            "; wrap it, e.g. functools.partial(MyGame, ...) or a module-level function"
        )
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**63))
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 0:
        raise InputError(f"workers must be an integer >= 0, got {workers!r}")
    workers = int(workers)
    pool_opts = {k: options.pop(k) for k in POOL_OPTIONS if k in options}
    run = {k: options.pop(k) for k in RUN_OPTIONS if k in options}
    estimator = make_estimator(method, int(seed), **options)  # bad values fail here, early
    batch = pool_opts.get("batch", 8)
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise InputError(f"batch must be an integer >= 1, got {batch!r}")
    threads = pool_opts.get("threads_per_worker", 1)
    if threads is not None and (isinstance(threads, bool) or float(threads) < 0):
        raise InputError(f"threads_per_worker must be >= 0, got {threads!r}")
    gpus = pool_opts.get("gpus_per_worker")
    if gpus is not None and (isinstance(gpus, bool) or float(gpus) < 0):
        raise InputError(f"gpus_per_worker must be >= 0, got {gpus!r}")
    progress = run.get("progress")
    if progress not in (None, True, False) and not callable(progress):
        raise OptionError(f"progress must be True, False or a callable, got {progress!r}")
    truncation, chunk, strata = estimator.truncation(), estimator.chunk(), estimator.strata()
    permutations = estimator.permutations()
    ray = _require_ray() if workers else None
    owns_ray = False
    pool: _LocalPool | _RayPool | None = None
    try:  # whatever stops the run (Ctrl-C included), the workers and a Ray we started go
        if ray is None:
            pool = _LocalPool(game_factory, truncation, chunk, threads, strata, permutations)
        else:
            if not ray.is_initialized():
                owns_ray = True
                if address is None:
                    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
                else:
                    ray.init(address=address, log_to_driver=False)
            if gpus is None:
                total = float(ray.cluster_resources().get("GPU", 0))
                gpus = min(1.0, total / workers) if total > 0 else 0  # share GPUs if too few
            pool = _RayPool(ray, workers, game_factory, truncation, chunk, threads, strata,
                            permutations,
                            float(gpus), pool_opts.get("_kill_after"))
        built = pool

        def engine() -> TaskEngine:
            eng = TaskEngine(built, int(seed), int(batch), 2 * max(workers, 1))
            if n_players is not None and int(n_players) != eng.info.n:
                raise InputError(f"n_players={n_players} but the game has {eng.info.n} players")
            return eng

        description = f"{method} on {workers} workers" if workers else method
        extra = {"batch": int(batch), "scheme": SCHEME}
        return Driver(estimator, engine, description=description, extra_identity=extra,
                      extra_params=extra, extra_info={"workers": workers}, **run).run()
    finally:
        if pool is not None:
            pool.close()
        if owns_ray and ray is not None:
            ray.shutdown()


SCHEME = "per-walk-seeded rounds"


def _split(indices: list[int], parts: int) -> list[list[int]]:
    """Consecutive task indices in at most ``parts`` non-empty groups (one remote call each)."""
    return [list(map(int, g)) for g in np.array_split(indices, min(parts, len(indices)))]


def estimate_reference(game_factory: Callable[[], Any], n_players: int | None = None,
                       method: str = "tmab", seed: int = 0, **options: Any) -> ShapleyResult:
    """The same per-walk-seeded scheme in this process (``estimate_distributed(workers=0)``)."""
    return estimate_distributed(game_factory, n_players, method, seed, workers=0, **options)


__all__ = ["INSTALL_HINT", "WalkWorker", "estimate_distributed", "estimate_reference",
           "worker_device"]
