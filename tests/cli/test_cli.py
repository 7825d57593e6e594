"""The command line: demo end to end with a tiny budget, version, and clean input errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from neuronshapley import __version__
from neuronshapley.cli.app import app
from neuronshapley.pipeline.demo import DEFAULT_MAX_EVALUATIONS

VALUE_COLUMNS = ["player", "value", "ci_low", "ci_high", "unit_low", "unit_high", "top_k",
                 "samples", "rank"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def cache(digits_cache: Path) -> Path:
    return digits_cache


@pytest.fixture(scope="module")
def demo_run(cache: Path, tmp_path_factory: pytest.TempPathFactory):
    """One demo run through the CLI (the model comes from ``cache``)."""
    out = tmp_path_factory.mktemp("demo") / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEURONSHAPLEY_CACHE", str(cache))
        result = CliRunner().invoke(
            app, ["demo", "--out", str(out), "--no-progress"]
        )
    return result, out


def test_demo_writes_result_files(demo_run, cache: Path) -> None:
    result, out = demo_run
    assert result.exit_code == 0, result.output
    assert any(cache.glob("*.pt")), "the model should be cached in NEURONSHAPLEY_CACHE"
    with (out / "values.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames == VALUE_COLUMNS
    assert len(rows) == 32
    assert sorted(int(r["rank"]) for r in rows) == list(range(1, 33))
    assert all(r["player"].startswith("features.") for r in rows)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["method"] == "tmab" and meta["n_players"] == 32
    assert meta["intervals"] == "joint" and meta["info"]["guarantee"] is True
    assert {r["top_k"] for r in rows} <= {"in", "out", "undecided"}
    with (out / "ablation.csv").open(newline="") as fh:
        ablation = list(csv.DictReader(fh))
    assert [r["split"] for r in ablation][::8] == ["valuation", "test"]
    assert {int(r["removed"]) for r in ablation} == {0, 1, 2, 3, 5, 10, 15, 20}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["max_evaluations"] == DEFAULT_MAX_EVALUATIONS
    assert summary["settings"]["num_threads"] == 1
    # the default budget certifies the top 3: every one of them certainly in
    assert summary["tmab"]["evaluations"] <= DEFAULT_MAX_EVALUATIONS
    assert "Certified: these 3 filters are the top 3" in " ".join(result.output.split())
    assert sorted(r["top_k"] for r in rows if int(r["rank"]) <= 3) == ["in"] * 3
    assert 0.9 < summary["model_test_accuracy"] < 1.0  # held out: not the training images
    sizes = summary["settings"]["split_sizes"]
    assert sizes == {"train": 899, "valuation": 359, "selection": 180, "test": 359}
    assert "Removing the 3 top Shapley filters" in result.output
    assert str(out) in " ".join(result.output.split())


def test_version() -> None:
    result = CliRunner().invoke(app, ["version"])
    assert result.exit_code == 0
    assert f"neuronshapley {__version__}" in result.output


def test_python_dash_m() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "neuronshapley", "version"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert __version__ in proc.stdout


@pytest.mark.parametrize("option", [["--k", "0"], ["--max-evaluations", "0"], ["--threads", "0"]])
def test_bad_option_value_is_a_usage_error(option: list[str], tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "o"), *option])
    assert result.exit_code == 2
    assert option[0] in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_library_error_is_one_red_line(
    cache: Path, demo_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # k larger than the 80 players passes the CLI but the library rejects it; the model is
    # already cached by the demo run, so this is quick.
    monkeypatch.setenv("NEURONSHAPLEY_CACHE", str(cache))
    result = CliRunner().invoke(
        app, ["demo", "--out", str(tmp_path / "o"), "--k", "100", "--no-progress"]
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error:")
    assert "k must be in 1..32" in errors[0]
    assert isinstance(result.exception, SystemExit)
