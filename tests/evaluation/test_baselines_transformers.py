"""Baselines on heads and MLP neurons of tiny Hugging Face models, against direct computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from tiny_transformers import tiny_bert, tiny_gpt2, tiny_llama, token_batch  # noqa: E402

from neuronshapley import ModelGame, discover_players  # noqa: E402
from neuronshapley.evaluation import baselines as bl  # noqa: E402

KINDS = ("attention_heads", "mlp_neurons")


def _columns(module: torch.nn.Module) -> torch.Tensor:
    """(out, in) weight of a projection (``Conv1D`` stores (in, out))."""
    return module.weight if isinstance(module, torch.nn.Linear) else module.weight.t()


@pytest.mark.parametrize("make", [tiny_gpt2, tiny_bert, tiny_llama])
def test_weight_norm_of_a_head_is_its_output_projection_slice(make):
    model = make()
    ps = discover_players(model, kinds=KINDS)
    res = bl.weight_norm(model, ps)
    for layer in ps.layers:
        w = _columns(model.get_submodule(layer.hooked)).detach().double()
        per = w.shape[1] // layer.n_units
        expected = [w[:, u * per : (u + 1) * per].norm().item() for u in range(layer.n_units)]
        np.testing.assert_allclose(res.values[layer.slice], expected, rtol=1e-12)


def test_activation_norm_counts_real_tokens_only():
    model = tiny_bert()
    data = token_batch(token_types=True)
    ps = discover_players(model, kinds=KINDS)
    res = bl.activation_norm(model, ps, data, batch_size=4)
    layer = ps.layers[0]
    got = []
    h = model.get_submodule(layer.hooked).register_forward_pre_hook(
        lambda _m, a: got.append(a[0].detach().double()))
    try:
        with torch.no_grad():
            model(**data)
    finally:
        h.remove()
    x = got[0] * data["attention_mask"].double()[..., None]  # (N, L, 32), padding zeroed
    heads = x.unflatten(-1, (4, 8))
    expected = heads.permute(0, 2, 1, 3).reshape(len(x), 4, -1).norm(dim=-1).mean(0)
    np.testing.assert_allclose(res.values[layer.slice], expected.numpy(), rtol=1e-10)


def _example_losses(model, data, targets, layer, unit, scale) -> torch.Tensor:
    """Per-example cross-entropy with ``unit``'s slice of the projection input times
    ``scale`` (a gate)."""
    def pre(_m, args):
        x = args[0].clone()
        per = x.shape[-1] // layer.n_units if layer.is_heads else 1
        x[..., unit * per : (unit + 1) * per] *= scale
        return (x,)

    h = model.get_submodule(layer.hooked).register_forward_pre_hook(pre)
    try:
        with torch.no_grad():
            logits = model(**data).logits
    finally:
        h.remove()
    return torch.nn.functional.cross_entropy(logits, targets, reduction="none")


@pytest.mark.parametrize("make", [tiny_bert, tiny_gpt2])
def test_head_importance_equals_a_finite_difference_of_the_loss_in_the_gate(make):
    model = make().double()
    data = token_batch(n=5, token_types=make is tiny_bert)
    targets = torch.tensor([0, 1, 2, 1, 0])
    ps = discover_players(model, kinds=KINDS)
    res = bl.head_importance(model, ps, data, targets, batch_size=3)
    eps = 1e-5
    for layer, unit in [(ps.layers[0], 2), (ps.layers[2], 0), (ps.layers[1], 7)]:
        up = _example_losses(model, data, targets, layer, unit, 1 + eps)
        down = _example_losses(model, data, targets, layer, unit, 1 - eps)
        expected = ((up - down) / (2 * eps)).abs().sum().item()
        assert res.values[layer.offset + unit] == pytest.approx(expected, rel=1e-5, abs=1e-9)
    assert (res.values > 0).any()


def test_conductance_of_a_head_is_the_sum_over_its_slice():
    pytest.importorskip("captum")
    from captum.attr import LayerConductance

    model = tiny_bert()
    data = token_batch(n=4, token_types=True)
    targets = torch.tensor([0, 1, 2, 0])
    ps = discover_players(model, kinds=KINDS)
    layer = ps.layers[2]
    per_ex = bl.layer_conductance(model, layer, data, targets, n_steps=8)
    assert per_ex.shape == (4, 4)

    def forward(embeds, mask, types):
        return model(inputs_embeds=embeds, attention_mask=mask, token_type_ids=types).logits

    lc = LayerConductance(forward, model.get_submodule(layer.hooked))
    embeds = model.get_input_embeddings()(data["input_ids"]).detach()
    raw = lc.attribute(embeds, baselines=0.0, target=targets.tolist(), n_steps=8,
                       additional_forward_args=(data["attention_mask"], data["token_type_ids"]),
                       attribute_to_layer_input=True)
    raw = raw * data["attention_mask"][..., None]
    expected = raw.unflatten(-1, (4, 8)).sum(dim=(1, 3)).double()
    torch.testing.assert_close(per_ex, expected, rtol=1e-5, atol=1e-7)


def test_rank_units_on_a_transformer_game():
    model = tiny_llama()
    data = token_batch(n=4)
    targets = torch.tensor([5, 6, 7, 8])
    game = ModelGame(model, data, targets, metric="next_token_log_prob",
                     players=discover_players(model, kinds=KINDS))
    for method in ("loo", "weight_norm", "activation_norm", "random", "head_importance",
                   "conductance"):
        opts = {"n_steps": 4} if method == "conductance" else {}
        res = bl.rank_units(game, method, **opts)
        assert res.values.shape == (game.n_players,) and np.isfinite(res.values).all(), method
        assert res.players == game.players
