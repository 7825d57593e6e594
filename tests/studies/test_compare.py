"""Study "compare": removal curves per ranking, units to a level, files."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import neuronshapley as ns
from neuronshapley.evaluation.baselines import BASELINES, leave_one_out
from neuronshapley.studies.compare import (
    SHAPLEY,
    nested_masks,
    removal_curves,
    run_compare,
    units_to_level,
)

torch.set_num_threads(1)


def _data(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    teacher = torch.tensor([[2.0, -1.0, 0.0], [0.0, 2.0, -1.0], [-1.0, 0.0, 2.0],
                            [1.0, 1.0, -1.0], [0.5, -0.5, 0.5]])
    x = torch.randn(n, 5, generator=g)
    return x, (x @ teacher).argmax(1)


@pytest.fixture(scope="module")
def trained() -> nn.Module:
    """MLP 5 -> 8 -> 3 trained for a moment on a linear teacher (8 players)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = _data(0, 400)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def test_nested_masks_and_units_to_level() -> None:
    masks = nested_masks([2, 0, 1], 4, 3)
    assert masks.tolist() == [[True] * 4, [True, True, False, True],
                              [False, True, False, True], [False, False, False, True]]
    assert units_to_level(np.array([1.0, 0.8, 0.4, 0.1]), 0.4) == 2
    assert units_to_level(np.array([1.0, 0.8]), 0.1) is None
    with pytest.raises(ValueError):
        nested_masks([0, 1], 2, 3)


def test_removal_curves_use_one_game_call() -> None:
    w = np.array([1.0, 2.0, 3.0, 4.0])
    calls = []

    def game(masks: np.ndarray) -> np.ndarray:
        calls.append(len(masks))
        return masks @ w

    orders = np.array([[3, 2, 1, 0], [0, 1, 2, 3]])
    curves = removal_curves(game, orders, 4, 4)
    assert calls == [10]
    np.testing.assert_allclose(curves[0], [10, 6, 3, 1, 0])
    np.testing.assert_allclose(curves[1], [10, 9, 7, 4, 0])


def test_compare_end_to_end(trained: nn.Module, tmp_path) -> None:
    xv, yv = _data(1, 150)
    xh, yh = _data(2, 150)
    out = tmp_path / "cmp"
    res = run_compare(trained, xv, yv, xh, yh, metric="accuracy", shapley_method="exact",
                      random_draws=3, conductance_options={"n_steps": 16}, small_k=3,
                      out_dir=out, seed=1)
    assert list(res.curves) == [SHAPLEY, "loo", "conductance", "activation_norm",
                                "weight_norm", "random"]
    n = 8
    assert res.max_k == n and res.n_players == n
    full = ns.ModelGame(trained, xh, yh, reference=xv)
    v_full = full(np.ones((1, n), bool))[0]
    v_empty = full(np.zeros((1, n), bool))[0]
    for name, c in res.curves.items():
        assert c.heldout.shape == (n + 1,) and c.value_data.shape == (n + 1,)
        assert c.heldout[0] == pytest.approx(v_full), name
        assert c.heldout[-1] == pytest.approx(v_empty), name  # everything removed
    assert res.curves["random"].draws.shape == (3, n + 1)
    np.testing.assert_allclose(res.curves["random"].heldout, res.curves["random"].draws.mean(0))
    # default level: chance (1/3) + 10% of the way to V(N)
    assert res.level == pytest.approx(1 / 3 + 0.1 * (v_full - 1 / 3))
    for name, c in res.curves.items():
        if name != "random":
            assert c.units_to_level == units_to_level(c.heldout, res.level)
    wins = res.shapley_wins()
    assert wins["k"] == [1, 2, 3] and 1 <= wins["area_rank"] <= len(res.curves)
    # files
    for name in ("compare.csv", "levels.csv", "compare.png", "summary.json"):
        assert (out / name).is_file(), name
    with (out / "compare.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(res.curves) * (n + 1)
    assert rows[1]["ranking"] == SHAPLEY and rows[1]["unit"] == res.curves[SHAPLEY].result.top(1)[0]
    for name in res.curves:
        back = ns.ShapleyResult.load(out / "values" / name)
        assert back.method == ("exact" if name == SHAPLEY else name)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["level"] == pytest.approx(res.level)
    assert set(summary["curves"]) == set(res.curves)
    assert res.curves["loo"].result.evaluations == n + 1


def test_compare_with_precomputed_ranking_user_level_and_walk_sample(trained: nn.Module) -> None:
    xv, yv = _data(1, 120)
    xh, yh = _data(2, 120)
    game = ns.ModelGame(trained, xv, yv, metric="log_prob")
    shapley = ns.estimate(game, method="exact")
    res = run_compare(trained, xv, yv, xh, yh, metric="log_prob", baselines=["loo", "random"],
                      rankings={SHAPLEY: shapley}, max_k=4, level=-0.9, random_draws=2,
                      game_options={"walk_sample": 60})
    assert res.curves[SHAPLEY].result is shapley
    assert res.level == -0.9 and res.max_k == 4
    assert res.curves[SHAPLEY].heldout.shape == (5,)
    # LOO is evaluated on all value examples even though the game samples walks
    full = ns.ModelGame(trained, xv, yv, metric="log_prob")
    np.testing.assert_allclose(res.curves["loo"].result.values, leave_one_out(
        full).values)


def test_compare_errors(trained: nn.Module) -> None:
    xv, yv = _data(1, 60)
    with pytest.raises(ValueError, match="scalar metric"):
        run_compare(trained, xv, yv, xv, yv, metric="class_recall", shapley_method=None)
    with pytest.raises(ValueError, match="max_k"):
        run_compare(trained, xv, yv, xv, yv, shapley_method=None, baselines=[], max_k=99)
    with pytest.raises(ValueError, match="unknown baseline"):
        run_compare(trained, xv, yv, xv, yv, shapley_method=None, baselines=["magic"])
    assert "conductance" in BASELINES


def _tiny_setup(model: nn.Module):
    from neuronshapley.studies.compare import StudySetup

    xv, yv = _data(1, 90)
    xh, yh = _data(2, 90)
    return StudySetup("tiny", model, xv, yv, xh, yh, ["0"], "accuracy", "tiny MLP",
                      ["a", "b", "c"], {"shapley_options": {"k": 2, "max_evaluations": 200},
                                        "max_k": None, "small_k": 3})


def test_cli_commands_with_a_tiny_setup(trained: nn.Module, tmp_path, monkeypatch) -> None:
    """``compare`` and ``class-specific`` through a typer app built with ``register``."""
    import typer

    from neuronshapley.cli.studies import register
    from neuronshapley.studies import compare as cmp

    monkeypatch.setattr(cmp, "study_setup", lambda name, **kw: _tiny_setup(trained))
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", "--out", str(out), "--random-draws", "2",
                                 "--conductance-steps", "4", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "Units removed to reach" in result.output
    for name in ("compare.csv", "levels.csv", "compare.png", "summary.json"):
        assert (out / name).is_file(), name
    assert (out / "values" / "shapley" / "values.csv").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["shapley_options"]["max_evaluations"] == 200
    assert summary["max_k"] == 8

    out2 = tmp_path / "cs"
    result = runner.invoke(app, ["class-specific", "--out", str(out2), "--classes", "0,2",
                                 "--max-evaluations", "150", "--remove", "1,2",
                                 "--exclude-fraction", "0.25", "--random-draws", "1",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "Held-out recall after removing" in result.output
    summary = json.loads((out2 / "summary.json").read_text())
    assert summary["classes"] == ["a", "c"] and len(summary["excluded"]) == 2
    assert (out2 / "class_specific.png").is_file()

    bad = runner.invoke(app, ["class-specific", "--out", str(out2), "--classes", "x"])
    assert bad.exit_code == 2 and "comma-separated integers" in bad.output


@pytest.mark.slow
def test_cli_compare_on_digits(tmp_path, monkeypatch, digits_cache) -> None:
    """``compare`` on the real digits CNN (from the session's model cache), tiny budgets."""
    import typer

    from neuronshapley.cli.studies import register

    monkeypatch.setenv("NEURONSHAPLEY_CACHE", str(digits_cache))
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", "--out", str(out), "--max-evaluations", "150",
                                 "--max-k", "3", "--random-draws", "2", "--baselines",
                                 "loo,random", "--no-progress"])
    assert result.exit_code == 0, result.output
    levels = (out / "levels.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in levels[1:]] == ["shapley", "loo", "random"]
    summary = json.loads((out / "summary.json").read_text())
    # values on the valuation split, curves on the test split: neither is training data
    assert summary["settings"]["value_examples"] == 359
    assert summary["settings"]["heldout_examples"] == 359
    assert 0.9 < summary["full_heldout"] < 1.0
    bad = runner.invoke(app, ["compare", "--model", "resnet", "--out", str(out)])
    assert bad.exit_code == 2 and "unknown study model" in bad.output


def test_shapley_options_per_method(trained: nn.Module) -> None:
    """``auto`` (the default) gets the budget only; ``tmab`` also its top-k."""
    from neuronshapley.studies.compare import shapley_options

    setup = _tiny_setup(trained)
    assert shapley_options(setup, "auto") == {"max_evaluations": 200}
    assert shapley_options(setup, "tmab", 500) == {"max_evaluations": 500, "k": 2}
    assert shapley_options(setup, "tmab", k=3)["k"] == 3
    with pytest.raises(ValueError, match="tmab"):
        shapley_options(setup, "auto", k=3)


def test_digits_setup_has_four_disjoint_splits(tmp_path) -> None:
    """The built-in digits setup: values on valuation, curves on test, a selection split."""
    from neuronshapley.studies.compare import study_setup

    setup = study_setup("digits", cache_dir=tmp_path)
    assert setup.selection_inputs is not None and setup.selection_targets is not None
    assert setup.defaults["splits"] == {"train": 899, "valuation": 359, "selection": 180,
                                        "test": 359}
    parts = [setup.value_inputs, setup.selection_inputs, setup.heldout_inputs]
    rows = [{bytes(r.numpy().tobytes()) for r in x.reshape(len(x), -1)} for x in parts]
    # the bundled digits hold a few pixel-identical duplicates; nothing else is shared
    assert all(len(rows[i] & rows[j]) <= 2 for i in range(3) for j in range(i + 1, 3))
    assert "valuation" in setup.description and "test" in setup.description
