import json

import numpy as np
import pytest

import neuronshapley as ns
from neuronshapley.games import AdditiveGame


def test_scalar_result_roundtrip(tmp_path):
    game = AdditiveGame(np.array([0.3, -0.1, 0.7, 0.0]))
    res = ns.estimate(game, method="tmab", k=2, seed=4, max_evaluations=500)
    res.save(tmp_path / "r")
    header = (tmp_path / "r" / "values.csv").read_text().splitlines()[0]
    assert header == "player,value,ci_low,ci_high,samples,rank"
    meta = json.loads((tmp_path / "r" / "metadata.json").read_text())
    assert meta["method"] == "tmab" and meta["seed"] == 4 and "torch" in meta["versions"]
    back = ns.ShapleyResult.load(tmp_path / "r")
    np.testing.assert_array_equal(back.values, res.values)
    np.testing.assert_array_equal(back.ci_low, res.ci_low)
    np.testing.assert_array_equal(back.samples, res.samples)
    assert back.players == res.players and back.evaluations == res.evaluations
    assert back.top(2) == ["p2", "p0"]
    assert [r["rank"] for r in back.table()] == [1, 2, 3, 4]


def test_vector_result_roundtrip(tmp_path):
    game = AdditiveGame(np.arange(12.0).reshape(4, 3))
    res = ns.estimate(game, method="permutation", n_permutations=3)
    res.save(tmp_path)
    back = ns.ShapleyResult.load(tmp_path)
    np.testing.assert_array_equal(back.values, res.values)
    assert back.output_names == res.output_names == ["output0", "output1", "output2"]
    with pytest.raises(ValueError, match="pick one output"):
        back.top(1)
    assert back.output("output1").top(1) == ["p3"]


def test_load_reports_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="neuronshapley result folder"):
        ns.ShapleyResult.load(tmp_path)
