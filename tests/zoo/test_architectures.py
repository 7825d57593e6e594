"""`neuronshapley run` on architectures it has never seen (residual, branches merged by
concatenation, 1-D conv on mnist1d, tabular MLP, transformer encoder), and attention heads as
players."""

from __future__ import annotations

import copy
import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import neuronshapley as ns
from neuronshapley.cli.app import build_app
from neuronshapley.network.players import HEADS
from neuronshapley.zoo.architectures import (
    ARCHITECTURES,
    Conv1dNet,
    TinyTransformer,
    fit,
    make_data,
)

torch.set_num_threads(1)
APP = build_app()


def _prepare(name: str, tmp: Path, epochs: int = 3, n: int = 400) -> tuple[Path, Path, float]:
    factory, data_name, _ = ARCHITECTURES[name]
    torch.manual_seed(0)
    data = make_data(data_name, n=n)
    model = factory()
    acc = fit(model, data, epochs=epochs)
    weights, npz = tmp / f"{name}.pt", tmp / f"{name}.npz"
    torch.save(model.state_dict(), weights)
    np.savez(npz, x=data.x_test[:80].numpy(), y=data.y_test[:80].numpy())
    return weights, npz, acc


def _run(name: str, tmp: Path, *extra: str) -> tuple[Path, list[dict[str, str]]]:
    weights, npz, _ = _prepare(name, tmp)
    factory = ARCHITECTURES[name][0]
    out = tmp / "out"
    result = CliRunner().invoke(APP, [
        "run", "--model", f"neuronshapley.zoo.architectures:{factory.__name__}",
        "--weights", str(weights), "--data", str(npz), "--out", str(out),
        "--max-evaluations", "120", "--no-progress", *extra,
    ])
    assert result.exit_code == 0, result.output
    with (out / "values.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return out, rows


def _layers(rows: list[dict[str, str]]) -> list[str]:
    return list(dict.fromkeys(r["player"].rpartition(":")[0] for r in rows))


def test_residual_cnn(tmp_path: Path) -> None:
    out, rows = _run("residual", tmp_path, "--no-report")
    assert _layers(rows) == ["stem", "block1.conv1", "block1.conv2", "block2.conv1",
                             "block2.conv2"]
    assert len(rows) == 40
    meta = json.loads((out / "metadata.json").read_text())
    assert 100 <= meta["evaluations"] < 400


def test_residual_cnn_players_inside_the_residual_block_only(tmp_path: Path) -> None:
    # The first hooked layer sits inside a skip connection: the batch is expanded up front.
    _, rows = _run("residual", tmp_path, "--players", "block2.*", "--no-report")
    assert _layers(rows) == ["block2.conv1", "block2.conv2"]


def test_inception_branches_merged_by_concat(tmp_path: Path) -> None:
    out, rows = _run("inception", tmp_path, "--report-units", "1", "--no-feature-vis")
    assert "mixed.b3.2" in _layers(rows) and "mixed.pool.1" in _layers(rows)
    assert (out / "report.html").is_file()
    assert (out / "figures" / "units" / "unit01_examples.png").is_file()


def test_conv1d_on_mnist1d(tmp_path: Path) -> None:
    data = make_data("mnist1d", n=300)
    assert data.x_train.shape[1:] == (1, 40)
    if importlib.util.find_spec("mnist1d") is not None:  # else a synthetic stand-in
        assert data.source.startswith("mnist1d.make_dataset")
    _, rows = _run("conv1d", tmp_path, "--no-report")
    assert _layers(rows) == ["features.0", "features.2", "features.4"]


def test_mlp_on_tabular_data(tmp_path: Path) -> None:
    out, rows = _run("mlp", tmp_path, "--report-units", "1", "--feature-vis")
    assert _layers(rows) == ["net.0", "net.3"]  # the logit layer is left out
    assert (out / "figures" / "units" / "unit01_featvis.png").is_file()


def test_transformer_heads_and_mlp_neurons(tmp_path: Path) -> None:
    _, rows = _run("transformer", tmp_path, "--players", "encoder.*", "--no-report")
    assert _layers(rows) == ["encoder.layers.0.self_attn", "encoder.layers.0.linear1",
                             "encoder.layers.1.self_attn", "encoder.layers.1.linear1"]
    assert len(rows) == 2 * (4 + 24)


# --------------------------------------------------------------------- attention heads
def test_discover_transformer_players() -> None:
    model = TinyTransformer()
    ps = ns.discover_players(model)
    kinds = {ly.name: (ly.kind, ly.n_units) for ly in ps.layers}
    assert kinds["encoder.layers.0.self_attn"] == (HEADS, 4)
    assert kinds["encoder.layers.1.linear1"] == ("Linear", 24)
    assert not any(n.endswith(("out_proj", "linear2")) for n in kinds)
    assert "head" not in kinds  # logit layer
    assert ps.ids[16] == "encoder.layers.0.self_attn:0"  # after embed's 16 units
    no_heads = ns.discover_players(model, attention_heads=False)
    assert HEADS not in {ly.kind for ly in no_heads.layers}
    named = ns.discover_players(model, layers=["encoder.layers.0.linear2"])
    assert named.ids[0] == "encoder.layers.0.linear2:0"


@pytest.mark.parametrize("replacement", ["mean", "channel", "zero"])
def test_head_masks_batched_equal_one_at_a_time(replacement: str) -> None:
    torch.manual_seed(0)
    model = TinyTransformer().eval()
    x = torch.randn(10, 8, 8)
    ab = ns.Ablator(model, ns.discover_players(model, "encoder.*"), replacement)
    ab.fit_reference(x)
    masks = torch.from_numpy(np.random.default_rng(1).random((5, ab.players.n_players)) > 0.4)
    masks[0] = True
    batched = ab.forward(x, masks)
    single = torch.cat([ab.forward(x, m[None]) for m in masks])
    assert torch.allclose(batched, single, atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(batched[0], model(x), atol=1e-5)


def test_removing_a_head_equals_editing_out_proj() -> None:
    torch.manual_seed(0)
    model = TinyTransformer().eval()
    x = torch.randn(12, 8, 8)
    players = ns.discover_players(model, "*.self_attn")
    ab = ns.Ablator(model, players, "channel").fit_reference(x)
    mask = torch.ones(1, players.n_players, dtype=torch.bool)
    mask[0, players.index("encoder.layers.1.self_attn:2")] = False
    ref = ab.reference["encoder.layers.1.self_attn"][0, 2]  # head 2's mean output (head_dim,)
    edited = copy.deepcopy(model)
    proj = edited.encoder.layers[1].self_attn.out_proj
    with torch.no_grad():
        cols = slice(2 * 4, 3 * 4)
        proj.bias += proj.weight[:, cols] @ ref
        proj.weight[:, cols] = 0
        assert torch.allclose(ab.forward(x, mask)[0], edited(x), atol=1e-5)
        assert not torch.allclose(model(x), edited(x), atol=1e-4)


def test_heads_of_a_sequence_first_attention() -> None:
    class SeqFirst(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2)  # batch_first=False: (L, B, E)
            self.head = nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = x.transpose(0, 1)
            h, _ = self.attn(h, h, h, need_weights=False)
            return self.head(h.transpose(0, 1).mean(1))

    torch.manual_seed(0)
    model = SeqFirst().eval()
    x = torch.randn(6, 5, 8)
    game = ns.ModelGame(model, x, torch.randint(0, 3, (6,)), metric="log_prob")
    assert game.players == ["attn:0", "attn:1"]
    masks = np.array([[1, 1], [0, 1], [1, 0], [0, 0]], dtype=bool)
    batched = game(masks)
    single = np.concatenate([game(m[None]) for m in masks])
    np.testing.assert_allclose(batched, single, atol=1e-6)
    assert len(set(np.round(batched, 6))) == 4


def test_conv1d_net_accepts_flat_signals() -> None:
    model = Conv1dNet().eval()
    with torch.no_grad():
        assert model(torch.randn(3, 40)).shape == (3, 10)
