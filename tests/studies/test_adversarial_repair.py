"""Adversarial repair study on tiny models and budgets: selection, consistency, files, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from neuronshapley.network.repair import load_repaired
from neuronshapley.studies.adversarial_repair import (
    AdversarialSetup,
    AttackSettings,
    TransferCNN,
    run_adversarial,
    write_adversarial,
)
from neuronshapley.zoo.colored_digits import fit_classifier
from neuronshapley.zoo.digits import DigitsCNN, DigitsData, load_digits_split, train_digits_cnn

torch.set_num_threads(1)
SMALL = {"channels": (6, 6, 6), "hidden": 8}


@pytest.fixture(scope="module")
def tiny_setup() -> AdversarialSetup:
    d = load_digits_split(seed=0)
    fit = DigitsData(d.x_train[:700], d.y_train[:700], d.x_test, d.y_test)
    model = train_digits_cnn(fit, epochs=8, seed=0, **SMALL)
    surrogate = fit_classifier(TransferCNN(width=4), fit.x_train, fit.y_train, epochs=4, seed=1)
    return AdversarialSetup(model, surrogate, fit.x_train, fit.y_train, d.x_train[700:820],
                            d.y_train[700:820], d.x_test[:120], d.y_test[:120], "tiny digits")


@pytest.mark.slow
def test_run_adversarial_end_to_end(tiny_setup: AdversarialSetup, tmp_path: Path) -> None:
    grid = [0, 1, 2, 4, 6]
    attack = AttackSettings(eps=0.25, step_size=0.07, steps=5)
    result = run_adversarial(tiny_setup, attack, max_evaluations=200, seed=0,
                             players="features.*", clean_weights=(0.5, 1.0), k_grid=grid,
                             max_clean_drop=0.1, random_draws=2, search_steps=2)
    assert result.values.values.shape == (18, 3)
    assert result.values.method in ("truncated", "permutation")  # auto: its pilot decides
    assert "pilot walk" in result.values.info["auto"]["reason"]
    assert result.ranking in ("lambda=0.5", "lambda=1", "knapsack")
    assert result.chosen_k in grid
    # value and selection parts are disjoint halves of the validation images
    st = result.settings
    assert st["value_images"] + st["selection_images"] == 120
    assert abs(st["value_images"] - st["selection_images"]) <= 10
    # selection: lowest selection-part success among allowed (ranking, k); k = 0 allowed
    allowed = [s for s in result.selection if s["allowed"]]
    assert len(result.selection) == 3 * len(grid)
    best = min(allowed, key=lambda s: (s["select_success"], s["removed"]))
    r = grid.index(result.chosen_k)
    assert best["select_success"] == pytest.approx(result.select_curve[r, 0])
    base = result.selection[0]
    assert best["select_clean_accuracy"] >= base["select_clean_accuracy"] - 0.1 - 1e-12
    # the repaired module reproduces the game on the test images
    orig, rep = result.table["original"], result.table["repaired"]
    assert orig["original_attack_success"] == pytest.approx(result.test_curve[0, 0])
    assert orig["clean_accuracy"] == pytest.approx(result.test_curve[0, 1])
    assert rep["original_attack_success"] == pytest.approx(result.test_curve[r, 0])
    assert rep["clean_accuracy"] == pytest.approx(result.test_curve[r, 1])
    assert orig["whitebox_attack_success"] == orig["original_attack_success"]
    assert orig["original_attack_success"] > 0.3  # the attack works on the full model
    for row in result.table.values():
        assert all(0 <= v <= 1 for v in row.values() if v == v)
    # the greedy control ran its steps and chose k by the same rule
    assert result.search is not None and len(result.search["path"]) == 2
    assert 0 <= result.search["k"] <= 2
    assert "x" in result.interpretation()

    files = write_adversarial(result, tmp_path / "out")
    for key in ("table", "selection", "curve", "model", "summary", "plot"):
        assert files[key].is_file(), key
    summary = json.loads(files["summary"].read_text())
    assert summary["removed"] == result.removed and summary["attack"]["eps"] == 0.25
    assert summary["ranking"] == result.ranking and summary["greedy_search"]["k"] >= 0
    loaded = load_repaired(DigitsCNN(**SMALL), files["model"])
    with torch.no_grad():
        acc = float((loaded(tiny_setup.x_test).argmax(-1) == tiny_setup.y_test).double().mean())
    assert acc == pytest.approx(rep["clean_accuracy"])


@pytest.mark.slow
def test_adversarial_command(tmp_path: Path) -> None:
    from neuronshapley.cli.repair import register

    app = typer.Typer()
    register(app)
    out = tmp_path / "cli"
    res = CliRunner().invoke(app, [
        "adversarial", "--out", str(out), "--epochs", "2", "--steps", "3",
        "--max-evaluations", "200", "--k-grid", "0,1", "--clean-weights", "1,0.5",
        "--no-progress",
    ])
    assert res.exit_code == 0, res.output
    assert "Adversarial repair" in res.output
    for name in ("adversarial.csv", "adversarial.png", "repaired_model.pt", "summary.json",
                 "values/values.csv"):
        assert (out / name).is_file(), name
    bad = CliRunner().invoke(app, ["adversarial", "--out", str(out), "--clean-weights", "x",
                                   "--no-progress"])
    assert bad.exit_code == 2 and "clean-weights" in bad.output


def test_transfer_cnn_shape() -> None:
    net = TransferCNN(width=4).eval()
    assert net(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    assert np.isclose(AttackSettings().step_size * 4, AttackSettings().eps)
