"""Ray backend: same top-k as one process, bit-equal to the in-process scheme, survives a
killed worker, resumes from a checkpoint. Ray is started once for the module."""

from __future__ import annotations

import functools
import sys
import time

import numpy as np
import pytest
import torch

from neuronshapley import estimate
from neuronshapley.distributed import estimate_distributed, estimate_reference
from neuronshapley.games import WeightedThresholdGame

torch.set_num_threads(1)

N, K = 40, 3
FACTORY = functools.partial(WeightedThresholdGame.neuron_like, N, 3)  # picklable by reference
OPTS = {"k": K, "batch": 16, "max_evaluations": 40_000}


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - t0
    print(f"\nray start-up: {startup:.1f} s")
    assert startup < 30
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
    want = set(np.argsort(-true)[:K])
    assert set(np.argsort(-single.values)[:K]) == want
    assert set(np.argsort(-reference.values)[:K]) == want
    assert reference.info["converged"]


def test_distributed_equals_in_process_scheme(ray_cluster, reference):
    t0 = time.perf_counter()
    dist = estimate_distributed(FACTORY, method="tmab", seed=7, workers=2, **OPTS)
    print(f"distributed tmab: {time.perf_counter() - t0:.1f} s")
    single = estimate(FACTORY(), method="tmab", seed=7, k=K)
    assert set(np.argsort(-dist.values)[:K]) == set(np.argsort(-single.values)[:K])
    assert set(np.argsort(-dist.values)[:K]) == set(np.argsort(-FACTORY().shapley_values())[:K])
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
                                 resume=True, **OPTS)
    np.testing.assert_array_equal(resumed.values, reference.values)
    np.testing.assert_array_equal(resumed.samples, reference.samples)
