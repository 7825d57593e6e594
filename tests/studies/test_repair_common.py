"""Helpers shared by the repair studies: split, rankings, greedy control, estimator, files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import neuronshapley as ns
from neuronshapley.network.repair import load_repaired, repair
from neuronshapley.studies.repair_common import (
    AppendedOutput,
    estimate_values,
    greedy_search,
    k_grid,
    knapsack_order,
    removal_masks,
    split_indices,
    write_repair_files,
)

torch.set_num_threads(1)


def test_split_keeps_keys_together_and_strata_balanced() -> None:
    keys = np.arange(200) % 100  # example i and i + 100 are one item
    strata = (np.arange(200) % 100 >= 60).astype(int)  # 60 items in stratum 0, 40 in 1
    value, select = split_indices(200, 0.5, seed=3, keys=keys, strata=strata)
    assert sorted([*value, *select]) == list(range(200))
    assert set(keys[value]).isdisjoint(keys[select])
    assert (strata[select] == 0).sum() == 60 and (strata[select] == 1).sum() == 40
    again = split_indices(200, 0.5, seed=3, keys=keys, strata=strata)
    assert np.array_equal(again[1], select)
    same = split_indices(10, 0.0, seed=0)
    assert np.array_equal(same[0], same[1])
    with pytest.raises(ValueError):
        split_indices(10, 1.0, seed=0)
    with pytest.raises(ValueError, match="too small"):
        split_indices(1, 0.5, seed=0)


def test_knapsack_order_by_hand() -> None:
    gain = np.array([0.3, 0.2, -0.1, 0.4, 0.1, 0.0])
    cost = np.array([0.1, -0.05, 0.2, 0.4, 0.01, 0.3])
    # free: unit 1 (gain 0.2, cost < 0); paid by ratio: 4 (10), 0 (3), 3 (1); rest: 5, 2
    assert knapsack_order(gain, cost).tolist() == [1, 4, 0, 3, 5, 2]


def test_grid_masks_and_greedy_search() -> None:
    assert k_grid([5, 0, 3, 99], 10) == [0, 3, 5]
    assert k_grid(None, 12)[-1] == 12
    masks = removal_masks(np.array([2, 0, 1]), 3, [0, 1, 3])
    assert masks.tolist() == [[True, True, True], [True, True, False], [False, False, False]]
    weights = np.array([0.5, -0.3, 0.1, -0.6])  # additive game: V = sum of kept weights

    def game(m: np.ndarray) -> np.ndarray:
        return np.stack([m @ weights, m[:, 0].astype(float)], axis=1)

    # maximise V, but never remove unit 0 (output 1 must stay 1)
    path = greedy_search(game, 4, lambda v: np.where(v[:, 1] > 0.5, v[:, 0], -np.inf), 3)
    assert path.tolist() == [3, 1, 2]  # best first; it goes on (k is chosen afterwards)
    assert greedy_search(game, 4, lambda v: np.full(len(v), -np.inf), 3).size == 0


def _tiny() -> tuple[nn.Module, ns.ModelGame]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    x = torch.randn(40, 4)
    y = torch.arange(40) % 3
    return model, ns.ModelGame(model, x, y, metric="class_recall", players="0")


def test_estimate_values_and_appended_output() -> None:
    _, game = _tiny()
    res = estimate_values(game, "auto", 200, seed=1)
    assert res.values.shape == (6, 3) and res.info["auto"]["chosen"] == "exact"
    wrapped = AppendedOutput(game, 1, "minus recall 1")
    masks = np.ones((2, 6), dtype=bool)
    masks[1, :3] = False
    v = wrapped(masks)
    assert v.shape == (2, 4) and np.allclose(v[:, 3], -v[:, 1])
    assert wrapped.n_players == 6 and wrapped.output_names[-1] == "minus recall 1"
    tm = estimate_values(wrapped, "tmab", 300, seed=0, options={"k": 2}, tmab_output=3)
    assert tm.method == "tmab" and tm.values.shape == (6, 4)
    assert tm.params["output"] == 3
    with pytest.raises(ValueError, match="method"):
        estimate_values(game, "exact", 10)


def test_write_repair_files(tmp_path: Path) -> None:
    model, game = _tiny()
    res = ns.estimate(game, method="exact")
    repaired = repair(model, game, ["0:1"])
    seen: dict[str, Path] = {}

    def summary(files: dict[str, Path]) -> dict[str, object]:
        seen.update(files)
        return {"k": 1, "x": float("nan")}

    files = write_repair_files(tmp_path, {"table": ("t.csv", [{"a": 1.5}])}, res, repaired,
                               {"removed": ["0:1"]}, summary,
                               lambda p: p.write_bytes(b"png"), "p.png")
    assert files["table"].read_text() == "a\n1.5\n" and files["plot"].read_bytes() == b"png"
    assert (files["values"] / "values.csv").is_file() and set(seen) <= set(files)
    data = json.loads(files["summary"].read_text())
    assert data["k"] == 1 and data["x"] is None and data["files"]["model"].endswith(".pt")
    assert json.loads(files["model"].with_suffix(".json").read_text())["removed"] == ["0:1"]
    fresh = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    loaded = load_repaired(fresh, files["model"])
    x = torch.randn(5, 4)
    assert torch.allclose(loaded(x), repaired(x))


def test_choose_removal_picks_the_best_allowed_ranking_and_k_by_hand() -> None:
    from neuronshapley.studies.repair_common import choose_removal, search_control

    # outputs: [target score, overall accuracy]; removing unit i adds harm[i] to the target
    # and costs cost[i] of overall
    harm = np.array([0.30, 0.20, 0.10, -0.05])
    cost = np.array([0.02, 0.10, 0.01, 0.00])

    def game(masks: np.ndarray) -> np.ndarray:
        gone = ~masks
        return np.stack([0.5 + gone @ harm, 0.9 - gone @ cost], axis=1)

    def measure(g, order, ks):
        return g(removal_masks(order, 4, ks))

    def objective(c):
        return -c[:, 0]

    def allowed(c):
        return c[:, 1] >= c[0, 1] - 0.05 - 1e-12

    def describe(c):
        return {"target": c[..., 0], "overall": c[..., 1]}

    rankings = {"by harm": np.array([0, 1, 2, 3]), "by ratio": np.array([2, 0, 3, 1])}
    said: list[str] = []
    choice = choose_removal(rankings, [0, 1, 2, 3], (game, game, game), measure, objective,
                            allowed, describe, log=said.append)
    # by harm: k=2 costs 0.12 (not allowed) -> best k=1 (0.80); by ratio: k=2 removes 2, 0
    # (cost 0.03, target 0.90), k=3 adds 3 (target 0.85) -> 0.90 at k=2 wins
    assert (choice.ranking, choice.chosen_k) == ("by ratio", 2)
    assert choice.removed(["a", "b", "c", "d"]) == ["c", "a"]
    assert choice.select_curve[2, 0] == pytest.approx(0.9)
    assert len(choice.selection) == 8 and said and "remove 2 units" in said[0]
    per = {r["ranking"]: r for r in choice.per_ranking}
    assert per["by harm"]["removed"] == 1 and per["by harm"]["test_target"] == pytest.approx(0.8)
    control = search_control(game, game, 4, 3, lambda v: np.where(allowed_floor(v), v[:, 0],
                                                                   -np.inf),
                             measure, objective, allowed)
    assert list(control.path[:2]) == [0, 2] and control.k == 2
    assert control.evaluations == 4 + 3 + 2


def allowed_floor(v: np.ndarray) -> np.ndarray:
    return v[:, 1] >= 0.9 - 0.05 - 1e-12
