"""Load evaluation data for ``neuronshapley run``: ``.npz`` / ``.pt`` arrays or an image folder.

Sources (:func:`load_data`):

- ``data.npz``: arrays ``x`` (inputs, (N, ...)) and ``y`` (integer labels, (N,)); the names
  are options (``x_key``, ``y_key``); read with ``allow_pickle=False``. An optional array
  ``class_names`` names the classes.
- ``data.pt``: ``torch.save`` of a dict ``{"x": ..., "y": ...}`` (same key options) or of a
  tuple ``(x, y)``, read with ``torch.load(weights_only=True)``.
- a folder with one sub-folder per class (``root/cat/001.png``, ``root/dog/xyz.jpg``), read
  with Pillow; classes are the sub-folder names in sorted order (label = position). Images
  become float tensors (N, C, H, W) in [0, 1]; ``image_size`` resizes them (needed when sizes
  differ), ``color`` picks ``"rgb"``, ``"gray"`` or ``"auto"`` (gray when every image is), and
  ``normalize`` subtracts a mean and divides by a std per channel (``"dataset"``: the data's
  own statistics, or explicit ``(mean, std)`` lists).

- ``data.csv`` / ``data.jsonl`` (one JSON object per line) of texts, for a Hugging Face model
  (:func:`load_text_data`): ``text_column`` and ``label_column`` name the fields; texts are
  tokenized with the model's own tokenizer and padded to the longest one, so ``x`` is a dict
  ``{"input_ids", "attention_mask", ("token_type_ids")}`` of (N, L) tensors.

``uint8`` inputs from arrays are scaled to float in [0, 1]; other integer inputs (token ids)
stay integers. Labels must be integers (floats with whole values are accepted). Every problem
raises :class:`DataError` (a ``ValueError``) that names the problem and the fix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from neuronshapley.errors import DataError
from neuronshapley.network import inputs as batch

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm",
                    ".pgm")


@dataclass
class Dataset:
    """Inputs ``x`` (a tensor (N, ...), or for texts a dict of (N, L) token tensors), labels
    ``y`` (N,) int64, and where they came from."""

    x: Any
    y: torch.Tensor
    source: str
    class_names: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    #: per-channel (mean, std) subtracted / divided, to undo for display; None if none.
    normalization: tuple[list[float], list[float]] | None = None

    def __len__(self) -> int:
        return batch.n_rows(self.x)

    def subset(self, idx: torch.Tensor | np.ndarray) -> Dataset:
        """The examples at ``idx``."""
        i = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        return Dataset(batch.take(self.x, i), self.y[i], self.source, self.class_names,
                       list(self.notes), self.normalization)


def load_data(
    path: str | os.PathLike[str],
    x_key: str = "x",
    y_key: str = "y",
    image_size: int | Sequence[int] | None = None,
    color: str = "auto",
    normalize: str | tuple[Sequence[float], Sequence[float]] | None = None,
    max_examples: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Load inputs and labels from ``path`` (see the module docstring).

    Args:
        path: ``.npz`` / ``.pt`` file or image folder.
        x_key, y_key: array names of the inputs and labels in a file.
        image_size: resize images to ``size`` (square) or ``(height, width)``.
        color: ``"auto"``, ``"rgb"`` or ``"gray"`` (image folders).
        normalize: None, ``"dataset"`` or ``(mean, std)`` per channel (images and arrays).
        max_examples: keep a random subset of this many examples (seeded by ``seed``).
    """
    p = Path(path)
    if not p.exists():
        raise DataError(
            f"data {str(path)!r} not found: give a .npz file (arrays {x_key!r}, {y_key!r}), "
            "a .pt file (dict or (x, y) tuple) or a folder with one sub-folder per class"
        )
    if p.is_dir():
        data = _load_image_folder(p, image_size, color)
    elif p.suffix == ".npz":
        data = _load_npz(p, x_key, y_key)
    elif p.suffix in (".pt", ".pth"):
        data = _load_pt(p, x_key, y_key)
    else:
        raise DataError(
            f"data {p} has an unknown type {p.suffix!r}: use .npz (numpy.savez), .pt "
            "(torch.save of {'x': ..., 'y': ...}) or an image folder"
        )
    if image_size is not None and not p.is_dir():
        if data.x.ndim != 4:
            raise DataError(f"image_size applies to image inputs (N, C, H, W); got "
                            f"{tuple(data.x.shape)}")
        data.x = resize(data.x, image_size)
    if normalize is not None:
        data = normalized(data, normalize)
    if max_examples is not None and len(data) > max_examples:
        if max_examples < 1:
            raise DataError(f"max_examples must be positive, got {max_examples}")
        idx = np.sort(np.random.default_rng(seed).choice(len(data), max_examples, replace=False))
        data = data.subset(idx)
        data.notes.append(f"random subset of {max_examples} examples (seed {seed})")
    return data


# ------------------------------------------------------------------------------ texts
TEXT_SUFFIXES = (".csv", ".jsonl", ".ndjson")


def is_text_file(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in TEXT_SUFFIXES


def _read_records(p: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of a CSV or JSONL file as dicts, and the column names."""
    import csv
    import json

    try:
        if p.suffix.lower() == ".csv":
            with p.open(newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                rows = list(reader)
                return rows, list(reader.fieldnames or [])
        rows = []
        with p.open(encoding="utf-8") as f:
            for i, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise DataError(f"{p} line {i} is not a JSON object")
                rows.append(obj)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{p} cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{p} is not JSON Lines (one object per line): {exc}") from None
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return rows, columns


def _int_label(value: Any, row: int, column: str) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is not None and number.is_integer():
            return int(number)
    raise DataError(
        f"label {value!r} in row {row} of column {column!r} is not an integer: labels must be "
        "class ids 0..C-1 (map names such as 'positive' to numbers first)"
    )


def load_text_data(
    path: str | os.PathLike[str],
    tokenizer: Any,
    text_column: str = "text",
    label_column: str = "label",
    max_length: int | None = None,
    model_max_length: int | None = None,
    max_examples: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Texts and integer labels from a CSV or JSONL file, tokenized with ``tokenizer``.

    Args:
        path: ``.csv`` (a header row) or ``.jsonl`` (one object per line).
        tokenizer: the model's own tokenizer (called as ``tokenizer(texts, padding=True)``).
        text_column, label_column: the fields holding each text and its class id.
        max_length: truncate texts to this many tokens; at most ``model_max_length``.
        model_max_length: the longest sequence the model takes; without ``max_length`` a
            longer text is an error.
        max_examples: keep a random subset of this many rows (seeded by ``seed``).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"text data {str(path)!r} not found: give a .csv or .jsonl file")
    if tokenizer is None:
        raise DataError(
            "text data needs the model's tokenizer, and the model folder has none: save it "
            "beside the model with tokenizer.save_pretrained(folder)"
        )
    rows, columns = _read_records(p)
    for what, col in (("text", text_column), ("label", label_column)):
        if col not in columns:
            raise DataError(
                f"{p} has no {what} column {col!r}; its columns: {', '.join(columns) or 'none'}"
                f" (choose with --{what}-column)"
            )
    if not rows:
        raise DataError(f"{p} has no rows")
    notes: list[str] = []
    if max_examples is not None and len(rows) > max_examples:
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), max_examples,
                                                         replace=False))
        rows = [rows[i] for i in keep]
        notes.append(f"random subset of {max_examples} examples (seed {seed})")
    texts = []
    for i, r in enumerate(rows, start=1):
        value = r.get(text_column)
        if value is None:
            raise DataError(f"row {i} of {p} has no {text_column!r} value")
        texts.append(str(value))
    y = torch.tensor([_int_label(r.get(label_column), i, label_column)
                      for i, r in enumerate(rows, start=1)], dtype=torch.long)
    if int(y.min()) < 0:
        raise DataError(f"{p} holds negative labels ({int(y.min())}): labels must be class "
                        "ids 0..C-1")
    if max_length is not None and max_length < 1:
        raise DataError(f"max_length must be positive, got {max_length}")
    if max_length is not None and model_max_length is not None and max_length > \
            model_max_length:
        raise DataError(f"max_length {max_length} is longer than the model allows "
                        f"({model_max_length} tokens): use --max-length {model_max_length} "
                        "or less")
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    limit = max_length or model_max_length
    if max_length is None and limit is not None and max(lengths) > limit:
        longest = int(np.argmax(lengths))
        raise DataError(
            f"row {longest + 1} of {p} is {lengths[longest]} tokens long, longer than the "
            f"model allows ({limit}): pass --max-length {limit} (or less) to truncate"
        )
    enc = tokenizer(texts, padding=True, truncation=max_length is not None,
                    max_length=max_length, return_tensors="pt")
    x = {k: torch.as_tensor(v) for k, v in enc.items()
         if k in ("input_ids", "attention_mask", "token_type_ids")}
    if max_length is not None and max(lengths) > max_length:
        notes.append(f"{sum(n > max_length for n in lengths)} texts truncated to "
                     f"{max_length} tokens")
    return Dataset(x, y, str(p), None, notes)


# ----------------------------------------------------------------------------- arrays
def _load_npz(p: Path, x_key: str, y_key: str) -> Dataset:
    try:
        with np.load(p, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        raise DataError(
            f"{p} holds Python objects (pickled arrays), which are not read: save plain "
            f"numeric arrays with numpy.savez ({exc})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - numpy raises several kinds
        raise DataError(f"{p} is not a readable .npz file: {exc}") from None
    names = arrays.get("class_names")
    return _from_arrays(arrays, x_key, y_key, str(p),
                        [str(s) for s in names.tolist()] if names is not None else None)


def _load_pt(p: Path, x_key: str, y_key: str) -> Dataset:
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise DataError(
            f"{p} cannot be read with torch.load(weights_only=True): save plain tensors, e.g. "
            f"torch.save({{'x': x, 'y': y}}, path) ({str(exc).splitlines()[0]})"
        ) from None
    if isinstance(obj, (tuple, list)):
        if len(obj) != 2:
            raise DataError(f"{p} holds a sequence of {len(obj)} items; expected (x, y)")
        obj = {x_key: obj[0], y_key: obj[1]}
    if not isinstance(obj, Mapping):
        raise DataError(f"{p} holds a {type(obj).__name__}; expected a dict {{'x', 'y'}} or "
                        "a tuple (x, y)")
    names = obj.get("class_names")
    return _from_arrays(dict(obj), x_key, y_key, str(p),
                        [str(s) for s in names] if isinstance(names, (list, tuple)) else None)


def _from_arrays(
    arrays: Mapping[str, Any], x_key: str, y_key: str, source: str,
    class_names: list[str] | None,
) -> Dataset:
    keys = ", ".join(sorted(map(str, arrays))) or "none"
    if x_key not in arrays:
        raise DataError(f"{source} has no array {x_key!r} (it has: {keys}); name the inputs "
                        "with --x-key")
    if y_key not in arrays:
        raise DataError(f"{source} has no labels {y_key!r} (it has: {keys}); name the labels "
                        "with --y-key (integer class ids, one per example)")
    notes: list[str] = []
    x = _as_tensor(arrays[x_key], f"{source}[{x_key!r}]")
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
        notes.append("uint8 inputs scaled to [0, 1]")
    elif x.is_floating_point():
        x = x.float()
    elif x.dtype != torch.bool:
        x = x.long()
    y = labels(arrays[y_key], f"{source}[{y_key!r}]")
    if x.ndim == 0 or len(x) != len(y):
        raise DataError(
            f"{source}: {len(x) if x.ndim else 0} inputs but {len(y)} labels: "
            "they must have the same first dimension"
        )
    if len(x) == 0:
        raise DataError(f"{source} holds no examples")
    return Dataset(x, y, source, class_names, notes)


def _as_tensor(a: Any, what: str) -> torch.Tensor:
    try:
        t = torch.as_tensor(np.asarray(a)) if not isinstance(a, torch.Tensor) else a
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} is not a numeric array: {exc}") from None
    if t.dtype.is_complex:
        raise DataError(f"{what} is complex; give real numbers")
    return t.detach().cpu()


def labels(a: Any, what: str = "labels") -> torch.Tensor:
    """Integer labels (N,) int64 from ``a``, or a :class:`DataError`."""
    y = _as_tensor(a, what)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(
            f"{what} has shape {tuple(y.shape)}; expected one integer class id per example "
            "(N,) (for one-hot labels save y.argmax(1))"
        )
    if y.is_floating_point():
        if not bool(torch.isfinite(y).all()) or not bool((y == y.round()).all()):
            raise DataError(f"{what} holds non-integer values: labels must be class ids 0..C-1")
        y = y.round()
    if y.dtype == torch.bool:
        y = y.long()
    y = y.long()
    if len(y) and int(y.min()) < 0:
        raise DataError(f"{what} holds negative labels ({int(y.min())}): labels must be class "
                        "ids 0..C-1")
    return y


# ----------------------------------------------------------------------------- images
def _load_image_folder(
    root: Path, image_size: int | Sequence[int] | None, color: str
) -> Dataset:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        raise DataError("reading an image folder needs Pillow: pip install pillow") from None
    if color not in ("auto", "rgb", "gray"):
        raise DataError(f"color must be 'auto', 'rgb' or 'gray', got {color!r}")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(
            f"{root} has no sub-folders: an image folder needs one sub-folder per class "
            "(root/<class>/<image>.png)"
        )
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        found = sorted(f for f in (root / name).rglob("*")
                       if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        files.extend((f, label) for f in found)
    if not files:
        raise DataError(f"{root} has class folders ({', '.join(classes[:5])}) but no images "
                        f"({', '.join(IMAGE_EXTENSIONS)})")
    images = []
    for f, _ in files:
        try:
            with Image.open(f) as im:
                im.load()
                images.append(im.copy())
        except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds
            raise DataError(f"cannot read image {f}: {exc}") from None
    gray = color == "gray" or (color == "auto" and all(im.mode in ("L", "1", "I;16", "I", "F")
                                                       for im in images))
    mode = "L" if gray else "RGB"
    tensors = []
    size = _size(image_size)
    for (f, _), im in zip(files, images, strict=True):
        arr = np.asarray(im.convert(mode), dtype=np.float32) / 255.0
        t = torch.from_numpy(arr.copy())
        t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
        if size is not None and tuple(t.shape[1:]) != size:
            t = resize(t[None], size)[0]
        if tensors and t.shape != tensors[0].shape:
            raise DataError(
                f"images differ in size ({tuple(tensors[0].shape[1:])} and "
                f"{tuple(t.shape[1:])} for {f.name}): pass --image-size to resize them"
            )
        tensors.append(t)
    x = torch.stack(tensors)
    y = torch.tensor([label for _, label in files], dtype=torch.long)
    return Dataset(x, y, str(root), classes,
                   [f"{len(files)} images in {len(classes)} classes, {mode}"])


def _size(image_size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if isinstance(image_size, int):
        return (image_size, image_size)
    size = tuple(int(s) for s in image_size)
    if len(size) == 1:
        return (size[0], size[0])
    if len(size) != 2 or min(size) < 1:
        raise DataError(f"image_size must be N or (height, width), got {image_size!r}")
    return (size[0], size[1])


def resize(x: torch.Tensor, image_size: int | Sequence[int]) -> torch.Tensor:
    """Resize images (N, C, H, W) to ``image_size`` with antialiased bilinear interpolation."""
    size = _size(image_size)
    assert size is not None
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False,
                         antialias=True)


def normalized(
    data: Dataset, normalize: str | tuple[Sequence[float], Sequence[float]]
) -> Dataset:
    """``data`` with inputs standardised per channel (axis 1; the last axis for 2-D inputs)."""
    x = data.x
    if not x.is_floating_point():
        raise DataError("normalize applies to float inputs, not integer ones (e.g. token ids)")
    axis = 1 if x.ndim >= 3 else x.ndim - 1
    dims = [d for d in range(x.ndim) if d != axis]
    if normalize == "dataset":
        mean = x.mean(dim=dims).tolist()
        std = x.std(dim=dims).clamp_min(1e-8).tolist()
    elif isinstance(normalize, str):
        raise DataError(f"normalize must be 'dataset' or (mean, std) lists, got {normalize!r}")
    else:
        mean, std = (list(map(float, v)) for v in normalize)
    c = x.shape[axis]
    if len(mean) == 1:
        mean, std = mean * c, std * c
    if len(mean) != c or len(std) != c:
        raise DataError(f"normalize has {len(mean)} means / {len(std)} stds for {c} channels")
    if min(std) <= 0:
        raise DataError("normalize: every std must be positive")
    shape = [1] * x.ndim
    shape[axis] = c
    m, s = torch.tensor(mean).reshape(shape), torch.tensor(std).reshape(shape)
    out = Dataset((x - m) / s, data.y, data.source, data.class_names, list(data.notes),
                  (list(mean), list(std)))
    out.notes.append("normalized per channel")
    return out
