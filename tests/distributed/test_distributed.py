"""Ray backend: same top-k as one process, bit-equal to the in-process scheme, survives a
killed worker, resumes from a checkpoint, reports progress, keeps its work on Ctrl-C, rejects
bad input early. Ray is started once for the module."""

from __future__ import annotations

import functools
import sys
import time

import numpy as np
import pytest
import torch

from neuronshapley import estimate
from neuronshapley.distributed.backend import estimate_distributed, estimate_reference
from neuronshapley.estimators import EstimationInterrupted
from neuronshapley.estimators.checkpoint import has_state, load_state
from neuronshapley.estimators.tmab import TMAB
from neuronshapley.games import WeightedThresholdGame
from neuronshapley.result import ShapleyResult

torch.set_num_threads(1)

N, K = 40, 3
FACTORY = functools.partial(WeightedThresholdGame.neuron_like, N, 3)  # picklable by reference
OPTS = {"k": K, "batch": 16, "max_evaluations": 40_000}


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def reference():
    return estimate_reference(FACTORY, method="tmab", seed=7, **OPTS)


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ModuleNotFoundError, match=r"neuronshapley\[ray\]"):
        estimate_distributed(FACTORY, method="tmab", workers=2, k=K)


def test_reference_finds_true_top_k_like_single_process(reference):
    true = FACTORY().shapley_values()
    single = estimate(FACTORY(), method="tmab", seed=7, k=K)
    kth = np.sort(true)[::-1][K - 1]
    for res in (single, reference):  # TMAB's claim: right up to epsilon (3rd and 4th are
        assert res.info["converged"]  # 0.0018 apart, epsilon is 0.0042)
        assert np.all(true[np.argsort(-res.values)[:K]] >= kth - res.params["epsilon"])


def test_distributed_equals_in_process_scheme(ray_cluster, reference):
    t0 = time.perf_counter()
    dist = estimate_distributed(FACTORY, method="tmab", seed=7, workers=2, **OPTS)
    print(f"distributed tmab: {time.perf_counter() - t0:.1f} s")
    single = estimate(FACTORY(), method="tmab", seed=7, k=K)
    true = FACTORY().shapley_values()
    kth = np.sort(true)[::-1][K - 1]
    for res in (single, dist):  # right up to epsilon, TMAB's claim
        assert np.all(true[np.argsort(-res.values)[:K]] >= kth - res.params["epsilon"])
    np.testing.assert_array_equal(dist.values, reference.values)
    np.testing.assert_array_equal(dist.samples, reference.samples)
    assert dist.evaluations == reference.evaluations
    assert dist.info["direct_rounds"] == reference.info["direct_rounds"]


def test_truncated_permutation_equals_in_process(ray_cluster):
    opts = {"n_permutations": 20, "batch": 5}
    ref = estimate_reference(FACTORY, method="truncated", seed=3, **opts)
    dist = estimate_distributed(FACTORY, method="truncated", seed=3, workers=2, **opts)
    np.testing.assert_array_equal(dist.values, ref.values)
    assert dist.info["walks"] == 20 and dist.evaluations == ref.evaluations


def test_killed_worker_is_replaced_and_nothing_changes(ray_cluster, reference):
    dist = estimate_distributed(FACTORY, method="tmab", seed=7, workers=2, _kill_after=3,
                                **OPTS)
    assert dist.info["workers_replaced"] >= 1
    np.testing.assert_array_equal(dist.values, reference.values)
    np.testing.assert_array_equal(dist.samples, reference.samples)
    assert dist.evaluations == reference.evaluations


def test_checkpoint_resume_equals_uninterrupted(tmp_path, reference):
    folder = tmp_path / "ckpt"
    part = estimate_reference(FACTORY, method="tmab", seed=7, checkpoint=folder,
                              **{**OPTS, "max_evaluations": 3000})
    assert part.evaluations < reference.evaluations
    resumed = estimate_reference(FACTORY, method="tmab", seed=7, checkpoint=folder,
                                 resume=True, trust_unfingerprinted=True, **OPTS)
    np.testing.assert_array_equal(resumed.values, reference.values)
    np.testing.assert_array_equal(resumed.samples, reference.samples)


# ------------------------------------------------------------ progress, Ctrl-C, bad input
SMALL = {"k": K, "batch": 8, "max_evaluations": 4000}  # a budget-stopped run (~0.1 s)


class _Stop:
    """A progress callable that records what it is told and presses Ctrl-C at report ``at``."""

    def __init__(self, at: int | None = None) -> None:
        self.at = at
        self.seen: list[dict] = []

    def __call__(self, state: dict) -> None:
        self.seen.append(dict(state))
        if len(self.seen) == self.at:
            raise KeyboardInterrupt


class _Tripwire:
    """FACTORY's game, but Ctrl-C lands during its ``after``-th evaluation call."""

    def __init__(self, after: int) -> None:
        self.game, self.after, self.calls = FACTORY(), after, 0

    def __getattr__(self, name: str):
        return getattr(self.game, name)

    def __call__(self, masks):
        self.calls += 1
        if self.calls == self.after:
            raise KeyboardInterrupt
        return self.game(masks)


def _interrupted(factory=FACTORY, **kwargs) -> EstimationInterrupted:
    """The EstimationInterrupted raised (a plain Ctrl-C fails the test instead of stopping
    pytest)."""
    try:
        estimate_distributed(factory, method="tmab", seed=7, **kwargs)
    except EstimationInterrupted as err:
        return err
    except KeyboardInterrupt as err:
        pytest.fail(f"a plain {type(err).__name__} escaped, not EstimationInterrupted")
    pytest.fail("the run was not interrupted")


def _assert_same(got: ShapleyResult, want: ShapleyResult) -> None:
    np.testing.assert_allclose(got.values, want.values, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(got.samples, want.samples)
    assert got.evaluations == want.evaluations


def test_progress_callable_sees_increasing_evaluations(reference):
    stop = _Stop()
    res = estimate_reference(FACTORY, method="tmab", seed=7, progress=stop, **OPTS)
    evals = [s["evaluations"] for s in stop.seen]
    assert len(evals) > 100 and np.all(np.diff(evals) > 0)
    assert evals[-1] == res.evaluations and stop.seen[-1]["walks"] == res.info["walks"]
    assert stop.seen[0]["active"] == N and stop.seen[-1]["active"] == 0
    assert "progress" not in res.params
    _assert_same(res, reference)  # watching does not change the run


def test_progress_true_draws_a_bar(capsys):
    res = estimate_reference(FACTORY, method="truncated", seed=1, progress=True,
                             n_permutations=5, batch=2)
    assert res.info["walks"] == 5
    assert "truncated" in capsys.readouterr().out


@pytest.mark.parametrize("where", ["report-walks", "report-direct", "compute", "step"])
def test_ctrl_c_keeps_partial_result_and_resume_equals_uninterrupted(
        where, tmp_path, monkeypatch, reference):
    folder = tmp_path / "ckpt"
    after = {"report-walks": 40, "report-direct": 320}.get(where, 10**9)  # else: no report
    factory, stop = FACTORY, _Stop(after)
    if where == "compute":  # Ctrl-C while the (local) worker evaluates the game
        factory = functools.partial(_Tripwire, 3000)
    if where == "step":  # Ctrl-C half-way through the bandit's update of one result
        calls = {"n": 0}
        decide = TMAB._decide

        def tripped(self):
            calls["n"] += 1
            if calls["n"] == 300:
                raise KeyboardInterrupt
            decide(self)

        monkeypatch.setattr(TMAB, "_decide", tripped)
    try:
        part = _interrupted(factory, workers=0, checkpoint=folder, progress=stop,
                            **OPTS).result
    finally:
        monkeypatch.undo()
    assert part.info["interrupted"] and not part.info["converged"]
    assert 0 < part.evaluations < reference.evaluations
    assert has_state(folder)
    saved = load_state(folder)[1]["evaluations"]
    assert part.info["checkpoint_evaluations"] == saved
    if where.startswith("report"):  # everything applied so far is in the partial result
        assert part.evaluations == stop.seen[-1]["evaluations"] >= saved
    else:  # interrupted between round boundaries inside the run: the boundary's values
        assert part.evaluations == saved
    resumed = estimate_reference(FACTORY, method="tmab", seed=7, checkpoint=folder,
                                 resume=True, trust_unfingerprinted=True, **OPTS)
    assert resumed.info["resumed_at_evaluations"] == saved
    _assert_same(resumed, reference)


def test_ctrl_c_stops_ray_workers_and_resumes_exactly(ray_cluster, tmp_path):
    want = estimate_reference(FACTORY, method="tmab", seed=7, **SMALL)
    folder = tmp_path / "ckpt"
    stop = _Stop(60)
    err = _interrupted(workers=1, checkpoint=folder, progress=stop, **SMALL)
    part = err.result  # err's traceback keeps the driver's frames (and actor handles) alive
    assert part.info["interrupted"] and part.info["workers"] == 1
    assert part.evaluations == stop.seen[-1]["evaluations"] < want.evaluations
    assert has_state(folder)
    deadline = time.perf_counter() + 10  # the stopped actor gives its CPU back
    while ray_cluster.available_resources().get("CPU", 0) < 2:
        assert time.perf_counter() < deadline, "the worker was not stopped"
        time.sleep(0.1)
    del err
    resumed = estimate_distributed(FACTORY, method="tmab", seed=7, workers=1,
                                   checkpoint=folder, resume=True,
                                   trust_unfingerprinted=True, **SMALL)
    _assert_same(resumed, want)


def test_failing_game_factory_is_reported_not_retried(ray_cluster):
    broken = functools.partial(WeightedThresholdGame.neuron_like, N, 3, no_such_option=1)
    with pytest.raises(RuntimeError, match="game_factory failed in a worker: .*no_such_option"):
        estimate_distributed(broken, method="tmab", workers=1, k=K)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"workers": -1}, ValueError, "workers must be an integer >= 0"),
    ({"workers": "2"}, ValueError, "workers must be an integer >= 0"),
    ({"delta": 2}, ValueError, r"delta=2 is not allowed"),
    ({"output": 1}, ValueError, r"output must be in 0\.\.0"),
    ({"max_evaluations": 0}, ValueError, "max_evaluations=0 is not allowed"),
    ({"progress": "yes"}, TypeError, "progress must be"),
    ({"strata": 0}, ValueError, "strata=0 is not allowed"),
    ({"kay": 2}, TypeError, "takes no option"),
])
def test_bad_input_fails_early_with_a_clear_message(kwargs, error, match):
    with pytest.raises(error, match=match):
        estimate_distributed(FACTORY, method="tmab", **{"workers": 0, "k": K, **kwargs})


def test_game_instead_of_factory_is_rejected():
    with pytest.raises(TypeError, match="game_factory must be a zero-argument callable"):
        estimate_distributed(FACTORY(), workers=2)  # before Ray starts


def test_late_rounds_use_shared_anchors_and_find_the_top_k(monkeypatch):
    from neuronshapley.distributed.backend import WalkWorker

    kinds: list[str] = []
    run = WalkWorker.run

    def spy(self, seed, kind, indices, payload):
        kinds.append(kind)
        return run(self, seed, kind, indices, payload)

    monkeypatch.setattr(WalkWorker, "run", spy)
    res = estimate_reference(FACTORY, method="tmab", seed=3, **OPTS)
    assert "walk" in kinds and "shared" in kinds  # walks first, shared anchors once few remain
    assert res.info["converged"]
    want = set(np.argsort(-FACTORY().shapley_values())[:K])
    assert set(np.argsort(-res.values)[:K]) == want
    direct = estimate_reference(FACTORY, method="tmab", seed=3, sampling="direct", **OPTS)
    assert res.evaluations < direct.evaluations  # one V(S) serves every unit in play inside S
