"""EfficientNet-Lite0: weights load, 21,008 conv channels, sensible ImageNet predictions."""

from __future__ import annotations

import numpy as np
import torch

from neuronshapley.network.players import discover_players
from neuronshapley.zoo.efficientnet import (
    N_CHANNELS,
    conv_channels,
    preprocess,
    pretrained_efficientnet_lite0,
)

torch.set_num_threads(1)


def _square(im: np.ndarray) -> torch.Tensor:
    h, w = im.shape[:2]
    c = min(h, w)
    im = im[(h - c) // 2 : (h - c) // 2 + c, (w - c) // 2 : (w - c) // 2 + c, :3]
    return torch.tensor(np.ascontiguousarray(im)).permute(2, 0, 1).float()[None] / 255


def test_loads_counts_and_predicts_photos():
    import skimage.data

    model = pretrained_efficientnet_lite0()
    assert not model.training
    assert conv_channels(model) == N_CHANNELS == 21008
    assert discover_players(model).n_players == 21008
    x = torch.cat([preprocess(_square(skimage.data.chelsea())),
                   preprocess(_square(skimage.data.coffee()))])
    with torch.inference_mode():
        probs = model(x).softmax(1)
    top = probs.argmax(1).tolist()
    assert 281 <= top[0] <= 285  # a domestic cat (tabby .. Egyptian cat)
    assert top[1] in (967, 968, 504)  # espresso / cup / coffee mug
    assert probs[1, top[1]] > 0.5
