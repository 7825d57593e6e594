"""``neuronshapley run --model hf:FOLDER`` on text data, end to end, and its errors.

The model folder is written here: a tiny random BERT classifier and a BertTokenizerFast built
from a small vocabulary file (nothing is downloaded).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("transformers")

from tiny_transformers import tiny_bert  # noqa: E402

from neuronshapley.cli.app import build_app  # noqa: E402
from neuronshapley.errors import DataError, ModelLoadError  # noqa: E402
from neuronshapley.pipeline.data import load_text_data  # noqa: E402
from neuronshapley.pipeline.hf import load_hf  # noqa: E402

APP = build_app()
WORDS = ["good", "bad", "film", "plot", "great", "dull", "actors", "the", "a", "was", "very"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizerFast(vocab=str(vocab)).save_pretrained(folder)
    tiny_bert(num_labels=2).save_pretrained(folder)
    return folder


def _reviews(n: int = 24, seed: int = 0) -> list[tuple[str, int]]:
    rng = np.random.default_rng(seed)
    return [(" ".join(rng.choice(WORDS, size=int(rng.integers(2, 8)))), int(rng.integers(0, 2)))
            for _ in range(n)]


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "reviews.csv"
    lines = ["review,sentiment"] + [f'"{t}",{y}' for t, y in _reviews()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _invoke(*args: str):
    return CliRunner().invoke(APP, list(args))


def _error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


@pytest.mark.slow
def test_run_values_heads_and_neurons_of_a_saved_bert(tmp_path: Path, model_dir: Path,
                                                      csv_file: Path) -> None:
    out = tmp_path / "out"
    result = _invoke("run", "--model", f"hf:{model_dir}", "--data", str(csv_file),
                     "--text-column", "review", "--label-column", "sentiment",
                     "--max-length", "10", "--method", "truncated", "--max-evaluations",
                     "200", "--out", str(out), "--no-progress", "--no-feature-vis")
    assert result.exit_code == 0, result.output
    values = (out / "values.csv").read_text()
    assert "bert.encoder.layer.0.attention:0" in values
    assert "bert.encoder.layer.1.intermediate:36" in values
    meta = json.loads((out / "metadata.json").read_text())
    kinds = meta["info"]["layer_kinds"]
    assert kinds["bert.encoder.layer.0.attention"] == "attention_heads"
    assert kinds["bert.encoder.layer.0.intermediate"] == "mlp_neurons"
    assert (out / "report.html").is_file()


def test_text_data_is_tokenized_with_the_models_tokenizer(tmp_path: Path,
                                                          model_dir: Path) -> None:
    path = tmp_path / "reviews.jsonl"
    rows = _reviews(5)
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    _model, tokenizer, _notes = load_hf(f"hf:{model_dir}")
    data = load_text_data(path, tokenizer, model_max_length=16)
    assert data.y.tolist() == [y for _, y in rows]
    ids = data.x["input_ids"]
    vocab = tokenizer.get_vocab()
    first = [vocab["[CLS]"], *[vocab[w] for w in rows[0][0].split()], vocab["[SEP]"]]
    assert ids[0, : len(first)].tolist() == first
    assert data.x["attention_mask"][0].sum() == len(first)
    assert set(data.x) == {"input_ids", "attention_mask", "token_type_ids"}


def test_model_folder_errors(tmp_path: Path, model_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist.*never downloaded"):
        load_hf(f"hf:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="not a Hugging Face model folder"):
        load_hf(f"hf:{tmp_path / 'empty'}")
    remote = tmp_path / "remote"
    remote.mkdir()
    config = json.loads((model_dir / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_custom.CustomModel"}
    (remote / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="needs its own code"):
        load_hf(f"hf:{remote}")
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text(json.dumps(config | {"auto_map": {}}))
    with pytest.raises(ModelLoadError, match="no weights"):
        load_hf(f"hf:{tmp_path / 'noweights'}")


def test_text_data_errors(tmp_path: Path, model_dir: Path, csv_file: Path) -> None:
    _model, tokenizer, _ = load_hf(f"hf:{model_dir}")
    with pytest.raises(DataError, match="no text column 'text'; its columns: review, sentiment"):
        load_text_data(csv_file, tokenizer, label_column="sentiment")
    with pytest.raises(DataError, match="no label column 'label'"):
        load_text_data(csv_file, tokenizer, text_column="review")
    words = tmp_path / "words.csv"
    words.write_text("text,label\ngood film,positive\n")
    with pytest.raises(DataError, match="'positive'.*not an integer"):
        load_text_data(words, tokenizer)
    with pytest.raises(DataError, match="longer than the model allows.*--max-length 4"):
        load_text_data(csv_file, tokenizer, "review", "sentiment", model_max_length=4)
    with pytest.raises(DataError, match="max_length 40 is longer than the model allows"):
        load_text_data(csv_file, tokenizer, "review", "sentiment", max_length=40,
                       model_max_length=16)


def test_cli_errors_are_one_line(tmp_path: Path, model_dir: Path, csv_file: Path) -> None:
    line = _error(_invoke("run", "--model", f"hf:{tmp_path / 'nope'}", "--data", str(csv_file),
                          "--out", str(tmp_path / "o1"), "--no-progress"))
    assert "does not exist" in line
    line = _error(_invoke("run", "--model", f"hf:{model_dir}", "--data", str(csv_file),
                          "--text-column", "body", "--out", str(tmp_path / "o2"),
                          "--no-progress"))
    assert "no text column 'body'; its columns: review, sentiment" in line
    line = _error(_invoke("run", "--model", "conftest:tiny_mlp", "--data", str(csv_file),
                          "--out", str(tmp_path / "o3"), "--no-progress"))
    assert "hf:FOLDER" in line


def test_game_on_loaded_text_data_equals_the_plain_model(model_dir: Path,
                                                         csv_file: Path) -> None:
    from neuronshapley import ModelGame

    model, tokenizer, _ = load_hf(f"hf:{model_dir}")
    data = load_text_data(csv_file, tokenizer, "review", "sentiment", model_max_length=16)
    game = ModelGame(model, data.x, data.y, metric="accuracy")
    with torch.no_grad():
        acc = (model(**data.x).logits.argmax(-1) == data.y).double().mean().item()
    assert game(np.ones((1, game.n_players), dtype=bool))[0] == pytest.approx(acc)
