"""Metrics: values against direct computations, vector outputs, and specific shape errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import tiny_mlp
from sklearn.metrics import balanced_accuracy_score

from neuronshapley import ModelGame
from neuronshapley.network import metrics as mt

torch.set_num_threads(1)


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """outputs (M=4, B=30, C=3), targets (30,), groups (30,) in 0..2."""
    g = torch.Generator().manual_seed(3)
    outputs = torch.randn(4, 30, 3, generator=g)
    targets = torch.randint(0, 3, (30,), generator=g)
    groups = torch.arange(30) % 3
    return outputs, targets, groups


def _manual_group_acc(outputs, targets, groups, n_groups):
    pred = outputs.argmax(-1)
    return torch.stack([
        torch.tensor([(pred[m][groups == g] == targets[groups == g]).double().mean()
                      for g in range(n_groups)]) for m in range(outputs.shape[0])
    ]).double()


def test_every_metric_is_registered_by_name() -> None:
    for name in ("accuracy", "balanced_accuracy", "log_prob", "neg_cross_entropy",
                 "class_recall", "group_accuracy", "worst_group_accuracy", "group_gap"):
        assert mt.get_metric(name) is mt.METRICS[name]


def test_group_metrics_match_direct_computation(batch) -> None:
    outputs, targets, groups = batch
    expected = _manual_group_acc(outputs, targets, groups, 3)
    got = mt.group_accuracy(outputs, targets, groups)
    assert got.shape == (4, 3)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(mt.worst_group_accuracy(outputs, targets, groups),
                               expected.min(-1).values)
    gap = mt.group_gap(outputs, targets, groups)
    torch.testing.assert_close(gap, expected.min(-1).values - expected.max(-1).values)
    assert bool((gap <= 0).all()), "group_gap is minus the gap: larger (closer to 0) is better"
    # dict form, numpy ids, explicit group count
    as_dict = mt.group_accuracy(outputs, targets, {"groups": groups.numpy(), "n_groups": 3})
    torch.testing.assert_close(as_dict, expected)


def test_balanced_accuracy_matches_sklearn(batch) -> None:
    outputs, targets, _ = batch
    got = mt.balanced_accuracy(outputs, targets)
    for m in range(outputs.shape[0]):
        ref = balanced_accuracy_score(targets.numpy(), outputs[m].argmax(-1).numpy())
        assert math.isclose(float(got[m]), ref, rel_tol=1e-12)


def test_balanced_accuracy_skips_absent_classes() -> None:
    outputs = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [2.0, 0.0, 0.0]]])
    targets = torch.tensor([0, 1, 1])  # class 2 absent
    assert float(mt.balanced_accuracy(outputs, targets)[0]) == pytest.approx(0.75)


def test_log_prob_and_class_recall_unchanged(batch) -> None:
    outputs, targets, _ = batch
    lp = torch.log_softmax(outputs.double(), -1)[:, torch.arange(30), targets].mean(-1)
    torch.testing.assert_close(mt.log_prob(outputs, targets), lp)
    torch.testing.assert_close(mt.neg_cross_entropy(outputs, targets), lp)
    rec = mt.class_recall(outputs, targets)
    assert rec.shape == (4, 3)
    # accuracy is the class-frequency-weighted mean of the recalls
    w = torch.bincount(targets, minlength=3).double() / 30
    torch.testing.assert_close(rec @ w, mt.accuracy(outputs, targets))


@pytest.mark.parametrize("name", ["group_accuracy", "worst_group_accuracy", "group_gap"])
def test_group_metrics_need_extra(batch, name: str) -> None:
    outputs, targets, groups = batch
    fn = mt.METRICS[name]
    with pytest.raises(mt.MetricError, match="group ids"):
        fn(outputs, targets, None)
    with pytest.raises(mt.MetricError, match=r"shape \(30,\)"):
        fn(outputs, targets, groups[:10])
    with pytest.raises(mt.MetricError, match="integers"):
        fn(outputs, targets, groups.double() + 0.5)
    with pytest.raises(mt.MetricError, match="extra\\['groups'\\]"):
        fn(outputs, targets, {"ids": groups})
    with pytest.raises(mt.MetricError, match="no example"):
        fn(outputs, targets, {"groups": groups, "n_groups": 4})


def test_shape_errors_are_specific(batch) -> None:
    outputs, targets, _ = batch
    with pytest.raises(mt.MetricError, match=r"\(M, B, C\)"):
        mt.accuracy(outputs[0], targets)
    with pytest.raises(mt.MetricError, match="targets for"):
        mt.accuracy(outputs, targets[:5])
    with pytest.raises(mt.MetricError, match="class indices"):
        mt.log_prob(outputs, targets + 3)
    assert issubclass(mt.MetricError, ValueError)


def test_as_metric_validates_user_callables(batch) -> None:
    outputs, targets, _ = batch

    def margin(out, tgt, extra=None):
        return out.max(-1).values.mean(-1).numpy()  # numpy is fine

    wrapped = mt.as_metric(margin)
    assert wrapped.__name__ == "margin"
    assert wrapped(outputs, targets).dtype == torch.float64
    with pytest.raises(mt.MetricError, match="'bad'.*shape"):
        mt.as_metric(lambda o, t, e=None: o.mean(), name="bad")(outputs, targets)
    with pytest.raises(mt.MetricError, match="NaN"):
        mt.as_metric(lambda o, t, e=None: o[..., 0].mean(-1) * math.nan)(outputs, targets)
    with pytest.raises(mt.MetricError, match=r"\(M, B, C\)"):
        wrapped(outputs[0], targets)
    named = mt.as_metric(lambda o, t, e=None: o.mean(1), output_names=["a", "b", "c"])
    assert named.output_names(3) == ["a", "b", "c"]
    with pytest.raises(mt.MetricError, match="output names"):
        named.output_names(2)


def test_chance_levels() -> None:
    assert mt.chance_level("accuracy", 10) == pytest.approx(0.1)
    assert mt.chance_level("log_prob", 2) == pytest.approx(-math.log(2))
    assert mt.chance_level("group_gap", 2) == 0.0
    assert mt.chance_level("something_else", 3) is None


def test_group_metric_in_a_game_with_names_and_walk_sample(tabular_data) -> None:
    x, y = tabular_data
    groups = torch.arange(len(y)) % 2
    metric = mt.with_output_names("group_accuracy", ["even", "odd"])
    game = ModelGame(tiny_mlp(), x, y, metric=metric, extra=groups)
    assert game.output_names == ["even", "odd"]
    masks = np.ones((3, game.n_players), dtype=bool)
    masks[1, :2] = False
    vals = game(masks)
    assert vals.shape == (3, 2)
    acc = ModelGame(tiny_mlp(), x, y, metric="accuracy")(masks)
    np.testing.assert_allclose(vals.mean(1), acc)  # equal-size groups
    worst = ModelGame(tiny_mlp(), x, y, metric="worst_group_accuracy", extra=groups)(masks)
    np.testing.assert_allclose(worst, vals.min(1))
    sampled = ModelGame(tiny_mlp(), x, y, metric="group_gap", extra=groups, walk_sample=20)
    sampled.new_walk(np.random.default_rng(0))
    assert sampled(masks).shape == (3,)
    with pytest.raises(ValueError, match="group ids"):
        ModelGame(tiny_mlp(), x, y, metric="group_accuracy")


def test_next_token_metrics_score_the_chosen_position():
    from neuronshapley.network.metrics import (
        next_token_accuracy,
        next_token_log_prob,
        token_positions,
    )

    g = torch.Generator().manual_seed(0)
    out = torch.randn(2, 3, 4, 5, generator=g)  # M=2, B=3, L=4, V=5
    targets = torch.tensor([1, 4, 0])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    pos = token_positions({"attention_mask": mask}, 3, 4)
    assert pos.tolist() == [3, 1, 0]
    assert token_positions(None, 3, 4).tolist() == [3, 3, 3]
    lp = torch.log_softmax(out.double(), -1)
    expected = torch.stack([lp[:, b, p, t] for b, p, t in zip(range(3), [3, 1, 0], targets,
                                                              strict=True)], 1).mean(1)
    assert torch.allclose(next_token_log_prob(out, targets, {"attention_mask": mask}), expected)
    chosen = {"positions": torch.tensor([0, 2, 1])}
    top = torch.stack([out[:, b, p].argmax(-1) for b, p in zip(range(3), [0, 2, 1],
                                                               strict=True)], 1)
    assert torch.equal(next_token_accuracy(out, targets, chosen),
                       (top == targets).double().mean(1))
    with pytest.raises(mt.MetricError, match="positions must be 3 indices"):
        next_token_accuracy(out, targets, {"positions": torch.tensor([0, 9, 1])})
    with pytest.raises(mt.MetricError, match=r"\(M, B, L, V\)"):
        next_token_log_prob(out[:, :, 0], targets)
