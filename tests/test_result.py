import json

import numpy as np
import pytest

import neuronshapley as ns
from neuronshapley.errors import ResultFileError
from neuronshapley.games import AdditiveGame


def test_scalar_result_roundtrip(tmp_path):
    game = AdditiveGame(np.array([0.3, -0.1, 0.7, 0.0]))
    res = ns.estimate(game, method="tmab", k=2, seed=4, max_evaluations=500)
    res.save(tmp_path / "r")
    header = (tmp_path / "r" / "values.csv").read_text().splitlines()[0]
    # the bandit's intervals are joint: per-unit ones and the top-k status come beside them
    assert header == "player,value,ci_low,ci_high,unit_low,unit_high,top_k,samples,rank"
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
    with pytest.raises(ResultFileError, match="neuronshapley result folder"):
        ns.ShapleyResult.load(tmp_path)


def _saved(folder, vector=False):
    values = np.arange(12.0).reshape(4, 3) if vector else np.array([0.3, -0.1, 0.7, 0.0])
    ns.estimate(AdditiveGame(values), method="permutation", n_permutations=2).save(folder)
    return folder / "values.csv", folder / "metadata.json"


def _lines(path):
    return path.read_text().splitlines(keepends=True)


@pytest.mark.parametrize("damage, message", [
    (lambda v, m: v.write_text("".join(_lines(v)[:-1])), r"lists 3 players but metadata"),
    (lambda v, m: v.write_text("".join(_lines(v) + _lines(v)[1:2])),
     r"line 6 lists 'p0' a second time"),
    (lambda v, m: v.write_text(v.read_text()[:-9]), r"line 5 has \d fields, not 6 .*cut"),
    (lambda v, m: v.write_text(v.read_text().replace(",ci_low", ",low")),
     r"no column 'ci_low'"),
    (lambda v, m: v.write_text(v.read_text().replace("p1,", "p9,")),
     r"not the file metadata.json was written with"),
    (lambda v, m: v.write_text(""), r"values.csv is empty"),
    (lambda v, m: m.write_text(m.read_text()[:40]), r"metadata.json is not valid JSON"),
    (lambda v, m: m.write_text("[1, 2]"), r"must hold a JSON object, not list"),
    (lambda v, m: m.write_text(m.read_text().replace('"evaluations"', '"evals"')),
     r"has no 'evaluations'"),
    (lambda v, m: m.write_text(m.read_text().replace('"method": "permutation"',
                                                     '"method": 3')),
     r"method = 3 is not a method name"),
    (lambda v, m: m.unlink(), r"metadata.json not found"),
])
def test_damaged_result_files_are_named(tmp_path, damage, message):
    values, meta = _saved(tmp_path)
    damage(values, meta)
    with pytest.raises(ResultFileError, match=message):
        ns.ShapleyResult.load(tmp_path)


def test_damaged_vector_result(tmp_path):
    values, _ = _saved(tmp_path, vector=True)
    lines = _lines(values)
    values.write_text("".join(lines[:-1]))  # p3 lost its last output: cut at a row boundary
    with pytest.raises(ResultFileError, match="11 rows for 4 players and 3 outputs"):
        ns.ShapleyResult.load(tmp_path)
    values.write_text("".join(lines[:-1] + [lines[-1].replace("output2", "output7")]))
    with pytest.raises(ResultFileError, match="output 'output7' is not one of"):
        ns.ShapleyResult.load(tmp_path)


def test_ctrl_c_during_save_is_held_until_both_files_are_written(tmp_path, monkeypatch):
    import os
    import signal

    from neuronshapley import result as result_module

    res = ns.estimate(AdditiveGame(np.array([0.3, -0.1])), method="exact")
    written = []
    real = result_module.atomic_write_text

    def write_then_interrupt(path, text):
        real(path, text)
        written.append(path.name)
        if len(written) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C between values.csv and metadata

    monkeypatch.setattr(result_module, "atomic_write_text", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        res.save(tmp_path)
    assert written == ["values.csv", "metadata.json"]
    np.testing.assert_array_equal(ns.ShapleyResult.load(tmp_path).values, res.values)
