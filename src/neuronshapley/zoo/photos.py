"""Real colour photos that ship with scikit-image and scikit-learn, as seeded crop sets.

:func:`bundled_photos` returns astronaut, coffee, chelsea and rocket (scikit-image) and
china and flower (scikit-learn); nothing is downloaded. A :class:`Crop` names one square
crop of one photo (offset, side, horizontal flip); :func:`random_crops` draws them from a
seed and :func:`crop_inputs` turns them into EfficientNet-Lite0 inputs. Two crop sets drawn
with ``exclude=`` share no crop, e.g. one set to value units on and one to test on.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from neuronshapley.errors import InputError

SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def bundled_photos() -> dict[str, np.ndarray]:
    """Name -> RGB uint8 photo (H, W, 3), in a fixed order (no download)."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    out: dict[str, np.ndarray] = {}
    for name in SKIMAGE_PHOTOS:
        try:
            out[name] = np.asarray(getattr(skimage.data, name)())[..., :3]
        except Exception:  # noqa: BLE001 - a photo that needs a download is skipped
            continue
    sk = load_sample_images()
    for fname, im in zip(sk.filenames, sk.images, strict=True):
        out[fname.rsplit("/", 1)[-1].split(".")[0]] = np.asarray(im)[..., :3]
    return out


@dataclass(frozen=True)
class Crop:
    """A square crop of side ``size`` at row ``y``, column ``x`` of photo ``photo``."""

    photo: str
    y: int
    x: int
    size: int
    flip: bool


def random_crops(n: int, seed: int, photos: dict[str, np.ndarray] | None = None,
                 full_first: bool = False, min_fraction: float = 0.5,
                 exclude: Collection[Crop] = ()) -> list[Crop]:
    """``n`` crops cycling through the photos: side a uniform ``min_fraction``..1 of the
    short side, uniform position, flipped with probability 1/2, all from ``seed``.

    ``full_first``: the first crop of each photo spans its whole short side (random
    offset, unflipped), as in the benchmarks' image batch. Crops in
    ``exclude`` and repeats are redrawn, so the result shares no crop with ``exclude``."""
    if n < 0 or not 0 < min_fraction <= 1:
        raise InputError(f"need n >= 0 and 0 < min_fraction <= 1, got {n}, {min_fraction}")
    ims = photos if photos is not None else bundled_photos()
    names = list(ims)
    rng = np.random.default_rng(seed)
    seen, out = set(exclude), []
    i = 0
    while len(out) < n:
        name = names[len(out) % len(names)]
        h, w = ims[name].shape[:2]
        first = full_first and i < len(names)
        side = int(min(h, w) * (1.0 if first else rng.uniform(min_fraction, 1.0)))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        flip = (not first) and bool(rng.random() < 0.5)
        crop = Crop(name, y, x, side, flip)
        i += 1
        if crop in seen:
            if i > 100 * (n + 1):
                raise InputError(f"cannot draw {n} distinct crops outside the {len(exclude)} "
                                 "excluded ones")
            continue
        seen.add(crop)
        out.append(crop)
    return out


def crop_inputs(crops: Sequence[Crop], photos: dict[str, np.ndarray] | None = None,
                size: int = 224) -> torch.Tensor:
    """The crops as EfficientNet-Lite0 inputs (n, 3, size, size), resized and in [-1, 1]."""
    from neuronshapley.zoo.efficientnet import preprocess

    ims = photos if photos is not None else bundled_photos()
    out = []
    for c in crops:
        crop = ims[c.photo][c.y : c.y + c.size, c.x : c.x + c.size]
        if c.flip:
            crop = crop[:, ::-1]
        t = torch.tensor(np.ascontiguousarray(crop)).permute(2, 0, 1).float()[None] / 255
        out.append(preprocess(t, size))
    return torch.cat(out) if out else torch.empty(0, 3, size, size)


__all__ = ["Crop", "bundled_photos", "crop_inputs", "random_crops"]
