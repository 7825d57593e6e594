"""Ctrl-C in the middle of an evaluation leaves the user's model exactly as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neuronshapley import Ablator, ModelGame, discover_players


class _Tripwire(nn.Module):
    """Identity that raises KeyboardInterrupt while armed (a Ctrl-C inside a forward)."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.armed:
            raise KeyboardInterrupt
        return x


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),  # folded: forward patched
        nn.Conv2d(4, 4, 3), nn.ReLU(), _Tripwire(), nn.Flatten(), nn.Linear(64, 3),
    ).eval()


def _untouched(model: nn.Module) -> None:
    for name, module in model.named_modules():
        assert not module._forward_hooks and not module._forward_pre_hooks, name
        assert "forward" not in vars(module), name


def test_keyboard_interrupt_inside_a_forward_removes_every_hook(image_data):
    x, y = image_data
    model = _net()
    with torch.no_grad():
        before = model(x)
    game = ModelGame(model, x, y, channels_last=False)
    masks = np.random.default_rng(0).random((5, game.n_players)) > 0.5
    model[5].armed = True
    with pytest.raises(KeyboardInterrupt):
        game(masks)
    with pytest.raises(KeyboardInterrupt):
        game.ablator.fit_reference(x)
    model[5].armed = False
    _untouched(model)
    with torch.no_grad():
        assert torch.equal(model(x), before)


def test_keyboard_interrupt_in_a_transformer_block_removes_every_hook():
    pytest.importorskip("transformers")
    from tiny_transformers import tiny_bert, token_batch

    model = tiny_bert()
    data = token_batch(token_types=True)
    with torch.no_grad():
        before = model(**data).logits
    players = discover_players(model)
    ablator = Ablator(model, players).fit_reference(data)
    layer = model.bert.encoder.layer[1].output

    def interrupt(*_args: object) -> None:
        raise KeyboardInterrupt

    handle = layer.register_forward_pre_hook(interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            ablator.forward(data, torch.rand(4, players.n_players) > 0.5)
    finally:
        handle.remove()
    _untouched(model)
    with torch.no_grad():
        assert torch.equal(model(**data).logits, before)
