"""``neuronshapley.pipeline.runner.run``: the one-call run, its config files, its input checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_mlp
from torch import nn

import neuronshapley as ns
from neuronshapley.errors import DataError
from neuronshapley.pipeline.runner import (
    RunConfig,
    RunError,
    estimator_accepts,
    load_config,
    run,
)

torch.set_num_threads(1)
MLP = "conftest:tiny_mlp"


@pytest.fixture
def npz(tmp_path: Path) -> Path:
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(40, 5, generator=g), torch.randint(0, 3, (40,), generator=g)
    path = tmp_path / "data.npz"
    np.savez(path, x=x.numpy(), y=y.numpy())
    return path


def _cfg(tmp_path: Path, npz: Path, **kw: object) -> dict[str, object]:
    base: dict[str, object] = {"model": MLP, "data": str(npz), "out": str(tmp_path / "out"),
                               "options": {"max_evaluations": 60}, "report": False}
    base.update(kw)
    return base


def test_run_saves_values_config_and_report(tmp_path: Path, npz: Path) -> None:
    outcome = run(_cfg(tmp_path, npz, report=True, report_units=1, feature_vis=False,
                       metric="log_prob", model="neuronshapley.zoo.architectures:TabularMLP",
                       model_kwargs={"n_features": 5}), progress=None)
    out = tmp_path / "out"
    assert outcome.result.players == [f"net.0:{i}" for i in range(16)] + [
        f"net.3:{i}" for i in range(12)]
    assert not outcome.interrupted
    saved = ns.ShapleyResult.load(out)
    assert saved.info["metric"] == "log_prob" and saved.info["model"].endswith("TabularMLP")
    assert json.loads((out / "run_config.json").read_text())["model_kwargs"] == {"n_features": 5}
    assert (out / "report.html").is_file() and (out / "figures" / "removal.png").is_file()
    assert any("eval mode" in n for n in outcome.notes)


def test_config_file_and_overrides(tmp_path: Path, npz: Path) -> None:
    (tmp_path / "run.toml").write_text(
        f'model = "{MLP}"\ndata = "data.npz"\nmethod = "permutation"\nreport = false\n'
        'out = "from-config"\n[options]\nmax_evaluations = 40\n'
    )
    cfg = load_config(tmp_path / "run.toml")
    assert cfg.data == str(tmp_path / "data.npz") and cfg.options == {"max_evaluations": 40}
    outcome = run(cfg, progress=None, out=str(tmp_path / "o2"), seed=3,
                  options={"n_permutations": 2})
    assert outcome.out_dir == tmp_path / "o2"
    assert outcome.result.method == "permutation" and outcome.result.seed == 3
    assert outcome.config.options == {"max_evaluations": 40, "n_permutations": 2}
    (tmp_path / "bad.toml").write_text('modle = "x"\n')
    with pytest.raises(RunError, match="unknown setting 'modle'.*model"):
        load_config(tmp_path / "bad.toml")


def test_yaml_config(tmp_path: Path, npz: Path) -> None:
    pytest.importorskip("yaml")
    (tmp_path / "run.yaml").write_text(f"model: {MLP}\ndata: {npz}\nplayers: ['0']\n")
    assert load_config(tmp_path / "run.yaml").players == ["0"]


def test_output_folder_is_not_overwritten(tmp_path: Path, npz: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(RunError, match="not empty.*--overwrite"):
        run(_cfg(tmp_path, npz), progress=None)
    run(_cfg(tmp_path, npz, overwrite=True), progress=None)
    assert (tmp_path / "out" / "values.csv").is_file()


def test_wrong_input_shape_names_the_expected_shape(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((8, 7), np.float32), y=np.zeros(8, int))
    with pytest.raises(RunError, match=r"shape \(8, 7\).*expects inputs \(N, \.\.\., 5\)"):
        run(_cfg(tmp_path, tmp_path / "d.npz"), progress=None)


def test_labels_out_of_range(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((8, 5), np.float32), y=np.arange(8))
    with pytest.raises(ns.GameError, match="labels go up to 7 but the model scores 3 classes"):
        run(_cfg(tmp_path, tmp_path / "d.npz"), progress=None)


def test_nan_inputs(tmp_path: Path) -> None:
    x = np.zeros((8, 5), np.float32)
    x[3, 0] = np.nan
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(8, int))
    with pytest.raises(DataError, match=r"\['x'\] hold 1 NaN or infinite entries in 1 of "
                                           r"8 examples \(e.g. \[3\]\)"):
        run(_cfg(tmp_path, tmp_path / "d.npz"), progress=None)


def test_pattern_matching_nothing(tmp_path: Path, npz: Path) -> None:
    with pytest.raises(ns.PlayerError, match="'features.*' matches no removable layer"):
        run(_cfg(tmp_path, npz, players=["features.*"]), progress=None)


def test_training_mode_pickle_needs_eval(tmp_path: Path, npz: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Dropout(0.5), nn.Linear(6, 3))
    torch.save(model, tmp_path / "m.pt")  # left in training mode
    cfg = _cfg(tmp_path, npz, model=str(tmp_path / "m.pt"), trust_pickle=True)
    with pytest.raises(RunError, match=r"training mode \(it has 2\).*--eval"):
        run(cfg, progress=None)
    outcome = run({**cfg, "eval_mode": True}, progress=None)
    assert "--eval: model.eval() called" in outcome.notes


def test_ctrl_c_saves_a_partial_result(tmp_path: Path, npz: Path) -> None:
    calls = []

    def progress(state: dict) -> None:
        calls.append(state)
        if len(calls) == 3:
            raise KeyboardInterrupt

    outcome = run(_cfg(tmp_path, npz, options={"max_evaluations": 10_000}, report=True,
                       report_units=0), progress=progress)
    assert outcome.interrupted
    saved = ns.ShapleyResult.load(tmp_path / "out")
    assert saved.info["interrupted"] is True
    assert 0 < saved.evaluations < 10_000 and saved.samples.sum() > 0
    assert "interrupted" in (tmp_path / "out" / "report.html").read_text()


def test_estimator_options_are_checked(tmp_path: Path, npz: Path) -> None:
    with pytest.raises(RunError, match="takes no option 'speed'"):
        run(_cfg(tmp_path, npz, options={"speed": 3}), progress=None)
    with pytest.raises(RunError, match="method = 'fast' .* must be one of 'exact'"):
        run(_cfg(tmp_path, npz, method="fast"), progress=None)
    assert estimator_accepts("tmab", "k") and not estimator_accepts("exact", "k")


def test_checkpoint_is_passed_when_the_estimator_takes_it(tmp_path: Path, npz: Path) -> None:
    if not estimator_accepts("tmab", "checkpoint"):
        with pytest.raises(RunError, match="cannot checkpoint"):
            run(_cfg(tmp_path, npz, checkpoint=str(tmp_path / "ck")), progress=None)
        return
    run(_cfg(tmp_path, npz, checkpoint=str(tmp_path / "ck")), progress=None)
    assert any((tmp_path / "ck").iterdir())


def test_exported_program(tmp_path: Path, npz: Path) -> None:
    model = tiny_mlp()
    program = torch.export.export(model, (torch.randn(4, 5),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, tmp_path / "mlp.pt2")
    outcome = run(_cfg(tmp_path, npz, model=str(tmp_path / "mlp.pt2"), method="exact",
                       options={}), progress=None)
    eager = ns.estimate(ns.ModelGame(model, *_xy(npz)), method="exact")
    assert outcome.loaded is not None and outcome.loaded.kind == "exported"
    assert outcome.result.players == eager.players == [f"0:{i}" for i in range(6)]
    np.testing.assert_allclose(outcome.result.values, eager.values, atol=1e-9)


def _xy(npz: Path) -> tuple[torch.Tensor, torch.Tensor]:
    with np.load(npz) as f:
        return torch.from_numpy(f["x"]), torch.from_numpy(f["y"])


def test_missing_model_or_data() -> None:
    with pytest.raises(RunError, match="no model"):
        RunConfig(data="x.npz").validate()
    with pytest.raises(RunError, match="no data"):
        RunConfig(model=MLP).validate()
