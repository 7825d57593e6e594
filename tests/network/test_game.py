import numpy as np
import pytest
import torch
from conftest import tiny_cnn, tiny_mlp
from torch import nn

import neuronshapley as ns
from neuronshapley import GameError, ModelGame, PlayerError


def test_full_coalition_is_the_plain_model(image_data):
    x, y = image_data
    model = tiny_cnn()
    game = ModelGame(model, x, y, metric="accuracy", batch_size=5, pass_size=20)
    with torch.no_grad():
        acc = (model(x).argmax(-1) == y).double().mean().item()
    assert game(np.ones((1, game.n_players), bool))[0] == pytest.approx(acc)
    assert game.players == ns.discover_players(model).ids


def test_chunking_does_not_change_values(image_data):
    x, y = image_data
    masks = np.random.default_rng(3).random((13, 7)) > 0.4
    a = ModelGame(tiny_cnn(), x, y, metric="log_prob")(masks)
    b = ModelGame(tiny_cnn(), x, y, metric="log_prob", batch_size=5, pass_size=11)(masks)
    c = ModelGame(tiny_cnn(), x, y, metric="log_prob", channels_last=False)(masks)
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(a, c, atol=1e-6)


def test_vector_metric_gives_every_class_from_one_pass(tabular_data):
    x, y = tabular_data
    game = ModelGame(tiny_mlp(), x, y, metric="class_recall")
    masks = np.random.default_rng(0).random((5, game.n_players)) > 0.5
    recall = game(masks)
    assert recall.shape == (5, 3) and game.output_names == ["class0", "class1", "class2"]
    acc = ModelGame(tiny_mlp(), x, y, metric="accuracy")(masks)
    counts = np.bincount(y.numpy(), minlength=3)
    np.testing.assert_allclose(recall @ counts / counts.sum(), acc)


def test_walk_sample_draws_reproducible_batches(tabular_data):
    x, y = tabular_data
    game = ModelGame(tiny_mlp(), x, y, metric="log_prob", walk_sample=10)
    full = np.ones((1, game.n_players), bool)
    game.new_walk(np.random.default_rng(5))
    a = game(full)
    game.new_walk(np.random.default_rng(5))
    assert game(full) == a
    game.new_walk(np.random.default_rng(6))
    assert game(full) != a


def test_bad_input_errors(tabular_data):
    x, y = tabular_data
    with pytest.raises(GameError, match="40 inputs but 39 targets"):
        ModelGame(tiny_mlp(), x, y[:-1])
    model = tiny_mlp().train()
    with pytest.raises(GameError, match="training mode"):
        ModelGame(model, x, y)
    with pytest.raises(PlayerError, match="no removable units"):
        ModelGame(nn.Sequential(nn.Flatten()).eval(), x, y)
    game = ModelGame(tiny_mlp(), x, y)
    with pytest.raises(GameError, match="width 5 but the game has 6 players"):
        game(np.ones((2, 5), bool))
    with pytest.raises(GameError, match="boolean"):
        game(np.full((2, 6), 0.5))

    def nan_metric(outputs, targets, extra=None):
        return torch.full((outputs.shape[0],), float("nan"))

    with pytest.raises(GameError, match="NaN"):
        ModelGame(tiny_mlp(), x, y, metric=nan_metric)
    with pytest.raises(ValueError, match="unknown metric"):
        ModelGame(tiny_mlp(), x, y, metric="f1")


def test_fingerprint_changes_with_weights(tabular_data):
    x, y = tabular_data
    a = ModelGame(tiny_mlp(seed=0), x, y).fingerprint()
    assert a == ModelGame(tiny_mlp(seed=0), x, y).fingerprint()
    assert a != ModelGame(tiny_mlp(seed=1), x, y).fingerprint()


def test_mixed_precision_is_refused_when_it_changes_the_metric(image_data):
    x, y = image_data
    # log-probabilities move in bfloat16: the game must refuse it rather than drift
    with pytest.raises(GameError, match="changes the metric"):
        ModelGame(tiny_cnn(), x, y, metric="log_prob", precision="bfloat16")
    with pytest.raises(GameError, match="precision must be one of"):
        ModelGame(tiny_cnn(), x, y, precision="int8")


def test_mixed_precision_kept_when_the_metric_is_unchanged(tabular_data):
    x, y = tabular_data
    game = ModelGame(tiny_mlp(), x * 0.1, y, metric="accuracy", precision="bfloat16")
    exact = ModelGame(tiny_mlp(), x * 0.1, y, metric="accuracy")
    full = np.ones((1, game.n_players), bool)
    assert game.precision == "bfloat16" and game(full) == exact(full)
    assert game.evaluations == exact.evaluations  # the precision check is not counted


def test_pass_size_follows_device_memory():
    from neuronshapley.network.game import pass_size_for_memory

    assert pass_size_for_memory(8 * 2**30, 2**20) == 4096  # half of 8 GiB over 1 MiB
    assert pass_size_for_memory(2**20, 2**30) == 64  # never below 64
    assert pass_size_for_memory(2**50, 1) == 2**20  # never above 2**20


def test_tf32_precision_and_the_cuda_math_context_restore_torch_flags(tabular_data):
    from neuronshapley.network.game import cuda_math

    x, y = tabular_data
    game = ModelGame(tiny_mlp(), x, y, metric="log_prob", precision="tf32")
    exact = ModelGame(tiny_mlp(), x, y, metric="log_prob")
    full = np.ones((1, game.n_players), bool)
    assert game.precision == "tf32"
    np.testing.assert_allclose(game(full), exact(full), rtol=1e-6)  # CPU: TF32 does not apply
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    with pytest.raises(ValueError), cuda_math(allow_tf32=not before[0]):
        assert torch.backends.cudnn.allow_tf32 == (not before[0])
        raise ValueError
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before


# -------------------------------------------------- inputs the game refuses, and its identity
@pytest.mark.parametrize("where", ["inputs", "reference"])
def test_one_nan_in_the_inputs_or_reference_is_an_error(tabular_data, where):
    x, y = tabular_data
    bad = x.clone()
    bad[7, 2] = float("nan")
    kwargs = {"reference": bad} if where == "reference" else {}
    data = bad if where == "inputs" else x
    what = "reference data" if where == "reference" else "evaluation inputs"
    with pytest.raises(GameError, match=f"the {what} hold 1 NaN or infinite entries in 1 of "
                                        r"40 examples \(e.g. \[7\]\)"):
        ModelGame(tiny_mlp(), data, y, **kwargs)


@pytest.mark.parametrize("labels, message", [
    (lambda y: y - 1, r"targets hold negative values \(-1\)"),
    (lambda y: y + 3, r"targets go up to 5 but the model scores 3 classes \(0..2\)"),
    (lambda y: y.double() + 0.5, r"targets hold 40 non-integer values \(e.g. \d.5 at 0\)"),
])
def test_labels_are_checked_against_the_models_classes(tabular_data, labels, message):
    x, y = tabular_data
    with pytest.raises(GameError, match=message):
        ModelGame(tiny_mlp(), x, labels(y))


def test_whole_float_labels_are_the_integer_labels(tabular_data):
    x, y = tabular_data
    masks = np.random.default_rng(1).random((6, 6)) > 0.5
    np.testing.assert_array_equal(ModelGame(tiny_mlp(), x, y.double())(masks),
                                  ModelGame(tiny_mlp(), x, y)(masks))


def test_fingerprint_covers_everything_that_defines_the_game(tabular_data):
    x, y = tabular_data
    base = ModelGame(tiny_mlp(), x, y).fingerprint()
    assert ModelGame(tiny_mlp(), x.clone(), y.clone()).fingerprint() == base
    changed_weights = tiny_mlp()
    with torch.no_grad():
        changed_weights[0].bias[0] += 1e-3
    others = {
        "weights": ModelGame(changed_weights, x, y),
        "players": ModelGame(tiny_mlp(), x, y,
                             players=ns.discover_players(tiny_mlp(), None, True)),
        "inputs": ModelGame(tiny_mlp(), x * 1.01, y),
        "targets": ModelGame(tiny_mlp(), x, (y + 1) % 3),
        "reference": ModelGame(tiny_mlp(), x, y, reference=x[:20]),
        "metric": ModelGame(tiny_mlp(), x, y, metric="log_prob"),
        "replacement": ModelGame(tiny_mlp(), x, y, replacement="zero"),
        "extra": ModelGame(tiny_mlp(), x, y, extra=torch.arange(40) % 2),
    }
    prints = {name: g.fingerprint() for name, g in others.items()}
    assert base not in prints.values() and len(set(prints.values())) == len(prints)
    game = ModelGame(tiny_mlp(), x, y, reference=x[:20])
    assert game.fingerprint() == prints["reference"]
    with torch.no_grad():
        game.model[0].weight.mul_(2)  # the same game object, its model edited afterwards
    assert game.fingerprint() != prints["reference"]
