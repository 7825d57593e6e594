"""Checkpoints: resume continues exactly; a SIGKILLed run loses at most one interval."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import neuronshapley as ns
from neuronshapley.estimators import EstimationInterrupted
from neuronshapley.estimators.checkpoint import CheckpointError, load_state
from neuronshapley.games import UnanimityGame, WeightedThresholdGame


def _game():
    return UnanimityGame.random(30, n_terms=50, max_size=5, rng=np.random.default_rng(0))


@pytest.mark.parametrize("method,extra", [
    ("permutation", {"strata": 4}),
    ("permutation", {"permutations": "sobol"}),
    ("truncated", {"truncation_fill": "roulette"}),
    ("tmab", {"k": 3}),
])
def test_resume_equals_uninterrupted(tmp_path, method, extra):
    full = ns.estimate(_game(), method=method, seed=3, max_evaluations=4000, **extra)
    ns.estimate(_game(), method=method, seed=3, max_evaluations=1500,
                checkpoint=tmp_path, **extra)
    resumed = ns.estimate(_game(), method=method, seed=3, max_evaluations=4000,
                          checkpoint=tmp_path, resume=True,
                          trust_unfingerprinted=True, **extra)
    np.testing.assert_array_equal(resumed.values, full.values)
    np.testing.assert_array_equal(resumed.samples, full.samples)
    assert resumed.evaluations == full.evaluations
    assert 1000 < resumed.info["resumed_at_evaluations"] <= 1500  # the budget is not overshot


def test_checkpoint_refuses_the_wrong_run(tmp_path):
    ns.estimate(_game(), method="permutation", seed=1, max_evaluations=500,
                checkpoint=tmp_path)
    with pytest.raises(CheckpointError, match="resume=True"):
        ns.estimate(_game(), method="permutation", seed=1, checkpoint=tmp_path)
    with pytest.raises(CheckpointError, match="different seed"):
        ns.estimate(_game(), method="permutation", seed=2, checkpoint=tmp_path, resume=True,
                    trust_unfingerprinted=True)
    with pytest.raises(CheckpointError, match="different params"):
        ns.estimate(_game(), method="permutation", seed=1, strata=3, checkpoint=tmp_path,
                    resume=True, trust_unfingerprinted=True)


def test_ctrl_c_returns_partial_result_and_resumes_exactly(tmp_path):
    class Interrupting:
        def __init__(self, game, after):
            self.game, self.n_players, self.calls, self.after = game, game.n_players, 0, after

        def __call__(self, masks):
            self.calls += 1
            if self.calls == self.after:
                raise KeyboardInterrupt
            return self.game(masks)

    full = ns.estimate(_game(), method="truncated", seed=5, max_evaluations=3000, chunk=16)
    with pytest.raises(EstimationInterrupted) as err:
        ns.estimate(Interrupting(_game(), 60), method="truncated", seed=5,
                    max_evaluations=3000, chunk=16, checkpoint=tmp_path)
    partial = err.value.result
    assert partial.info["interrupted"] and 0 < partial.evaluations < 3000
    resumed = ns.estimate(_game(), method="truncated", seed=5, max_evaluations=3000,
                          chunk=16, checkpoint=tmp_path, resume=True, trust_unfingerprinted=True)
    np.testing.assert_array_equal(resumed.values, full.values)


SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    import neuronshapley as ns
    from neuronshapley.games import WeightedThresholdGame

    class Slow:
        def __init__(self):
            self.game = WeightedThresholdGame.neuron_like(40, rng=np.random.default_rng(0))
            self.n_players = 40
        def __call__(self, masks):
            time.sleep(0.002 * len(masks))
            return self.game(masks)

    ns.estimate(Slow(), method="truncated", seed=11, max_evaluations=6000, chunk=8,
                checkpoint=sys.argv[1], checkpoint_every=0.2,
                resume=len(sys.argv) > 2, trust_unfingerprinted=True)
    print("finished")
""")


def test_sigkill_loses_at_most_one_interval(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    ckpt = tmp_path / "ckpt"
    proc = subprocess.Popen([sys.executable, str(script), str(ckpt)])
    deadline = time.time() + 60
    while not (ckpt / "state.npz").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # a few more intervals
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    _, facts = load_state(ckpt)
    done = facts["evaluations"]
    assert 0 < done < 6000
    # the checkpoint is at most one interval (0.2 s ~ 100 evaluations + one walk) behind
    subprocess.run([sys.executable, str(script), str(ckpt), "resume"], check=True,
                   capture_output=True)
    game = WeightedThresholdGame.neuron_like(40, rng=np.random.default_rng(0))
    full = ns.estimate(game, method="truncated", seed=11, max_evaluations=6000, chunk=8)
    arrays, facts = load_state(ckpt)
    np.testing.assert_array_equal(arrays["stats.mean"][:, 0], full.values)
    assert facts["evaluations"] == full.evaluations
    # a temporary file of a write cut by the kill is cleared by the next save
    assert not any(p.name.endswith(".tmp") for p in ckpt.iterdir())
    assert os.stat(ckpt / "state.json").st_mode & 0o044


def test_merge_pools_independent_runs(tmp_path):
    from neuronshapley.estimators.merge import MergeError, merge_results

    game = _game()
    a = ns.estimate(game, method="permutation", seed=1, n_permutations=40, strata=1)
    b = ns.estimate(game, method="permutation", seed=2, n_permutations=60, strata=1)
    b.save(tmp_path / "b")
    with pytest.raises(MergeError, match="no fingerprint"):
        merge_results([a, tmp_path / "b"])
    merged = merge_results([a, tmp_path / "b"], trust_unfingerprinted=True)
    np.testing.assert_allclose(merged.values, (40 * a.values + 60 * b.values) / 100, atol=1e-12)
    assert merged.evaluations == a.evaluations + b.evaluations
    assert (merged.samples == 100).all()
    # the pooled estimate matches one run over the same 100 walks' statistics
    assert merged.info["merged_seeds"] == [1, 2]
    with pytest.raises(MergeError, match="share a seed"):
        merge_results([a, a], trust_unfingerprinted=True)
    c = ns.estimate(game, method="truncated", seed=3, n_permutations=10)
    with pytest.raises(MergeError, match="differ in method"):
        merge_results([a, c], trust_unfingerprinted=True)
