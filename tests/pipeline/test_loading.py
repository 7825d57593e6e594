"""Loading models: factory + state dict, torch.export programs, pickles, TorchScript."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_cnn
from torch import nn

import neuronshapley as ns
from neuronshapley.pipeline.loading import (
    ModelLoadError,
    load_model,
    load_state_dict,
    set_exported_eval,
)

torch.set_num_threads(1)
FACTORY = "conftest:tiny_cnn"


class BNNet(nn.Module):
    """Conv, batch-norm, dropout, flatten, two linears: 3 + 5 players."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3),
                                      nn.ReLU(), nn.Dropout(0.5))
        self.fc = nn.Linear(3 * 6 * 6, 5)
        self.out = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return self.out(torch.relu(self.fc(h.reshape(h.size(0), -1))))


def _export(model: nn.Module, path: Path, dynamic: bool = True) -> Path:
    x = torch.randn(4, 1, 6, 6)
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    torch.export.save(torch.export.export(model, (x,), dynamic_shapes=shapes), path)
    return path


def test_factory_and_state_dict(tmp_path: Path) -> None:
    trained = tiny_cnn(seed=3)
    torch.save({"state_dict": trained.state_dict()}, tmp_path / "ckpt.pt")
    loaded = load_model(FACTORY, tmp_path / "ckpt.pt")
    assert loaded.kind == "factory"
    for a, b in zip(loaded.module.parameters(), trained.parameters(), strict=True):
        assert torch.equal(a, b)


def test_factory_from_a_python_file(tmp_path: Path) -> None:
    (tmp_path / "net.py").write_text(
        "from torch import nn\n"
        "def build(width=4):\n"
        "    return nn.Sequential(nn.Linear(3, width), nn.ReLU(), nn.Linear(width, 2))\n"
    )
    loaded = load_model(f"{tmp_path / 'net.py'}:build", factory_kwargs={"width": 7})
    assert loaded.module[0].out_features == 7


def test_factory_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="cannot import 'no_such_module'"):
        load_model("no_such_module:Net")
    with pytest.raises(ModelLoadError, match="has no attribute 'nope'"):
        load_model("conftest:nope")
    torch.save(nn.Linear(2, 2).state_dict(), tmp_path / "other.pt")
    with pytest.raises(ModelLoadError, match="do not fit the model.*missing 0.weight"):
        load_model(FACTORY, tmp_path / "other.pt")
    with pytest.raises(ModelLoadError, match="weights file .* not found"):
        load_model(FACTORY, tmp_path / "missing.pt")


def test_missing_and_non_model_files(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(tmp_path / "nothing.pt2")
    (tmp_path / "junk.pt").write_bytes(b"not a model at all")
    with pytest.raises(ModelLoadError, match="not a model file torch can read"):
        load_model(tmp_path / "junk.pt")
    torch.save(tiny_cnn().state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ModelLoadError, match="holds a state dict.*--model package.module"):
        load_model(tmp_path / "sd.pt")


def test_pickled_module_needs_trust(tmp_path: Path) -> None:
    torch.save(tiny_cnn(), tmp_path / "whole.pt")
    with pytest.raises(ModelLoadError, match="--trust-pickle"):
        load_model(tmp_path / "whole.pt")
    with pytest.raises(ModelLoadError, match="not a plain state dict"):
        load_model(FACTORY, tmp_path / "whole.pt")
    loaded = load_model(tmp_path / "whole.pt", trust_pickle=True)
    assert loaded.kind == "pickle" and isinstance(loaded.module, nn.Sequential)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_says_how_to_export(tmp_path: Path) -> None:
    scripted = torch.jit.trace(tiny_cnn(seed=5), torch.randn(2, 1, 6, 6))
    scripted.save(str(tmp_path / "ts.pt"))
    with pytest.raises(ModelLoadError, match=r"TorchScript.*torch\.export\.export"):
        load_model(tmp_path / "ts.pt")
    with pytest.raises(ModelLoadError, match="--trust-pickle"):
        load_state_dict(tmp_path / "ts.pt")
    loaded = load_model(FACTORY, tmp_path / "ts.pt", trust_pickle=True)  # weights from it
    assert torch.equal(loaded.module[0].weight, tiny_cnn(seed=5)[0].weight)


def test_exported_program_matches_the_eager_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = BNNet().eval()
    loaded = load_model(_export(model, tmp_path / "net.pt2"))
    assert loaded.kind == "exported" and loaded.input_shape == ("batch", 1, 6, 6)
    assert not loaded.module.training and not loaded.training_ops
    x = torch.randn(20, 1, 6, 6)
    y = torch.randint(0, 3, (20,))
    exported = ns.ModelGame(loaded.module, x, y, metric="log_prob")
    eager = ns.ModelGame(model, x, y, metric="log_prob", channels_last=False)
    assert exported.players == eager.players == [f"features.0:{i}" for i in range(3)] + [
        f"fc:{i}" for i in range(5)]
    masks = np.random.default_rng(0).random((9, 8)) > 0.5
    np.testing.assert_allclose(exported(masks), eager(masks), atol=1e-5)
    assert set(loaded.module.state_dict()) == set(model.state_dict())


def test_exported_program_fixed_batch_and_training_mode(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="fixed batch size of 4.*Dim"):
        load_model(_export(BNNet().eval(), tmp_path / "fixed.pt2", dynamic=False))
    loaded = load_model(_export(BNNet().train(), tmp_path / "train.pt2"))
    assert sorted(loaded.training_ops) == ["batch_norm", "dropout"]
    assert set_exported_eval(loaded.module) == 2
    x = torch.randn(5, 1, 6, 6)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), loaded.module(x))  # no dropout any more
