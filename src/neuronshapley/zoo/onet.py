"""A real pretrained network: the MTCNN output network ("ONet") for face / non-face.

The weights are the state dict ``facenet_pytorch/data/onet.pt`` (1.6 MB) shipped inside the
``facenet-pytorch`` wheel. They are read from the installed package's files through
:mod:`importlib.metadata`, never by importing ``facenet_pytorch`` (its ``__init__`` imports
torchvision and requests). Install without dependencies::

    pip install --no-deps facenet-pytorch==2.6.0

The data are scikit-image's bundled ``skimage.data.lfw_subset()``: 100 faces then 100
non-faces, 25x25 grayscale in [0, 1], resized here to 48x48 and repeated to 3 channels.
Nothing is downloaded.

Architecture (module names match the state dict)::

    conv1 3->32 3x3, prelu1, pool1 max 3/2 ceil      48 -> 46 -> 23
    conv2 32->64 3x3, prelu2, pool2 max 3/2 ceil     23 -> 21 -> 10
    conv3 64->64 3x3, prelu3, pool3 max 2/2 ceil     10 ->  8 ->  4
    conv4 64->128 2x2, prelu4                         4 ->  3
    permute (N, C, H, W) -> (N, W, H, C), flatten    1152
    dense5 1152->256, prelu5
    dense6_1 256->2 (face classification), dense6_2 256->4 (box), dense6_3 256->10 (landmarks)

``ONet.forward`` returns the face-classification logits (N, 2) (index :data:`FACE_INDEX` is
"face"); :meth:`ONet.heads` returns all three heads.
"""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "FACE_INDEX",
    "INPUT_SIZE",
    "ONet",
    "FaceData",
    "OnetUnavailableError",
    "load_lfw_faces",
    "normalise",
    "onet_weights_path",
    "pretrained_onet",
]

#: Output index of ``dense6_1`` meaning "face" (checked on lfw_subset: see the tests).
FACE_INDEX = 1
#: Side of the square RGB input ONet expects.
INPUT_SIZE = 48
#: The conv layers (all their filters are players in the studies), in forward order.
CONV_LAYERS: tuple[str, ...] = ("conv1", "conv2", "conv3", "conv4")
_DIST = "facenet-pytorch"
_WEIGHTS_FILE = "facenet_pytorch/data/onet.pt"
#: Environment variable that points at an ``onet.pt`` file instead of the installed package.
WEIGHTS_ENV = "NEURONSHAPLEY_ONET_WEIGHTS"


class OnetUnavailableError(FileNotFoundError):
    """The ONet weights or the LFW subset cannot be found (an optional dependency is missing)."""


class ONet(nn.Module):
    """MTCNN's output network. Input (N, 3, 48, 48) normalised RGB (see :func:`normalise`)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 48, 48) -> the 256 ``prelu5`` features (N, 256)."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)  # the original's flatten order
        return self.prelu5(self.dense5(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 48, 48) -> face-classification logits (N, 2); softmax gives probabilities."""
        return self.dense6_1(self.features(x))

    def heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """All three outputs: ``prob`` (N, 2) softmax, ``box`` (N, 4), ``landmarks`` (N, 10)."""
        h = self.features(x)
        return {
            "prob": torch.softmax(self.dense6_1(h), dim=1),
            "box": self.dense6_2(h),
            "landmarks": self.dense6_3(h),
        }


def onet_weights_path(path: str | os.PathLike[str] | None = None) -> Path:
    """Where ``onet.pt`` is: ``path``, else ``$NEURONSHAPLEY_ONET_WEIGHTS``, else the file
    inside the installed ``facenet-pytorch`` distribution (found without importing it)."""
    if path is None:
        path = os.environ.get(WEIGHTS_ENV) or None
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise OnetUnavailableError(f"ONet weights file {p} does not exist")
        return p
    try:
        dist = importlib.metadata.distribution(_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise OnetUnavailableError(
            "the ONet weights ship inside the facenet-pytorch wheel, which is not installed: "
            "run `pip install --no-deps facenet-pytorch==2.6.0` (or set "
            f"{WEIGHTS_ENV} to an onet.pt file)"
        ) from None
    for f in dist.files or ():
        if str(f).replace("\\", "/") == _WEIGHTS_FILE:
            p = Path(str(dist.locate_file(f)))
            if p.is_file():
                return p
    raise OnetUnavailableError(f"{_WEIGHTS_FILE} is missing from the installed facenet-pytorch")


def pretrained_onet(path: str | os.PathLike[str] | None = None) -> ONet:
    """ONet with the facenet-pytorch weights, in eval mode (``torch.load(weights_only=True)``)."""
    state = torch.load(onet_weights_path(path), map_location="cpu", weights_only=True)
    model = ONet()
    model.load_state_dict(state, strict=True)
    return model.eval()


def normalise(images: torch.Tensor) -> torch.Tensor:
    """Pixel values in [0, 255] -> ONet's input scale, ``(x - 127.5) * 0.0078125``."""
    return (images - 127.5) * 0.0078125


@dataclass(frozen=True)
class FaceData:
    """Face / non-face images for ONet: ``x`` (N, 3, 48, 48) normalised, ``y`` (N,) int64
    with 1 = face, 0 = non-face."""

    x: torch.Tensor
    y: torch.Tensor

    def split(self) -> tuple[FaceData, FaceData]:
        """Two disjoint halves with the same class balance: even and odd positions."""
        idx = torch.arange(len(self.y))
        even, odd = idx[idx % 2 == 0], idx[idx % 2 == 1]
        return FaceData(self.x[even], self.y[even]), FaceData(self.x[odd], self.y[odd])


def load_lfw_faces(size: int = INPUT_SIZE) -> FaceData:
    """scikit-image's ``lfw_subset`` (100 faces, 100 non-faces) as ONet inputs.

    Each 25x25 grayscale image in [0, 1] is scaled to [0, 255], resized to ``size`` x ``size``
    with bilinear interpolation (``torch.nn.functional.interpolate``), repeated to 3 channels
    and normalised with :func:`normalise`. Labels: 1 for the first 100 (faces), 0 after.
    """
    try:
        from skimage import data as skdata
    except ImportError:
        raise OnetUnavailableError(
            "the LFW subset ships with scikit-image: run `pip install scikit-image`"
        ) from None
    raw = torch.as_tensor(skdata.lfw_subset(), dtype=torch.float32)  # (200, 25, 25)
    if raw.ndim != 3 or len(raw) != 200:
        raise OnetUnavailableError(f"unexpected lfw_subset shape {tuple(raw.shape)}")
    x = F.interpolate(raw[:, None] * 255.0, size=(size, size), mode="bilinear",
                      align_corners=False)
    x = normalise(x.clamp(0, 255)).repeat(1, 3, 1, 1).contiguous()
    y = torch.cat([torch.ones(100, dtype=torch.int64), torch.zeros(100, dtype=torch.int64)])
    return FaceData(x, y)
