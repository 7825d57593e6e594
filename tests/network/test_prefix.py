"""Splitting a network before its first player layer: the halves compute the whole."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neuronshapley.network.players import discover_players
from neuronshapley.network.prefix import split_at_players
from neuronshapley.zoo.architectures import InceptionCNN, ResidualCNN
from neuronshapley.zoo.efficientnet import EfficientNetLite0

torch.set_num_threads(1)


def _layers(model: nn.Module, patterns: list[str] | None = None) -> list[str]:
    return [ly.name for ly in discover_players(model, patterns).layers]


@pytest.mark.parametrize("make, skip, cut_count", [
    (ResidualCNN, 1, 1),      # the block's input feeds its conv and its skip addition: one cut
    (InceptionCNN, 1, 2),     # branches: the stem's output and the pooling branch's input
])
def test_halves_equal_the_whole(make: type[nn.Module], skip: int, cut_count: int) -> None:
    torch.manual_seed(0)
    model = make().eval()
    x = torch.randn(5, 1, 8, 8)
    split = split_at_players(model, _layers(model)[skip:], x)
    assert split is not None and len(split.cut) == cut_count
    with torch.inference_mode():
        assert torch.equal(split.suffix(*split.run_prefix(x)), model(x))


def test_efficientnet_last_stage_split_runs_only_the_tail() -> None:
    torch.manual_seed(0)
    model = EfficientNetLite0(num_classes=10).eval()
    x = torch.randn(2, 3, 96, 96)
    layers = _layers(model, ["_blocks.15.*", "_conv_head"])
    split = split_at_players(model, layers, x)
    assert split is not None
    suffix_convs = {n for n, m in split.suffix.named_modules() if isinstance(m, nn.Conv2d)}
    assert suffix_convs == set(layers)  # the stem and blocks 0-14 are in the prefix only
    with torch.inference_mode():
        assert torch.equal(split.suffix(*split.run_prefix(x)), model(x))


def test_models_that_cannot_be_split() -> None:
    class ReadsShape(nn.Module):  # a cut value that is a size, not a batch-first tensor
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x)) * x.shape[0]

    class DataDependent(nn.Module):  # control flow on values: not traceable
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.a(x)
            return self.b(h if h.sum() > 0 else -h)

    x = torch.randn(3, 4)
    first = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    assert split_at_players(first, ["0"], x) is None  # the first player reads the input
    assert split_at_players(DataDependent(), ["b"], x) is None
    assert split_at_players(ReadsShape(), ["b"], x) is None


def _games(model: nn.Module, x: torch.Tensor, y: torch.Tensor, players: list[str] | None
           ) -> tuple:
    import neuronshapley as ns

    cached = ns.ModelGame(model, x, y, metric="log_prob", players=players)
    whole = ns.ModelGame(model, x, y, metric="log_prob", players=players, prefix_cache=False)
    return cached, whole


@pytest.mark.parametrize("make, players", [
    (ResidualCNN, ["block*"]),                          # residual: blocks after the stem
    (InceptionCNN, ["mixed.*", "reduce"]),              # branching: a concatenation
    (lambda: nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.ReLU(),
                           nn.Flatten(), nn.Linear(6 * 4 * 4, 10)), ["2"]),  # sequential
])
def test_cached_prefix_gives_the_same_values(make, players: list[str]) -> None:
    torch.manual_seed(1)
    model = make().eval()
    x, y = torch.randn(40, 1, 8, 8), torch.randint(0, 10, (40,))
    cached, whole = _games(model, x, y, players)
    assert cached.split is not None and whole.split is None
    masks = np.random.default_rng(0).random((25, cached.n_players)) < 0.6
    assert np.array_equal(cached(masks), whole(masks))


def test_cache_follows_edits_of_the_data_the_weights_and_the_players() -> None:
    torch.manual_seed(2)
    model = ResidualCNN().eval()
    x, y = torch.randn(30, 1, 8, 8), torch.randint(0, 10, (30,))
    cached, _ = _games(model, x, y, ["block2.*"])
    masks = np.random.default_rng(1).random((12, cached.n_players)) < 0.5
    before = cached(masks)
    cached.inputs.mul_(0.5)  # the evaluation data edited in place
    with torch.no_grad():  # a prefix weight edited in place, as load_state_dict does
        model.stem.weight.mul_(-1.0)
    after = cached(masks)
    assert not np.array_equal(before, after)
    # an uncached game on the edited model and data, with the reference means of the old one
    _, fresh = _games(model, cached.inputs.clone(), y, ["block2.*"])
    fresh.ablator.reference = cached.ablator.reference
    assert np.array_equal(after, fresh(masks))
    other, other_whole = _games(model, x, y, ["block1.*", "block2.*"])  # other players
    assert other.split is not None and other.split.cut != cached.split.cut
    m2 = np.random.default_rng(2).random((8, other.n_players)) < 0.5
    assert np.array_equal(other(m2), other_whole(m2))



class _Block(nn.Module):
    """A pre-norm transformer block in plain torch: attention heads, then an MLP."""

    def __init__(self, d: int = 16, heads: int = 4, hidden: int = 24) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.up, self.down = nn.Linear(d, hidden), nn.Linear(hidden, d)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        a = self.norm1(h)
        h = h + self.attn(a, a, a, need_weights=False)[0]
        return h + self.down(torch.relu(self.up(self.norm2(h))))


class _TokenTransformer(nn.Module):
    """Token ids (N, L) -> class scores: embedding, two blocks, mean over positions."""

    def __init__(self, library_blocks: bool = False, vocab: int = 30, d: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(1, 8, d) * 0.3)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d, 4, 24, dropout=0.0, batch_first=True)
            if library_blocks else _Block(d) for _ in range(2))
        self.head = nn.Linear(d, 5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids) + self.pos[:, : ids.shape[1]]
        for block in self.blocks:
            h = block(h)
        return self.head(h.mean(1))


@pytest.mark.parametrize("library_blocks, players", [
    (False, ["blocks.1.attn", "blocks.1.up"]),  # heads and MLP units of the 2nd block
    (True, ["blocks.1.self_attn", "blocks.1.linear1"]),  # nn.TransformerEncoderLayer
])
def test_cached_prefix_gives_the_same_values_on_a_transformer(
        library_blocks: bool, players: list[str]) -> None:
    torch.manual_seed(3)
    model = _TokenTransformer(library_blocks).eval()
    ids, y = torch.randint(0, 30, (24, 8)), torch.randint(0, 5, (24,))
    cached, whole = _games(model, ids, y, players)
    assert {ly.kind for ly in cached.players_set.layers} >= {"attention_heads"}
    assert cached.split is not None and whole.split is None
    # the embedding and the first block run once, in the prefix
    assert not any(name.startswith("blocks.0") for name, _ in
                   cached.split.suffix.named_modules())
    masks = np.random.default_rng(3).random((30, cached.n_players)) < 0.5
    masks[0] = True
    assert np.array_equal(cached(masks), whole(masks))
    assert len(np.unique(cached(masks))) > 3  # the masks change the values


def test_hugging_face_model_runs_whole_with_the_same_values() -> None:
    pytest.importorskip("transformers")
    from tiny_transformers import tiny_bert, token_batch

    model = tiny_bert(seed=4)
    batch = token_batch(n=6, seed=4)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    players = ["bert.encoder.layer.1.*"]
    for inputs in (batch, batch["input_ids"]):  # a mapping, and the ids alone as a tensor
        cached, whole = _games(model, inputs, y, players)
        assert cached.split is None  # not split by torch.fx: the whole model runs per mask
        masks = np.random.default_rng(4).random((16, cached.n_players)) < 0.5
        assert np.array_equal(cached(masks), whole(masks))
