"""Bad parameters, bad game outputs and checkpoint trouble end in clear errors, never in
silently wrong numbers or lost work."""

from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest

import neuronshapley as ns
from neuronshapley.errors import CheckpointError, GameError, InputError
from neuronshapley.estimators import (
    TMAB,
    EstimationInterrupted,
    MaxEvaluations,
    MaxTime,
    MaxWalks,
    MonteCarlo,
)
from neuronshapley.games import AdditiveGame, WeightedThresholdGame


def _game(n=12):
    return WeightedThresholdGame.neuron_like(n, 4)


@pytest.mark.parametrize("method,options,match", [
    ("tmab", {"k": 2.5}, "k=2.5"),
    ("tmab", {"k": True}, "k=True"),
    ("tmab", {"epsilon": -1}, "epsilon=-1"),
    ("tmab", {"value_range": 0}, "value_range=0"),
    ("tmab", {"chunk": 0}, "chunk=0"),
    ("tmab", {"max_time": -1}, "max_time=-1"),
    ("tmab", {"delta": "0.1"}, "delta='0.1'"),
    ("permutation", {"max_evaluations": "100"}, "max_evaluations='100'"),
    ("permutation", {"n_permutations": 0}, "n_permutations=0"),
    ("truncated", {"truncation_fill": "half"}, "truncation_fill='half'"),
    ("tmab", {"bound": "hoeffding"}, "bound='hoeffding'"),
])
def test_bad_values_name_the_parameter_and_what_is_allowed(method, options, match):
    with pytest.raises(InputError, match=match) as err:
        ns.estimate(_game(), method=method, **options)
    assert "takes" in str(err.value)


def test_auto_refuses_options_it_would_drop():
    with pytest.raises(InputError, match=r"only with k"):
        ns.estimate(_game(), method="auto", delta=0.1)
    with pytest.raises(InputError, match=r"only with k"):
        ns.estimate(_game(), method="auto", bound="normal")
    res = ns.estimate(_game(8), method="auto", max_time=60)  # not exact: it takes no max_time
    assert res.method == "truncated"


def test_auto_counts_its_pilot_in_the_budget():
    game = WeightedThresholdGame.neuron_like(200, 4)
    res = ns.estimate(game, method="auto", max_evaluations=3000)
    assert res.evaluations <= 3000 and res.info["auto"]["pilot_evaluations"] > 0


def test_a_walk_stops_when_the_budget_is_spent():
    game = AdditiveGame(np.ones(500))
    # one walk costs 500: none fits, none is overshot, and no all-zero values come back
    with pytest.raises(InputError, match=r"before any player got a sample \((\d+) "
                       r"evaluations.*raise max_evaluations") as err:
        ns.estimate(game, method="permutation", max_evaluations=300)
    assert int(str(err.value).split("(")[1].split()[0]) <= 300
    res = ns.estimate(game, method="permutation", max_evaluations=1200)
    assert res.evaluations <= 1200 and res.samples.min() == 2


@pytest.mark.parametrize("bad,match", [
    (lambda m: np.full(len(m), np.nan), "NaN or infinite"),
    (lambda m: np.full(len(m), np.inf), "NaN or infinite"),
    (lambda m: np.zeros(len(m) + 1), "one value"),
    (lambda m: np.zeros((len(m), 1, 1)), "one value"),
])
@pytest.mark.parametrize("method", ["exact", "permutation", "tmab"])
def test_bad_game_outputs_are_a_game_error(bad, match, method):
    with pytest.raises(GameError, match=match):
        ns.estimate(bad, n_players=6, method=method)


def test_resume_needs_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        ns.estimate(_game(), method="permutation", checkpoint=tmp_path / "none", resume=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        ns.estimate(_game(), method="permutation", checkpoint=tmp_path / "empty", resume=True)


def test_unwritable_checkpoint_is_reported_before_any_work(tmp_path):
    calls = []

    def game(masks):
        calls.append(len(masks))
        return masks.sum(1).astype(float)

    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(CheckpointError, match="is a file"):
        ns.estimate(game, n_players=5, method="permutation", checkpoint=path)
    assert calls == []


def test_failed_checkpoint_write_keeps_the_result(tmp_path, monkeypatch):
    from neuronshapley.estimators import checkpoint

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_state", full_disk)
    with pytest.warns(RuntimeWarning, match="No space left"):
        res = ns.estimate(_game(), method="permutation", n_permutations=5, checkpoint=tmp_path)
    assert res.info["checkpoint_error"] and np.all(res.samples == 5)


def test_resume_refuses_games_without_fingerprint_unless_trusted(tmp_path):
    ns.estimate(_game(), method="permutation", max_evaluations=200, checkpoint=tmp_path)
    with pytest.raises(CheckpointError, match="no fingerprint"):
        ns.estimate(_game(), method="permutation", max_evaluations=400, checkpoint=tmp_path,
                    resume=True)
    ns.estimate(_game(), method="permutation", max_evaluations=400, checkpoint=tmp_path,
                resume=True, trust_unfingerprinted=True)


class _Fingerprinted:
    def __init__(self, tag: str) -> None:
        self.game, self.tag, self.n_players = _game(), tag, 12

    def __call__(self, masks):
        return self.game(masks)

    def fingerprint(self) -> str:
        return self.tag


def test_resume_refuses_another_fingerprint(tmp_path):
    ns.estimate(_Fingerprinted("a"), method="tmab", max_evaluations=300, checkpoint=tmp_path)
    with pytest.raises(CheckpointError, match="different game"):
        ns.estimate(_Fingerprinted("b"), method="tmab", max_evaluations=600,
                    checkpoint=tmp_path, resume=True)


def test_tmab_in_process_ctrl_c_then_resume_is_exact(tmp_path):
    """A real interrupt mid-step (inside the game's N-th call), ten times."""

    class Interrupting:
        def __init__(self, after):
            self.game, self.after, self.calls, self.n_players = _game(16), after, 0, 16

        def __call__(self, masks):
            self.calls += 1
            if self.calls == self.after:
                raise KeyboardInterrupt
            return self.game(masks)

    budget = {"max_evaluations": 3000}
    full = ns.estimate(_game(16), method="tmab", k=3, seed=4, **budget)
    for after in range(5, 105, 10):
        folder = tmp_path / str(after)
        try:
            ns.estimate(Interrupting(after), method="tmab", k=3, seed=4, checkpoint=folder,
                        **budget)
        except EstimationInterrupted as err:
            assert err.result.info["interrupted"]
        resumed = ns.estimate(_game(16), method="tmab", k=3, seed=4, checkpoint=folder,
                              resume=True, trust_unfingerprinted=True, **budget)
        np.testing.assert_array_equal(resumed.values, full.values)
        np.testing.assert_array_equal(resumed.samples, full.samples)
        np.testing.assert_array_equal(resumed.ci_low, full.ci_low)
        assert resumed.evaluations == full.evaluations


def test_classes_and_stopping_rules_combine():
    game = _game(20)
    a = MonteCarlo(seed=3, stop=MaxWalks(7) | MaxEvaluations(10**6)).fit(game)
    assert a.info["walks"] == 7
    b = TMAB(k=2, seed=3, stop=MaxEvaluations(500) | MaxTime(600)).fit(game)
    assert b.evaluations <= 500
    # the facade is a thin layer: same parameters, same values
    c = ns.estimate(game, method="tmab", k=2, seed=3, max_evaluations=500)
    np.testing.assert_array_equal(b.values, c.values)


def test_anytime_iterator_yields_at_each_mark():
    game = _game(20)
    marks = [300, 600, 1200]
    snaps = list(MonteCarlo(seed=0, max_evaluations=1200).iterate(game, at=marks))
    evals = [s.evaluations for s in snaps]
    assert len(snaps) >= 3 and all(e2 >= e1 for e1, e2 in zip(evals, evals[1:], strict=False))
    assert evals[0] >= 300 and evals[-1] <= 1200


def test_estimators_import_no_torch():
    root = pathlib.Path(ns.__file__).parent / "estimators"
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only: lazy imports inside functions are fine
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "torch" for n in names), path.name
