"""Loading evaluation data: .npz, .pt, image folders, and the errors for bad data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from neuronshapley.pipeline.data import DataError, load_data


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def test_npz_with_default_and_custom_keys(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float64)
    y = np.arange(10) % 3
    d = load_data(_npz(tmp_path / "a.npz", x=x, y=y))
    assert d.x.dtype == torch.float32 and d.y.dtype == torch.int64 and len(d) == 10
    d2 = load_data(_npz(tmp_path / "b.npz", inputs=x, labels=y.astype(float),
                        class_names=np.array(["a", "b", "c"])), x_key="inputs", y_key="labels")
    assert torch.equal(d2.y, d.y) and d2.class_names == ["a", "b", "c"]


def test_missing_or_bad_labels_name_the_fix(tmp_path: Path) -> None:
    x = np.zeros((4, 2), np.float32)
    with pytest.raises(DataError, match=r"no labels 'y' \(it has: x\).*--y-key"):
        load_data(_npz(tmp_path / "a.npz", x=x))
    with pytest.raises(DataError, match="no array 'x'.*--x-key"):
        load_data(_npz(tmp_path / "b.npz", inputs=x, y=np.zeros(4)))
    with pytest.raises(DataError, match="non-integer"):
        load_data(_npz(tmp_path / "c.npz", x=x, y=np.array([0.5, 1, 2, 0])))
    with pytest.raises(DataError, match="negative labels"):
        load_data(_npz(tmp_path / "d.npz", x=x, y=np.array([-1, 1, 2, 0])))
    with pytest.raises(DataError, match="4 inputs but 3 labels"):
        load_data(_npz(tmp_path / "e.npz", x=x, y=np.array([0, 1, 2])))
    with pytest.raises(DataError, match=r"shape \(4, 3\).*argmax"):
        load_data(_npz(tmp_path / "f.npz", x=x, y=np.eye(4, 3)))
    with pytest.raises(DataError, match="not found"):
        load_data(tmp_path / "missing.npz")
    (tmp_path / "g.csv").write_text("1,2\n")
    with pytest.raises(DataError, match="unknown type"):
        load_data(tmp_path / "g.csv")


def test_pt_dict_and_tuple(tmp_path: Path) -> None:
    x, y = torch.randn(6, 1, 4, 4), torch.tensor([0, 1, 0, 1, 1, 0])
    torch.save({"x": x, "y": y}, tmp_path / "d.pt")
    torch.save((x, y), tmp_path / "t.pt")
    for name in ("d.pt", "t.pt"):
        d = load_data(tmp_path / name)
        assert torch.equal(d.x, x) and torch.equal(d.y, y)


def test_uint8_scaled_tokens_kept_and_subset(tmp_path: Path) -> None:
    img = np.full((8, 1, 2, 2), 255, np.uint8)
    d = load_data(_npz(tmp_path / "u.npz", x=img, y=np.zeros(8, int)), max_examples=3)
    assert d.x.max() == 1.0 and len(d) == 3
    assert any("random subset" in n for n in d.notes)
    tokens = load_data(_npz(tmp_path / "t.npz", x=np.arange(12).reshape(4, 3), y=np.zeros(4)))
    assert tokens.x.dtype == torch.int64


def _image_folder(root: Path, sizes: dict[str, tuple[int, int]], mode: str = "L") -> Path:
    rng = np.random.default_rng(0)
    for cls, size in sizes.items():
        (root / cls).mkdir(parents=True)
        for i in range(3):
            shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(
                root / cls / f"{i}.png")
    return root


def test_image_folder_gray_rgb_resize_and_normalize(tmp_path: Path) -> None:
    d = load_data(_image_folder(tmp_path / "g", {"cat": (6, 5), "dog": (6, 5)}))
    assert d.x.shape == (6, 1, 5, 6) and d.class_names == ["cat", "dog"]
    assert d.y.tolist() == [0, 0, 0, 1, 1, 1] and 0 <= float(d.x.min()) <= float(d.x.max()) <= 1
    rgb = load_data(_image_folder(tmp_path / "c", {"a": (4, 4), "b": (4, 4)}, "RGB"),
                    image_size=8, normalize="dataset")
    assert rgb.x.shape == (6, 3, 8, 8)
    assert torch.allclose(rgb.x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert rgb.normalization is not None and len(rgb.normalization[0]) == 3
    gray = load_data(tmp_path / "c", color="gray", normalize=([0.5], [0.25]))
    assert gray.x.shape == (6, 1, 4, 4) and gray.normalization == ([0.5], [0.25])


def test_image_folder_errors(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "m", {"a": (4, 4), "b": (6, 6)})
    with pytest.raises(DataError, match="differ in size.*--image-size"):
        load_data(root)
    assert load_data(root, image_size=(5, 4)).x.shape[-2:] == (5, 4)
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "x.png").write_bytes(b"")
    with pytest.raises(DataError, match="one sub-folder per class"):
        load_data(tmp_path / "flat")
    (tmp_path / "bad" / "a").mkdir(parents=True)
    (tmp_path / "bad" / "a" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read image"):
        load_data(tmp_path / "bad")
