"""The evaluation engine's shortcuts (prefix sharing, in-place replacement, batch-norm folding,
automatic pass size) give the same values as the plain way of computing them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_cnn
from torch import nn

from neuronshapley import Ablator, ModelGame, discover_players
from neuronshapley.estimators.walks import step_masks
from neuronshapley.network.game import CPU_MAX_PASS, cpu_pass_size
from neuronshapley.network.players import PlayerSet, UnitTap
from neuronshapley.zoo.architectures import ResidualCNN


def _walk_masks(n: int, steps: range, seed: int = 0) -> torch.Tensor:
    perm = np.random.default_rng(seed).permutation(n)
    pos = np.empty(n, dtype=np.int64)
    pos[perm] = np.arange(n)
    return torch.from_numpy(step_masks(pos, np.asarray(steps)))


def _rows_seen(ab: Ablator, x: torch.Tensor, masks: torch.Tensor, module: nn.Module) -> int:
    """Rows of the batch that ``module`` (a layer after the first hooked one) processes."""
    seen = []
    handle = module.register_forward_hook(lambda _m, inp, _o: seen.append(inp[0].shape[0]))
    try:
        ab.forward(x, masks)
    finally:
        handle.remove()
    return seen[0]


@pytest.mark.parametrize("channels_last", [False, True])
def test_prefix_sharing_matches_expanding_the_input(image_data, channels_last):
    x, _ = image_data
    model = tiny_cnn()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    players = discover_players(model)
    masks = _walk_masks(players.n_players, range(0, 7))
    masks = torch.cat([masks, masks[2:4]])  # duplicates are computed once, returned twice
    out = {}
    for expand in ("tree", "lazy", "input"):
        ab = Ablator(model, players, expand=expand).fit_reference(x)
        out[expand] = ab.forward(x, masks)
        assert ab.strategy == expand
    assert torch.equal(out["tree"], out["input"]) and torch.equal(out["lazy"], out["input"])
    # the second conv only runs once per distinct mask of the first conv's 3 channels
    ab = Ablator(model, players, expand="tree").fit_reference(x)
    first = masks[:, players.layers[0].slice]
    distinct = len(torch.unique(first, dim=0))
    assert distinct < len(masks)
    assert _rows_seen(ab, x, masks, model[2]) == distinct * len(x)
    lazy = Ablator(model, players, expand="lazy").fit_reference(x)
    assert _rows_seen(lazy, x, masks, model[2]) == len(torch.unique(masks, dim=0)) * len(x)


def _perturb_norms(model: nn.Module) -> nn.Module:
    torch.manual_seed(3)
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.normal_(0, 0.3)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.normal_()
            mod.bias.data.normal_()
    return model.eval()


def test_skip_connections_share_activations_block_by_block(image_data):
    x, _ = image_data
    model = _perturb_norms(ResidualCNN(in_channels=1, width=4))
    players = discover_players(model)
    masks = _walk_masks(players.n_players, range(0, 12, 2))
    auto = Ablator(model, players).fit_reference(x)
    assert auto.strategy == "tree"
    got = auto.forward(x, masks)
    # block1's skip adds tensors of different stages per layer, one stage per block: no
    # fallback to a copy per mask
    assert auto.strategy == "blocks"
    want = Ablator(model, players, expand="input", fold=False).fit_reference(x)
    assert torch.allclose(got, want.forward(x, masks), atol=1e-5)
    assert torch.allclose(Ablator(model, players, expand="lazy").fit_reference(x).forward(
        x, masks), got, atol=1e-5)
    with pytest.raises(RuntimeError):
        Ablator(model, players, expand="tree").fit_reference(x).forward(x, masks)
    # the stem runs once; block1 once per distinct mask of the stem's and block1's units
    assert _rows_seen(auto, x, masks, model.stem) == len(x)
    upto = slice(0, players.layers[2].slice.stop)  # stem, block1.conv1, block1.conv2
    assert _rows_seen(auto, x, masks, model.block1.conv1) == len(
        torch.unique(masks[:, upto], dim=0)) * len(x)


def test_layer_output_that_aliases_its_input_is_not_overwritten(image_data):
    x, _ = image_data

    class Skip(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 3, padding=1)
            self.tap = UnitTap("Conv2d", 3, 1)  # returns its input itself
            self.head = nn.Linear(3, 2)

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.conv(t))
            return self.head((self.tap(h) + h).mean(dim=(2, 3)))

    torch.manual_seed(0)
    model = Skip().eval()
    players = PlayerSet(discover_players(model, ["tap"]).layers)
    ab = Ablator(model, players).fit_reference(x)
    mask = torch.tensor([[True, False, True]])
    with torch.no_grad():
        h = torch.relu(model.conv(x))
        tapped = h.clone()
        tapped[:, 1] = h[:, 1].mean(0)
        want = model.head((tapped + h).mean(dim=(2, 3)))
    assert torch.allclose(ab.forward(x, mask)[0], want, atol=1e-6)


class ConvBN(nn.Module):
    """conv -> BN -> ReLU -> conv -> BN; ``share`` also adds the second conv's raw output."""

    def __init__(self, share: bool = False) -> None:
        super().__init__()
        self.share = share
        self.c1, self.b1 = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.c2, self.b2 = nn.Conv2d(4, 5, 3, padding=1), nn.BatchNorm2d(5)
        self.head = nn.Linear(5, 3)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        y = self.c2(torch.relu(self.b1(self.c1(t))))
        z = self.b2(y) + y if self.share else self.b2(y)
        return self.head(z.mean(dim=(2, 3)))


@pytest.mark.parametrize("channels_last", [False, True])
def test_batch_norm_folding_matches_running_the_norm(image_data, channels_last):
    x, _ = image_data
    model = _perturb_norms(ConvBN())
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    players = discover_players(model)
    masks = torch.from_numpy(np.random.default_rng(0).random((6, players.n_players)) > 0.4)
    masks[0] = True
    folded = Ablator(model, players).fit_reference(x)
    plain = Ablator(model, players, fold=False).fit_reference(x)
    got = folded.forward(x, masks)
    assert folded._followers == {"c1": ["b1"], "c2": ["b2"]}
    assert torch.allclose(got, plain.forward(x, masks), atol=1e-5)
    assert not torch.allclose(got[0], got[1], atol=1e-3)
    # a mask's value does not depend on the other masks of its pass
    assert torch.equal(got, torch.cat([folded.forward(x, m[None]) for m in masks]))
    with torch.no_grad():
        assert torch.allclose(got[0], model(x), atol=1e-5)
    assert all("forward" not in vars(m) for m in model.modules())  # patches undone


def test_no_folding_when_the_norm_is_not_the_only_reader(image_data):
    x, _ = image_data
    model = _perturb_norms(ConvBN(share=True))
    players = discover_players(model)
    masks = torch.from_numpy(np.random.default_rng(1).random((4, players.n_players)) > 0.4)
    ab = Ablator(model, players).fit_reference(x)
    got = ab.forward(x, masks)
    assert ab._followers == {"c1": ["b1"]}
    want = Ablator(model, players, fold=False).fit_reference(x).forward(x, masks)
    assert torch.allclose(got, want, atol=1e-5)


def test_cpu_pass_size_follows_activation_bytes(image_data):
    assert cpu_pass_size(33_000) == CPU_MAX_PASS  # the digits CNN: the cap
    assert cpu_pass_size(56_000_000) == 19  # EfficientNet-Lite0 at 224 x 224
    assert cpu_pass_size(2**40) == 1
    x, y = image_data
    assert ModelGame(tiny_cnn(), x, y).pass_size == CPU_MAX_PASS


@pytest.mark.parametrize("channels_last", [False, True])
def test_folded_relu_and_norm_chain_equal_the_modules(image_data, channels_last):
    x, _ = image_data
    torch.manual_seed(0)
    model = _perturb_norms(nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU6(),
        nn.Conv2d(4, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 3),
    ))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    players = discover_players(model)
    masks = _walk_masks(players.n_players, range(0, 7))
    folded = Ablator(model, players).fit_reference(x)
    got = folded.forward(x, masks)
    assert folded._followers == {"0": ["1", "2"], "3": ["4"]}
    want = Ablator(model, players, fold=False).fit_reference(x).forward(x, masks)
    assert torch.allclose(got, want, atol=1e-5)
    # a ReLU alone is applied exactly as the module would
    cnn = tiny_cnn()
    ab = Ablator(cnn, discover_players(cnn)).fit_reference(x)
    masks = _walk_masks(7, range(0, 7))
    got = ab.forward(x, masks)
    assert ab._followers == {"0": ["1"], "2": ["3"]}
    assert torch.equal(got, Ablator(cnn, discover_players(cnn), fold=False).fit_reference(x)
                       .forward(x, masks))
