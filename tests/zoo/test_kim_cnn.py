"""Kim CNN: shapes, players, and unit removal against hand-edited weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuronshapley.errors import DataError
from neuronshapley.evaluation.baselines import weight_norm
from neuronshapley.network.game import ModelGame
from neuronshapley.zoo.kim_cnn import (
    FromEmbeddings,
    KimCNN,
    PooledHead,
    kim_players,
    train_kim_cnn,
    unit_activations,
    unit_weight_players,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model() -> KimCNN:
    torch.manual_seed(0)
    return KimCNN(vocab_size=30).eval()


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    t = torch.randint(2, 30, (12, 9), generator=g)
    t[:4, 6:] = 0  # padded snippets
    return t


def test_shapes_and_players(model: KimCNN, tokens: torch.Tensor) -> None:
    assert model(tokens).shape == (12, 2)
    players = kim_players(model)
    assert [(ly.name, ly.n_units) for ly in players.layers] == [("pool", 256), ("dense", 10)]
    assert players.ids[0] == "pool:0" and players.ids[-1] == "dense:9"
    with pytest.raises(DataError, match="L >= 6"):
        model(tokens[:, :5])
    embedded = model.embedding(tokens)
    torch.testing.assert_close(FromEmbeddings(model)(embedded), model(tokens))
    head = PooledHead(model)
    pooled = head.pooled_inputs(tokens)
    torch.testing.assert_close(head(pooled), model(tokens))
    acts = unit_activations(head, pooled)
    assert acts.shape == (12, 266)
    np.testing.assert_allclose(acts[:, 256:], model.dense(pooled).detach().numpy(), rtol=1e-6)


def test_pooled_unit_i_is_filter_i_mod_64_of_conv_i_div_64(model: KimCNN) -> None:
    norms = weight_norm(model, unit_weight_players(model)).values
    for i in (0, 63, 64, 130, 255):
        w = model.convs[i // 64].weight[i % 64].detach()
        assert norms[i] == pytest.approx(float(w.double().norm()))
    assert norms[256 + 3] == pytest.approx(float(model.dense.weight[3].detach().double().norm()))


def test_zero_removal_equals_hand_edited_weights(model: KimCNN, tokens: torch.Tensor) -> None:
    y = torch.zeros(len(tokens), dtype=torch.int64)
    logits = lambda outputs, _t, _e: outputs[..., 1].mean(-1)  # noqa: E731 - mean pos logit
    full = ModelGame(model, tokens, y, logits, players=kim_players(model), replacement="zero")
    head = PooledHead(model)
    pooled = ModelGame(head, head.pooled_inputs(tokens), y, logits, players=kim_players(head),
                       replacement="zero")
    masks = np.ones((3, 266), dtype=bool)
    masks[1, [5, 70, 200]] = False  # three pooled filters
    masks[2, [256 + 2, 256 + 7]] = False  # two dense units
    got, via_head = full(masks), pooled(masks)
    np.testing.assert_allclose(got, via_head, rtol=1e-6, atol=1e-7)
    edited = KimCNN(vocab_size=30).eval()
    edited.load_state_dict(model.state_dict())
    with torch.no_grad():
        edited.dense.weight[:, [5, 70, 200]] = 0.0  # the dense layer no longer reads them
    assert got[1] == pytest.approx(float(edited(tokens)[:, 1].mean().detach()), rel=1e-6)
    edited.load_state_dict(model.state_dict())
    with torch.no_grad():
        edited.heads.weight[:, [2, 7]] = 0.0
    assert got[2] == pytest.approx(float(edited(tokens)[:, 1].mean().detach()), rel=1e-6)


def test_mean_removal_game_on_pooled_inputs_equals_the_full_model(model, tokens) -> None:
    y = torch.randint(0, 2, (len(tokens),), generator=torch.Generator().manual_seed(3))
    head = PooledHead(model)
    full = ModelGame(model, tokens, y, "log_prob", players=kim_players(model))
    pooled = ModelGame(head, head.pooled_inputs(tokens), y, "log_prob", players=kim_players(head))
    masks = np.random.default_rng(0).random((6, 266)) < 0.5
    np.testing.assert_allclose(full(masks), pooled(masks), rtol=1e-5, atol=1e-6)


def test_training_is_seeded_and_keeps_the_best_selection_epoch() -> None:
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(2, 12, (80, 8), generator=g)
    labels = (tokens == 5).any(1).long()  # "contains word 5"
    a, log = train_kim_cnn(12, tokens[:60], labels[:60], tokens[60:], labels[60:], epochs=2,
                           seed=4, batch_size=20)
    b, _ = train_kim_cnn(12, tokens[:60], labels[:60], tokens[60:], labels[60:], epochs=2,
                         seed=4, batch_size=20)
    torch.testing.assert_close(a(tokens), b(tokens))
    assert len(log.selection_accuracy) == 2
    assert log.selection_accuracy[log.best_epoch - 1] == max(log.selection_accuracy)
    assert not a.training
    with pytest.raises(DataError, match="epochs"):
        train_kim_cnn(12, tokens, labels, tokens, labels, epochs=0)
