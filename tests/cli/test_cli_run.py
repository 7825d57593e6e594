"""Commands ``run`` and ``report``: end to end, flags over config files, one-line errors, and
what they guarantee: settings checked by type, pickles run only when trusted on the command,
no silent NaN, result folders validated, output folders locked and never mixed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import neuronshapley as ns
from neuronshapley.cli.app import build_app
from neuronshapley.cli.parsing import parse_normalize, parse_option, parse_size
from neuronshapley.games import AdditiveGame
from neuronshapley.pipeline.outdir import LOCK_NAME
from neuronshapley.pipeline.runner import RunConfig, RunError

torch.set_num_threads(1)
APP = build_app()
MLP = "conftest:tiny_mlp"
QUICK = ("--max-evaluations", "60", "--no-progress")


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
    said = " ".join(result.output.split())  # what the intervals are, and what is certain
    assert "intervals: joint 90% confidence sequences: every unit's interval holds at once" \
        in said
    assert "top-6 (joint 90%): 6 certainly in, 0 certainly out, 0 undecided" in said
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


# ------------------------------------------------------------------- what is guaranteed
class _Trap:
    """Pickles as code that creates ``marker`` and returns a working tiny MLP."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        code = (f"(open({str(self.marker)!r}, 'w').close(), "
                "__import__('conftest').tiny_mlp())[1]")
        return (eval, (code,))


def _trap(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    torch.save(_Trap(marker), path)
    return path, marker


# ------------------------------------------------------------------- settings by type
@pytest.mark.parametrize("line, message", [
    ('trust_pickle = "no"', "trust_pickle = 'no' (text) is not allowed; trust_pickle must "
                            "be true or false"),
    ('overwrite = "false"', "overwrite = 'false' (text) is not allowed; overwrite must be "
                            "true or false"),
    ('report = "no"', "report = 'no' (text) is not allowed; report must be true or false"),
    ('include_output_layer = "no"', "include_output_layer = 'no' (text) is not allowed"),
    ('seed = "abc"', "seed = 'abc' (text) is not allowed; seed must be an integer >= 0"),
    ('threads = "two"', "threads = 'two' (text) is not allowed; threads must be an integer"),
    ("players = 5", "players = 5 (an integer) is not allowed; players must be a layer name"),
    ("batch_size = -3", "batch_size = -3 (an integer) is not allowed; batch_size must be an "
                        "integer >= 1"),
])
def test_config_values_of_the_wrong_type_are_refused(tmp_path: Path, npz: Path, line: str,
                                                     message: str) -> None:
    model, marker = _trap(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "values.csv").write_text("player,value\n")  # overwrite = "false" must keep it
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'model = "{model}"\ndata = "{npz}"\nout = "{out}"\n{line}\n')
    error = _one_error(_invoke("run", "--config", str(cfg), *QUICK))
    assert f"{cfg}: {message}" in error
    assert not marker.exists()  # the pickle never ran
    assert (out / "values.csv").read_text() == "player,value\n"


def test_python_settings_use_the_same_checks() -> None:
    with pytest.raises(RunError, match="threads = 'two' .*an integer >= 1"):
        RunConfig(threads="two")
    with pytest.raises(RunError, match="trust_pickle = 1 .*true or false"):
        RunConfig.from_mapping({"trust_pickle": 1})
    assert RunConfig(players="features.*", image_size=32).players == ["features.*"]


# ---------------------------------------------------------------------------- trust
@pytest.mark.slow
def test_a_pickle_runs_only_with_the_flag_on_that_command(tmp_path: Path, npz: Path) -> None:
    model, marker = _trap(tmp_path)
    error = _one_error(_invoke("run", "--model", str(model), "--data", str(npz), "--out",
                               str(tmp_path / "o"), *QUICK))
    assert "--trust-pickle" in error and not marker.exists()
    # a result folder whose run_config.json claims trust must not make `report` unpickle
    out = tmp_path / "result"
    ok = _invoke("run", "--model", MLP, "--data", str(npz), "--out", str(out), "--method",
                 "exact", "--no-report", "--no-feature-vis", "--no-progress")
    assert ok.exit_code == 0, ok.output
    saved = json.loads((out / "run_config.json").read_text())
    saved.update(model=str(model), trust_pickle=True)
    (out / "run_config.json").write_text(json.dumps(saved))
    error = _one_error(_invoke("report", str(out), "--refresh-units", "--units", "1"))
    assert "--trust-pickle" in error and not marker.exists()
    ok = _invoke("report", str(out), "--refresh-units", "--units", "1", "--trust-pickle")
    assert ok.exit_code == 0, ok.output
    assert marker.exists()


# ------------------------------------------------------------------------ finite data
def test_nan_in_the_reference_data_is_refused(tmp_path: Path, npz: Path) -> None:
    x = np.random.default_rng(0).normal(size=(10, 5)).astype(np.float32)
    x[4, 2], x[7, 0] = np.nan, np.inf
    np.savez(tmp_path / "ref.npz", x=x, y=np.zeros(10, int))
    error = _one_error(_invoke("run", "--model", MLP, "--data", str(npz), "--reference",
                               str(tmp_path / "ref.npz"), "--out", str(tmp_path / "o"),
                               *QUICK))
    assert "ref.npz['x'] hold 2 NaN or infinite entries in 2 of 10 examples" in error
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------- resume, game
def test_resume_needs_a_checkpoint_and_the_same_game(tmp_path: Path, npz: Path) -> None:
    ck = tmp_path / "ck"
    base = ("run", "--model", MLP, "--data", str(npz), "--no-report", *QUICK)
    error = _one_error(_invoke(*base, "--out", str(tmp_path / "a"), "--checkpoint", str(ck),
                               "--resume"))
    assert f"the checkpoint folder {ck} does not exist" in error
    ck.mkdir()
    error = _one_error(_invoke(*base, "--out", str(tmp_path / "a"), "--checkpoint", str(ck),
                               "--resume"))
    assert f"{ck} holds no checkpoint (no state.npz)" in error
    first = _invoke(*base, "--out", str(tmp_path / "a"), "--checkpoint", str(ck))
    assert first.exit_code == 0, first.output
    g = torch.Generator().manual_seed(5)
    np.savez(tmp_path / "ref.npz", x=torch.randn(30, 5, generator=g).numpy(),
             y=np.zeros(30, int))
    error = _one_error(_invoke(*base, "--out", str(tmp_path / "b"), "--checkpoint", str(ck),
                               "--resume", "--reference", str(tmp_path / "ref.npz")))
    assert "different game" in error


# --------------------------------------------------------------------- result files
def _result_folder(folder: Path) -> tuple[Path, Path]:
    res = ns.estimate(AdditiveGame(np.array([0.3, -0.1, 0.7, 0.0])), method="permutation",
                      n_permutations=2)
    res.save(folder)
    return folder / "values.csv", folder / "metadata.json"


@pytest.mark.parametrize("damage, message", [
    ("cut at a row", "values.csv lists 3 players but metadata.json says 4"),
    ("duplicated row", "values.csv line 6 lists 'p0' a second time"),
    ("cut mid-row", "values.csv line 5 has 3 fields, not 6 (the file was cut)"),
    ("missing column", "values.csv has no column 'samples'"),
    ("bad metadata", "metadata.json is not valid JSON"),
    ("no metadata", "metadata.json not found"),
])
def test_report_names_a_damaged_result_file(tmp_path: Path, damage: str, message: str) -> None:
    values, meta = _result_folder(tmp_path / "r")
    lines = values.read_text().splitlines(keepends=True)
    if damage == "cut at a row":
        values.write_text("".join(lines[:-1]))
    elif damage == "duplicated row":
        values.write_text("".join(lines + lines[1:2]))
    elif damage == "cut mid-row":
        values.write_text("".join(lines[:-1]) + ",".join(lines[-1].split(",")[:3]))
    elif damage == "missing column":
        values.write_text("".join(",".join(ln.split(",")[:4] + ln.split(",")[5:])
                                  for ln in lines))
    elif damage == "bad metadata":
        meta.write_text(meta.read_text()[:50])
    else:
        meta.unlink()
    error = _one_error(_invoke("report", str(tmp_path / "r")))
    assert message in error
    assert not (tmp_path / "r" / "report.html").exists()


def test_vector_metric_gets_its_report(tmp_path: Path, npz: Path) -> None:
    out = tmp_path / "o"
    result = _invoke("run", "--model", MLP, "--data", str(npz), "--metric", "class_recall",
                     "--out", str(out), "--report-units", "1", "--no-feature-vis", *QUICK)
    assert result.exit_code == 0, result.output
    assert (out / "report.html").is_file() and (out / "figures" / "removal.png").is_file()
    removal = (out / "removal.csv").read_text().splitlines()
    saved = ns.ShapleyResult.load(out)
    assert saved.values.shape == (6, 3) and len(removal) > 2
    # with nothing removed, the curve is class0's recall of the full model
    assert float(removal[1].split(",")[1]) == pytest.approx(saved.info["v_full"][0])


# -------------------------------------------------------------------- output folders
@pytest.mark.slow
def test_overwrite_clears_the_previous_runs_files_only(tmp_path: Path, npz: Path) -> None:
    out = tmp_path / "o"
    first = _invoke("run", "--model", MLP, "--data", str(npz), "--out", str(out),
                    "--report-units", "0", *QUICK)
    assert first.exit_code == 0, first.output
    assert (out / "report.html").is_file() and (out / "figures" / "values.png").is_file()
    (out / "notes.txt").write_text("mine")
    second = _invoke("run", "--model", MLP, "--data", str(npz), "--out", str(out),
                     "--overwrite", "--no-report", "--seed", "3", *QUICK)
    assert second.exit_code == 0, second.output
    assert not (out / "report.html").exists() and not (out / "figures").exists()
    assert (out / "notes.txt").read_text() == "mine"
    assert ns.ShapleyResult.load(out).seed == 3
    assert {"metadata.json", "notes.txt", "run_config.json", "values.csv"} <= {
        p.name for p in out.iterdir()}


@pytest.mark.slow
def test_a_second_run_on_a_locked_folder_fails_at_once(tmp_path: Path, npz: Path) -> None:
    out = tmp_path / "o"
    src = str(Path(ns.__file__).resolve().parents[1])
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom neuronshapley.pipeline.outdir import OutputFolder\n"
         "OutputFolder(sys.argv[1]).__enter__()\nprint('locked', flush=True)\ntime.sleep(60)",
         str(out)],
        stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        error = _one_error(_invoke("run", "--model", MLP, "--data", str(npz), "--out",
                                   str(out), *QUICK))
        assert (f"output folder {out} is being written by another run (pid {holder.pid}"
                in error)
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # dies holding the lock: its file stays behind
        holder.wait()
    assert (out / LOCK_NAME).is_file()
    result = _invoke("run", "--model", MLP, "--data", str(npz), "--out", str(out),
                     "--no-report", *QUICK)
    assert result.exit_code == 0, result.output  # the dead run's lock is taken over
    assert not (out / LOCK_NAME).exists()


def test_demo_refuses_an_existing_result_without_overwrite(tmp_path: Path) -> None:
    _result_folder(tmp_path / "r")
    before = (tmp_path / "r" / "values.csv").read_text()
    error = _one_error(_invoke("demo", "--out", str(tmp_path / "r"), "--no-progress"))
    assert "not empty and would be overwritten: pass --overwrite" in error
    assert (tmp_path / "r" / "values.csv").read_text() == before


@pytest.mark.parametrize("name, text, message", [
    ("removal.csv", "removed,top\n0,0.5\n", "removal-curve file in"),
    ("figures/units/units.json", "{not json", "units.json is damaged"),
])
def test_report_names_a_damaged_figure_file(tmp_path: Path, name: str, text: str,
                                            message: str) -> None:
    _result_folder(tmp_path / "r")
    (tmp_path / "r" / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "r" / name).write_text(text)
    error = _one_error(_invoke("report", str(tmp_path / "r")))
    assert message in error and "delete" in error


@pytest.mark.parametrize("gap", [0.0, 0.05])
def test_two_real_ctrl_c_save_the_values_with_their_metadata(tmp_path: Path, npz: Path,
                                                             gap: float) -> None:
    """A user presses Ctrl-C twice, ``gap`` seconds apart, during a long run: the values
    computed before the first are saved whole (values, metadata, config), never half."""
    import time

    out = tmp_path / "o"
    tests_dir = str(Path(__file__).resolve().parents[1])
    proc = subprocess.Popen(
        [sys.executable, "-m", "neuronshapley", "run", "--model", MLP, "--data", str(npz),
         "--out", str(out), "--method", "truncated", "--max-evaluations", "100000000",
         "--no-report", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "NEURONSHAPLEY_NO_REEXEC": "1", "COLUMNS": "200",
             "PYTHONUNBUFFERED": "1",
             "PYTHONPATH": tests_dir + os.pathsep + os.environ.get("PYTHONPATH", "")},
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:  # the game is built: the estimate starts now
        lines.append(line)
        if "ModelGame(" in line:
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    time.sleep(gap)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    output = "".join(lines) + proc.stdout.read()  # the same reader: nothing it buffered is lost
    # 130 or -SIGINT: a second Ctrl-C may stop the printing of the summary (a run this small
    # has saved its values well within the gap); what must hold is the files below
    assert proc.returncode in (130, -signal.SIGINT), output
    assert {"values.csv", "metadata.json", "run_config.json"} <= {p.name for p in out.iterdir()}
    saved = ns.ShapleyResult.load(out)  # validated: the values and metadata belong together
    assert saved.info["interrupted"] is True and saved.evaluations > 0
    assert len(saved.values) == 6
