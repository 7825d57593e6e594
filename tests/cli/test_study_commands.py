"""The four study commands on a model and data the project has never seen, saved as a user
would: a CNN written here in ``net.py``, its state dict, and ``.npz`` splits."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from typer.testing import CliRunner

from neuronshapley.cli.app import build_app

torch.set_num_threads(1)
APP = build_app()

NET = '''
from torch import nn


def make(width: int = 6) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * width, 10),
    )
'''


@pytest.fixture(scope="module")
def user_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A trained ``net.py:make`` with weights, a valuation and a held-out split (+ groups)."""
    root = tmp_path_factory.mktemp("user")
    (root / "net.py").write_text(NET)
    digits = load_digits()
    x = torch.tensor(digits.images[:, None] / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.long)
    ns_globals: dict = {}
    exec(NET, ns_globals)  # noqa: S102 - the user's own file, as the CLI will import it
    torch.manual_seed(0)
    model = ns_globals["make"]()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    train = slice(0, 1200)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[train]), y[train]).backward()
        opt.step()
    torch.save(model.state_dict(), root / "weights.pt")
    group = (x.flatten(1).mean(1) > x.flatten(1).mean()).long()  # "bright" vs "dark" digits
    for name, part in (("val", slice(1200, 1500)), ("held", slice(1500, 1797))):
        np.savez(root / f"{name}.npz", x=x[part].numpy(), y=y[part].numpy(),
                 g=group[part].numpy())
    np.savez(root / "wide.npz", x=np.zeros((20, 1, 9, 9), np.float32),
             y=np.zeros(20, np.int64))
    return {"net": f"{root / 'net.py'}:make", "weights": str(root / "weights.pt"),
            "val": str(root / "val.npz"), "held": str(root / "held.npz"),
            "wide": str(root / "wide.npz"), "root": str(root)}


def _run(args: list[str]) -> object:
    return CliRunner().invoke(APP, args, catch_exceptions=False)


def _model_args(f: dict[str, str], heldout: bool = True) -> list[str]:
    args = ["--model", f["net"], "--weights", f["weights"], "--data", f["val"]]
    return args + (["--heldout", f["held"]] if heldout else ["--heldout-fraction", "0.4"])


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_compare_on_a_user_model(user_files: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    r = _run(["compare", *_model_args(user_files), "--max-evaluations", "300",
              "--baselines", "loo,weight_norm,random", "--random-draws", "2", "--max-k", "6",
              "--no-progress", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = _rows(out / "compare.csv")
    assert {"shapley", "loo", "weight_norm", "random"} <= {row["ranking"] for row in rows}
    assert (out / "compare.png").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert "held-out check on 297" in json.dumps(summary)


def test_class_specific_with_a_carved_heldout_split(user_files: dict[str, str],
                                                    tmp_path: Path) -> None:
    out = tmp_path / "cls"
    r = _run(["class-specific", *_model_args(user_files, heldout=False), "--classes", "0,1",
              "--max-evaluations", "300", "--remove", "1,2", "--random-draws", "2",
              "--no-progress", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "class_specific.csv").is_file()


def test_fairness_on_a_user_model(user_files: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "fair"
    r = _run(["fairness", *_model_args(user_files), "--groups", "g", "--target-group", "1",
              "--max-evaluations", "300", "--k-grid", "0,1,2", "--no-progress",
              "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "fairness.csv").is_file()
    assert (out / "repaired_model.pt").is_file()


def test_adversarial_on_a_user_model(user_files: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "adv"
    r = _run(["adversarial", *_model_args(user_files), "--eps", "0.2", "--steps", "3",
              "--max-evaluations", "300", "--k-grid", "0,1,2", "--no-progress",
              "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "adversarial.csv").is_file()
    assert (out / "repaired_model.pt").is_file()


@pytest.mark.parametrize("extra, message", [
    (["fairness", "--groups", "sex", "--target-group", "1"], "no groups array 'sex'"),
    (["compare", "--players", "encoder.*"], "encoder.*"),
])
def test_study_errors_name_the_problem(user_files: dict[str, str], extra: list[str],
                                       message: str) -> None:
    r = _run([extra[0], *_model_args(user_files), *extra[1:], "--no-progress",
              "--out", str(Path(user_files["root"]) / "bad")])
    assert r.exit_code == 2
    assert message in " ".join(r.output.split())


def test_heldout_whose_shape_does_not_match(user_files: dict[str, str]) -> None:
    r = _run(["compare", "--model", user_files["net"], "--weights", user_files["weights"],
              "--data", user_files["val"], "--heldout", user_files["wide"], "--no-progress"])
    assert r.exit_code == 2
    assert "held-out inputs" in r.output and "(1, 9, 9)" in r.output


def test_built_in_setups_refuse_user_data(user_files: dict[str, str]) -> None:
    r = _run(["compare", "--model", "digits", "--heldout", user_files["held"]])
    assert r.exit_code == 2
    assert "--heldout" in r.output
