"""Study "class-specific" on a network built so that each class rests on its own two units."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import neuronshapley as ns
from neuronshapley.studies.class_specific import accuracy_values, run_class_specific

torch.set_num_threads(1)


def designed_model() -> nn.Module:
    """Classes 0..2 each read input c through hidden units 2c and 2c+1 (both needed: one alone
    still wins); class 3 ("background") is a constant logit of 0.5 with no unit."""
    hidden, out = nn.Linear(3, 6), nn.Linear(6, 4)
    with torch.no_grad():
        hidden.weight.zero_()
        hidden.bias.fill_(-0.5)
        out.weight.zero_()
        out.bias.copy_(torch.tensor([-1.0, -1.0, -1.0, 0.5]))
        for c in range(3):
            hidden.weight[2 * c, c] = hidden.weight[2 * c + 1, c] = 1.0
            out.weight[c, 2 * c] = out.weight[c, 2 * c + 1] = 4.0
    return nn.Sequential(hidden, nn.ReLU(), out).eval()


def designed_data(seed: int, per_class: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(4).repeat_interleave(per_class)
    x = torch.zeros(len(y), 3)
    x[y < 3, y[y < 3]] = 1.0
    return x + 0.05 * torch.randn(x.shape, generator=g), y


@pytest.fixture(scope="module")
def data():
    return designed_data(0), designed_data(1)


def test_each_class_collapses_alone(data, tmp_path) -> None:
    (xv, yv), (xh, yh) = data
    out = tmp_path / "cs"
    res = run_class_specific(designed_model(), xv, yv, xh, yh, classes=[0, 1, 2],
                             method="exact", exclude_fraction=0.0, remove=(1, 2),
                             class_names=["a", "b", "c", "background"], out_dir=out)
    assert res.values.values.shape == (6, 4)
    assert res.removed == [0, 1, 2]
    for c in range(3):
        assert set(res.orders[c][:2].tolist()) == {2 * c, 2 * c + 1}
        rec = res.recall[c]
        np.testing.assert_allclose(rec[0], 1.0)  # nothing removed
        np.testing.assert_allclose(rec[1], 1.0)  # one unit of the pair is not enough
        assert rec[2, c] == 0.0  # both: the class collapses ...
        np.testing.assert_allclose(np.delete(rec[2], c), 1.0)  # ... and the others keep theirs
        assert res.value_recall[c][2, c] == 0.0
    collapse = res.collapse(2)
    assert collapse["a"]["target_after"] == 0.0 and collapse["a"]["others_after"] == 1.0
    for name in ("class_specific.csv", "class_specific.png", "summary.json"):
        assert (out / name).is_file()
    loaded = ns.ShapleyResult.load(out / "values")
    assert loaded.values.shape == (6, 4)
    assert loaded.output_names == ["a", "b", "c", "background"]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["top_units"]["b"][:2]) == {"0:2", "0:3"}
    rows = (out / "class_specific.csv").read_text().splitlines()
    assert rows[0].startswith("target,removed,ranking,target_recall,others_mean,others_min")
    assert len(rows) == 1 + 3 * 3 * 2  # classes x m x (class ranking, random control)


def test_accuracy_values_follow_from_class_recall_by_linearity(data) -> None:
    (xv, yv), (xh, yh) = data
    model = designed_model()
    recall_game = ns.ModelGame(model, xv, yv, metric="class_recall")
    acc_game = ns.ModelGame(model, xv, yv, metric="accuracy")
    phi_recall = ns.estimate(recall_game, method="exact")
    phi_acc = ns.estimate(acc_game, method="exact")
    np.testing.assert_allclose(accuracy_values(phi_recall, yv).values, phi_acc.values,
                               atol=1e-12)
    res = run_class_specific(model, xv, yv, xh, yh, values=phi_recall, exclude_fraction=0.5,
                             remove=(1, 2, 3))
    assert len(res.excluded) == math.ceil(0.5 * 6)
    kept = np.setdiff1d(np.arange(6), res.excluded)
    assert phi_acc.values[res.excluded].min() >= phi_acc.values[kept].max() - 1e-12
    for c in res.classes:
        assert not set(res.orders[c].tolist()) & set(res.excluded)
        assert len(res.orders[c]) == 3


def test_truncated_estimate_runs_once_for_all_classes(data) -> None:
    (xv, yv), (xh, yh) = data
    res = run_class_specific(designed_model(), xv, yv, xh, yh, classes=[1],
                             method="truncated", estimate_options={"max_evaluations": 300},
                             exclude_fraction=0.0, remove=(2,), random_draws=2, seed=3)
    assert res.values.method == "truncated"
    assert res.values.evaluations <= 300 + 2 * 7
    assert res.values.values.shape == (6, 4)
    assert res.recall[1][1, 1] == 0.0


def test_default_auto_estimator(data) -> None:
    """The default ``method="auto"`` enumerates 6 units exactly when the budget allows it."""
    (xv, yv), (xh, yh) = data
    res = run_class_specific(designed_model(), xv, yv, xh, yh, classes=[1],
                             estimate_options={"max_evaluations": 300}, exclude_fraction=0.0,
                             remove=(2,), random_draws=1)
    assert res.values.method == "exact" and res.values.info["auto"]["chosen"] == "exact"
    with pytest.raises(ValueError, match="leave k out"):
        run_class_specific(designed_model(), xv, yv, xh, yh, estimate_options={"k": 2})


def test_errors(data) -> None:
    (xv, yv), (xh, yh) = data
    model = designed_model()
    with pytest.raises(ValueError, match="one run for every class"):
        run_class_specific(model, xv, yv, xh, yh, method="tmab")
    with pytest.raises(ValueError, match="out of range"):
        run_class_specific(model, xv, yv, xh, yh, classes=[7], method="exact")
    with pytest.raises(ValueError, match="eligible"):
        run_class_specific(model, xv, yv, xh, yh, remove=(6,), method="exact")
    with pytest.raises(ValueError, match="exclude_fraction"):
        run_class_specific(model, xv, yv, xh, yh, exclude_fraction=1.0)
