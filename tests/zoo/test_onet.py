"""MTCNN ONet with the facenet-pytorch wheel's weights, on scikit-image's LFW subset."""

from __future__ import annotations

import importlib.metadata
import sys

import numpy as np
import pytest
import torch

from neuronshapley import ModelGame
from neuronshapley.zoo import onet as zo

torch.set_num_threads(1)

pytest.importorskip("skimage", reason="scikit-image ships the LFW subset")
try:
    importlib.metadata.distribution("facenet-pytorch")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - depends on the install
    pytest.skip("facenet-pytorch (weights only, --no-deps) is not installed",
                allow_module_level=True)


@pytest.fixture(scope="module")
def model() -> zo.ONet:
    return zo.pretrained_onet()


@pytest.fixture(scope="module")
def faces() -> zo.FaceData:
    return zo.load_lfw_faces()


def test_weights_load_strictly_without_importing_facenet(model: zo.ONet) -> None:
    state = torch.load(zo.onet_weights_path(), map_location="cpu", weights_only=True)
    assert set(state) == set(model.state_dict())
    for name, t in model.state_dict().items():
        assert t.shape == state[name].shape, name
    assert "facenet_pytorch" not in sys.modules
    assert not model.training


def test_data_shapes_labels_and_split(faces: zo.FaceData) -> None:
    assert faces.x.shape == (200, 3, zo.INPUT_SIZE, zo.INPUT_SIZE)
    assert faces.y.tolist() == [1] * 100 + [0] * 100
    assert float(faces.x.min()) >= -1.0 and float(faces.x.max()) <= 1.0
    torch.testing.assert_close(faces.x[:, 0], faces.x[:, 2])  # grayscale repeated
    value, held = faces.split()
    assert len(value.y) == len(held.y) == 100
    assert int(value.y.sum()) == int(held.y.sum()) == 50


def test_face_index_and_accuracy(model: zo.ONet, faces: zo.FaceData) -> None:
    with torch.no_grad():
        logits = model(faces.x)
        heads = model.heads(faces.x[:5])
    assert logits.shape == (200, 2)
    prob_face = logits.softmax(1)[:, zo.FACE_INDEX]
    assert float((logits.argmax(1) == faces.y).float().mean()) >= 0.95
    assert float(prob_face[:100].mean()) > 0.9 > 0.1 > float(prob_face[100:].mean())
    assert heads["prob"].shape == (5, 2) and heads["box"].shape == (5, 4)
    assert heads["landmarks"].shape == (5, 10)
    # the orientation matters: transposed images are mostly misclassified
    with torch.no_grad():
        transposed = model(faces.x.transpose(2, 3))
    assert float((transposed.argmax(1) == faces.y).float().mean()) < 0.8


def test_onet_game_players_and_headroom(model: zo.ONet, faces: zo.FaceData) -> None:
    value, _ = faces.split()
    game = ModelGame(model, value.x[::4], value.y[::4], metric="log_prob",
                     players=list(zo.CONV_LAYERS))
    assert game.n_players == 32 + 64 + 64 + 128
    v = game(np.stack([np.ones(game.n_players, bool), np.zeros(game.n_players, bool)]))
    assert v[0] > -0.1 and v[1] < v[0] - 0.5  # log_prob has headroom where accuracy has none
    dense = ModelGame(model, value.x[:4], value.y[:4], players=[*zo.CONV_LAYERS, "dense5"])
    assert dense.n_players == 288 + 256


def test_weights_path_errors(tmp_path, monkeypatch) -> None:
    with pytest.raises(zo.OnetUnavailableError, match="does not exist"):
        zo.onet_weights_path(tmp_path / "missing.pt")
    monkeypatch.setenv(zo.WEIGHTS_ENV, str(tmp_path / "nope.pt"))
    with pytest.raises(FileNotFoundError):
        zo.pretrained_onet()
