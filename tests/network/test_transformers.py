"""Heads and MLP neurons of Hugging Face transformers: the game equals hand-edited weights.

Tiny random GPT-2, Llama (grouped-query attention) and BERT models from configs. Removing a
head zeroes its slice of the output projection's input, so it must equal zeroing those
output-projection columns (GPT-2's ``Conv1D`` stores (in, out): rows); removing an MLP neuron
must equal zeroing its down-projection column; mean replacement must equal moving
``W[:, slice] @ mean`` into the bias (per position for ``"mean"``).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from tiny_transformers import tiny_bert, tiny_gpt2, tiny_llama, token_batch  # noqa: E402

from neuronshapley import ModelGame, discover_players  # noqa: E402
from neuronshapley.network.transformer_units import ATTENTION_HEADS, MLP_NEURONS  # noqa: E402

FAMILIES = {
    "gpt2": (tiny_gpt2, "transformer.h.{}.attn", "transformer.h.{}.mlp", 44),
    "llama": (tiny_llama, "model.layers.{}.self_attn", "model.layers.{}.mlp", 40),
    "bert": (tiny_bert, "bert.encoder.layer.{}.attention", "bert.encoder.layer.{}.intermediate",
             37),
}


def _flat(outputs: torch.Tensor, _targets: torch.Tensor, _extra: object = None) -> torch.Tensor:
    """A vector 'metric': the model's outputs themselves, (M, B * ...)."""
    return outputs.reshape(outputs.shape[0], -1)


def _plain(model: torch.nn.Module, data: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        out = model(**data, use_cache=False) if "llama" in type(model).__name__.lower() else \
            model(**data)
    return out.logits.reshape(1, -1).double()


def _in_columns(module: torch.nn.Module) -> torch.Tensor:
    """A projection's weight as (out, in) (a view: editing it edits the weight)."""
    return module.weight if isinstance(module, torch.nn.Linear) else module.weight.t()


def _token_mean(model, module_path, data, per_position: bool) -> torch.Tensor:
    """Mean of the projection's input over real tokens: (L, in) per position or (in,)."""
    got = []
    handle = model.get_submodule(module_path).register_forward_pre_hook(
        lambda _m, args: got.append(args[0].detach().double()))
    try:
        _plain(model, data)
    finally:
        handle.remove()
    x = got[0]
    w = data["attention_mask"].double()[..., None]
    if per_position:
        return (x * w).sum(0) / w.sum(0)
    return (x * w).sum((0, 1)) / w.sum()


def _edited(model, layer, units, mean: torch.Tensor | None) -> torch.nn.Module:
    """A copy of ``model`` whose projection ignores ``units`` of its input (their columns
    zeroed) and, with ``mean``, adds ``W[:, cols] @ mean[cols]`` to its output (to its bias
    for one mean per feature; per position through a fixed additive term otherwise)."""
    edited = copy.deepcopy(model)
    proj = edited.get_submodule(layer.hooked)
    width = proj.weight.numel() // (proj.nf if hasattr(proj, "nf") else proj.out_features)
    per = width // layer.n_units if layer.is_heads else 1
    cols = torch.cat([torch.arange(u * per, (u + 1) * per) for u in units])
    with torch.no_grad():
        w = _in_columns(proj)
        shift = None if mean is None else (mean[..., cols] @ w[:, cols].double().t())
        w[:, cols] = 0.0
        if shift is not None and shift.ndim == 1:
            proj.bias += shift.float()
    if shift is not None and shift.ndim == 2:  # per position (L, out)
        proj.register_forward_hook(lambda _m, _i, out: out + shift.to(out.dtype))
    return edited


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_discovery_finds_heads_and_mlp_neurons(family):
    make, heads, neurons, width = FAMILIES[family]
    ps = discover_players(make(), kinds=(ATTENTION_HEADS, MLP_NEURONS))
    assert [(ly.name, ly.kind, ly.n_units) for ly in ps.layers] == [
        (pattern.format(i), kind, n)
        for i in range(2)
        for pattern, kind, n in ((heads, ATTENTION_HEADS, 4), (neurons, MLP_NEURONS, width))
    ]
    assert all(ly.is_heads == (ly.kind == ATTENTION_HEADS) for ly in ps.layers)
    everything = discover_players(make())
    kinds = {ly.kind for ly in everything.layers}
    assert kinds <= {ATTENTION_HEADS, MLP_NEURONS, "Linear"}  # never q/k/v or Conv1D outputs
    assert not any(ly.name.endswith(("query", "key", "value", "q_proj", "k_proj", "v_proj",
                                     "c_attn", "c_fc", "up_proj", "gate_proj"))
                   for ly in everything.layers)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("replacement", ["zero", "channel", "mean"])
def test_removing_a_head_or_a_neuron_equals_editing_the_weights(family, replacement):
    make, heads, neurons, _ = FAMILIES[family]
    model = make()
    data = token_batch(token_types=family == "bert")
    targets = torch.zeros(len(data["input_ids"]), dtype=torch.long)
    ps = discover_players(model, kinds=(ATTENTION_HEADS, MLP_NEURONS))
    game = ModelGame(model, data, targets, metric=_flat, players=ps, replacement=replacement)
    cases = [(ps.layers[2], [1]), (ps.layers[0], [0, 3]), (ps.layers[1], [5]),
             (ps.layers[3], [0, 7, 11])]
    masks = np.ones((len(cases) + 1, ps.n_players), dtype=bool)
    for row, (layer, units) in enumerate(cases, start=1):
        masks[row, [layer.offset + u for u in units]] = False
    values = game(masks)
    assert np.allclose(values[0], _plain(model, data).numpy()[0], atol=1e-5)
    for row, (layer, units) in enumerate(cases, start=1):
        mean = None
        if replacement != "zero":
            mean = _token_mean(model, layer.hooked, data, per_position=replacement == "mean")
        expected = _plain(_edited(model, layer, units, mean), data).numpy()[0]
        assert np.abs(values[row] - expected).max() < 1e-5, (layer.name, units)
        assert np.abs(values[row] - values[0]).max() > 1e-4  # the removal changed something


def test_many_masks_in_one_pass_equal_one_mask_at_a_time():
    model = tiny_bert()
    data = token_batch(n=5, token_types=True)
    ps = discover_players(model, kinds=(ATTENTION_HEADS, MLP_NEURONS))
    game = ModelGame(model, data, torch.zeros(5, dtype=torch.long), metric=_flat, players=ps)
    rng = np.random.default_rng(0)
    masks = rng.random((9, ps.n_players)) > 0.3
    masks[:4, :41] = True  # layer 0 intact in the first masks: shared prefix
    masks[4] = masks[5]
    together = game(masks)
    apart = np.concatenate([game(m[None]) for m in masks])
    assert np.allclose(together, apart, atol=1e-5)


def test_next_token_metrics_read_the_last_real_token():
    model = tiny_llama()
    data = token_batch(n=4, pad_last=2)
    targets = torch.tensor([5, 6, 7, 8])
    ps = discover_players(model, kinds=(ATTENTION_HEADS,))
    game = ModelGame(model, data, targets, metric="next_token_log_prob", players=ps)
    logits = _plain(model, data).reshape(4, data["input_ids"].shape[1], -1)
    last = data["attention_mask"].sum(1) - 1
    lp = torch.log_softmax(logits[torch.arange(4), last], -1)[torch.arange(4), targets]
    assert np.isclose(game(np.ones((1, ps.n_players), dtype=bool))[0], lp.mean().item(),
                      atol=1e-6)
    acc = ModelGame(model, data, targets, metric="next_token_accuracy", players=ps)
    top = logits[torch.arange(4), last].argmax(-1)
    assert acc(np.ones((1, ps.n_players), dtype=bool))[0] == (top == targets).double().mean()


@pytest.mark.parametrize("family", ["gpt2", "bert"])
def test_repair_edits_the_projection_of_removed_heads_and_neurons(family):
    from neuronshapley.network.repair import repair

    model = FAMILIES[family][0]()
    data = token_batch(token_types=family == "bert")
    ps = discover_players(model, kinds=(ATTENTION_HEADS, MLP_NEURONS))
    game = ModelGame(model, data, torch.zeros(6, dtype=torch.long), metric=_flat, players=ps,
                     replacement="channel")
    remove = [f"{ps.layers[0].name}:1", f"{ps.layers[3].name}:4"]
    mask = np.ones((1, ps.n_players), dtype=bool)
    mask[0, [ps.index(r) for r in remove]] = False
    fixed = repair(model, game, remove)
    assert np.abs(game(mask)[0] - _plain(fixed, data).numpy()[0]).max() < 1e-5
    per_position = ModelGame(model, data, torch.zeros(6, dtype=torch.long), metric=_flat,
                             players=ps)
    with pytest.raises(ValueError, match="replacement='channel'"):
        repair(model, per_position, remove)
