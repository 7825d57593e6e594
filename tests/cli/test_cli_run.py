"""Commands ``run`` and ``report``: end to end, flags over config files, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from neuronshapley.cli.app import build_app
from neuronshapley.cli.parsing import parse_normalize, parse_option, parse_size

torch.set_num_threads(1)
APP = build_app()
MLP = "conftest:tiny_mlp"


@pytest.fixture
def npz(tmp_path: Path) -> Path:
    g = torch.Generator().manual_seed(2)
    path = tmp_path / "data.npz"
    np.savez(path, x=torch.randn(40, 5, generator=g).numpy(),
             y=torch.randint(0, 3, (40,), generator=g).numpy())
    return path


def _invoke(*args: str):
    return CliRunner().invoke(APP, list(args))


def _one_error(result, exit_code: int = 2) -> str:
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


def test_run_then_report_rebuilds_without_the_model(tmp_path: Path, npz: Path) -> None:
    out = tmp_path / "out"
    result = _invoke("run", "--model", MLP, "--data", str(npz), "--out", str(out),
                     "--max-evaluations", "80", "-o", "delta=0.1", "--report-units", "1",
                     "--no-feature-vis", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "Top 6 units by Shapley value (accuracy)" in result.output
    assert json.loads((out / "metadata.json").read_text())["params"]["delta"] == 0.1
    unit_png = out / "figures" / "units" / "unit01_examples.png"
    assert unit_png.is_file()
    (out / "report.html").unlink()
    result = _invoke("report", str(out))
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert "unit images saved by an earlier run" in page.lower()
    assert page.count("data:image/png;base64,") >= 6
    result = _invoke("report", str(out), "--refresh-units", "--units", "2")
    assert result.exit_code == 0, result.output
    assert (out / "figures" / "units" / "unit02_examples.png").is_file()


def test_flags_override_the_config_file(tmp_path: Path, npz: Path) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'model = "{MLP}"\ndata = "{npz.name}"\nmethod = "permutation"\n'
                   f'out = "{tmp_path / "a"}"\nreport = false\n[options]\nn_permutations = 2\n')
    result = _invoke("run", "--config", str(cfg), "--out", str(tmp_path / "b"), "--seed", "7",
                     "--no-progress", "--precision", "tf32")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "a").exists()
    meta = json.loads((tmp_path / "b" / "metadata.json").read_text())
    assert meta["method"] == "permutation" and meta["seed"] == 7


def test_bad_inputs_are_one_red_line(tmp_path: Path, npz: Path) -> None:
    line = _one_error(_invoke("run", "--model", str(tmp_path / "none.pt2"), "--data", str(npz),
                              "--out", str(tmp_path / "o")))
    assert "not found" in line
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    line = _one_error(_invoke("run", "--model", MLP, "--data", str(npz), "--out",
                              str(tmp_path / "full")))
    assert "--overwrite" in line
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 5), np.float32), y=np.array([0, 1, 2, 9]))
    line = _one_error(_invoke("run", "--model", MLP, "--data", str(tmp_path / "bad.npz"),
                              "--out", str(tmp_path / "o")))
    assert "labels go up to 9" in line
    line = _one_error(_invoke("run", "--model", MLP, "--data", str(npz), "--players", "conv*",
                              "--out", str(tmp_path / "o")))
    assert "matches no removable layer" in line
    line = _one_error(_invoke("run", "--model", MLP, "--data", str(npz), "-o", "bogus=1",
                              "--out", str(tmp_path / "o")))
    assert "takes no option 'bogus'" in line
    line = _one_error(_invoke("run", "--model", MLP, "--data", str(npz), "--precision", "int8",
                              "--out", str(tmp_path / "o")))
    assert "precision must be one of" in line
    assert not (tmp_path / "o").exists()


def test_report_needs_a_result_folder(tmp_path: Path) -> None:
    line = _one_error(_invoke("report", str(tmp_path)))
    assert "no values.csv" in line


def test_option_parsers() -> None:
    assert parse_option("k=10") == ("k", 10)
    assert parse_option("sampling=walk") == ("sampling", "walk")
    assert parse_option("truncation=false") == ("truncation", False)
    assert parse_size("32") == [32] and parse_size("32x48") == [32, 48]
    assert parse_normalize("0.5/0.25") == [[0.5], [0.25]]
    assert parse_normalize("dataset") == "dataset"
