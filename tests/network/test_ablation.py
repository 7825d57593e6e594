import numpy as np
import pytest
import torch
from conftest import tiny_cnn, tiny_mlp
from torch import nn

from neuronshapley import AblationError, Ablator, discover_players


def _one_at_a_time(ab: Ablator, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    return torch.cat([ab.forward(x, m[None]) for m in masks])


@pytest.mark.parametrize("replacement", ["mean", "channel", "zero"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_batched_masks_equal_one_at_a_time(image_data, replacement, channels_last):
    x, _ = image_data
    model = tiny_cnn()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    ab = Ablator(model, discover_players(model), replacement).fit_reference(x, batch_size=7)
    masks = torch.from_numpy(np.random.default_rng(0).random((11, 7)) > 0.5)
    masks[0] = True
    batched = ab.forward(x, masks)
    assert batched.shape == (11, 24, 3)
    assert torch.equal(batched, _one_at_a_time(ab, x, masks))
    with torch.no_grad():
        assert torch.allclose(batched[0], model(x), atol=1e-6)


def test_mean_ablation_equals_hand_edited_linear(tabular_data):
    x, _ = tabular_data
    model = tiny_mlp()
    ab = Ablator(model, discover_players(model), "mean").fit_reference(x)
    removed = [1, 4]
    mask = torch.ones(1, 6, dtype=torch.bool)
    mask[0, removed] = False
    edited = tiny_mlp()
    with torch.no_grad():
        pre = model[0](x).double().mean(0)
        edited[0].weight[removed] = 0
        edited[0].bias[removed] = pre[removed].float()
        assert torch.allclose(ab.forward(x, mask)[0], edited(x), atol=1e-6)


@pytest.mark.parametrize("replacement", ["channel", "zero"])
def test_channel_and_zero_ablation_equal_hand_edited_conv(image_data, replacement):
    x, _ = image_data
    model = tiny_cnn()
    ab = Ablator(model, discover_players(model), replacement).fit_reference(x)
    mask = torch.ones(1, 7, dtype=torch.bool)
    mask[0, [0, 5]] = False  # conv "0" channel 0, conv "2" channel 2
    edited = tiny_cnn()
    with torch.no_grad():
        for layer, ch in ((0, 0), (2, 2)):
            if replacement == "channel":
                # the channel mean of the un-ablated upstream network (layer 0 runs first)
                inp = x if layer == 0 else model[1](model[0](x))
                target = model[layer](inp)[:, ch].double().mean()
            else:
                target = torch.tensor(0.0)
            edited[layer].weight[ch] = 0
            edited[layer].bias[ch] = target.float()
        assert torch.allclose(ab.forward(x, mask)[0], edited(x), atol=1e-5)


def test_mean_reference_is_per_channel_and_position(image_data):
    x, _ = image_data
    model = tiny_cnn()
    ab = Ablator(model, discover_players(model), "mean").fit_reference(x)
    with torch.no_grad():
        expected = model[0](x).double().mean(0).float()
    assert ab.reference["0"].shape == (3, 6, 6)
    assert torch.allclose(ab.reference["0"], expected, atol=1e-6)


def test_hooks_are_removed_even_on_error(image_data):
    x, _ = image_data
    model = tiny_cnn()
    ab = Ablator(model, discover_players(model)).fit_reference(x)

    class Boom(nn.Module):
        def forward(self, t):
            raise RuntimeError("boom")

    model.add_module("6", Boom())  # runs after the hooked layers
    with pytest.raises(RuntimeError, match="boom"):
        ab.forward(x, torch.zeros(2, 7, dtype=torch.bool))
    assert all(len(m._forward_hooks) == 0 for m in model.modules())


def test_errors(image_data):
    x, _ = image_data
    model = tiny_cnn()
    ab = Ablator(model, discover_players(model))
    with pytest.raises(AblationError, match="fit_reference"):
        ab.forward(x, torch.ones(1, 7, dtype=torch.bool))
    ab.fit_reference(x)
    with pytest.raises(ValueError, match=r"shape \(M, 7\)"):
        ab.forward(x, torch.ones(1, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="replacement"):
        Ablator(model, discover_players(model), "median")
