"""The EfficientNet-Lite0 scale study, end to end on a small random-weight network."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from neuronshapley.studies.compare import units_to_level
from neuronshapley.studies.efficientnet import (
    efficientnet_setup,
    run_efficientnet_study,
    top_overlap,
)
from neuronshapley.zoo.efficientnet import EfficientNetLite0

torch.set_num_threads(1)


def test_units_below_a_level_and_top_overlap() -> None:
    curve = np.array([1.0, 0.8, 0.5, 0.4, 0.05])
    assert units_to_level(curve, 0.5, strict=True) == 3
    assert units_to_level(curve, 0.1, strict=True) == 4
    assert units_to_level(curve, 0.01, strict=True) is None
    a, b = np.array([5.0, 4, 3, 2, 1]), np.array([1.0, 4, 5, 2, 3])
    assert top_overlap(a, b, 2) == 1 and top_overlap(a, a, 3) == 3


def test_study_runs_on_disjoint_crops_and_writes_its_files(tmp_path) -> None:
    pytest.importorskip("captum")
    pytest.importorskip("skimage")
    torch.manual_seed(0)
    model = EfficientNetLite0(num_classes=10, head=48).eval()
    setup = efficientnet_setup(6, 6, (0, 1), model=model)
    assert not set(setup.value_crops) & set(setup.test_crops)
    study = run_efficientnet_study(tmp_path, setup, shapley_seeds=(0, 1), max_evaluations=150,
                                   strata=1, n_steps=2, random_draws=2)
    comp = study.compare
    assert comp.n_players == 48 and comp.max_k == 48
    assert set(comp.curves) == {"shapley", "loo", "conductance", "weight_norm",
                                "activation_norm", "random"}
    for c in comp.curves.values():
        assert c.heldout[0] == 1.0  # fidelity of the full network with itself
    assert len(study.seed_curves) == 2 and study.seed_curves[0].shape == (49,)
    assert set(study.breaks) >= {"shapley", "shapley seed 0", "shapley seed 1"}
    k = study.breaks["shapley"]["0.5"]
    assert k is None or comp.curves["shapley"].heldout[k] < 0.5
    assert study.settings["shared_crops"] == 0 and study.settings["prefix_cached"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["settings"]["shapley"]["seeds"] == [0, 1]
    for name in ("removal.png", "compare.png", "breaks.csv", "levels.csv"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "values" / "shapley_seed1" / "values.csv").exists()
