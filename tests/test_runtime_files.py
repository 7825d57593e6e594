import json
import os
import stat
import subprocess
import sys

import numpy as np

from neuronshapley.files import atomic_write_text, csv_text, json_safe
from neuronshapley.runtime import FAST_MALLOC, reexec_with_fast_malloc


def test_reexec_is_a_no_op_when_settings_are_present(monkeypatch):
    for key, value in FAST_MALLOC.items():
        monkeypatch.setenv(key, value)
    reexec_with_fast_malloc(["-c", "raise SystemExit(3)"])  # would replace this process


def test_command_line_restarts_once_with_the_settings(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in FAST_MALLOC and k != "NEURONSHAPLEY_NO_REEXEC"}
    child = tmp_path / "child.py"
    child.write_text("import os\nprint(os.environ['MALLOC_TOP_PAD_'])\n")
    parent = tmp_path / "parent.py"
    parent.write_text(
        "import sys\n"
        "from neuronshapley.runtime import reexec_with_fast_malloc\n"
        "reexec_with_fast_malloc([sys.argv[1]])\n"
        "print('not restarted')\n"
    )
    out = subprocess.run([sys.executable, str(parent), str(child)], env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == FAST_MALLOC["MALLOC_TOP_PAD_"]


def test_csv_and_json_helpers_write_plain_numbers(tmp_path):
    rows = [{"a": np.float64(0.5), "b": None, "c": "x"}, {"a": 1.25, "b": 2, "c": "y"}]
    assert csv_text(rows) == "a,b,c\n0.5,,x\n1.25,2,y\n"
    assert json.dumps(json_safe({"v": [np.float32(1.5), float("nan")]})) == '{"v": [1.5, null]}'
    path = tmp_path / "out.txt"
    atomic_write_text(path, "hello")
    assert path.read_text() == "hello"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_json_safe_keeps_nan_when_not_strict_and_names_the_rest():
    obj = {1: np.arange(2), "x": (np.float64("nan"), None), "o": object.__name__}
    assert json_safe(obj, strict=False)["x"][0] != json_safe(obj, strict=False)["x"][0]
    assert json_safe(obj) == {1: [0, 1], "x": [None, None], "o": "object"}
    assert json_safe({"p": complex(1, 2)}) == {"p": "(1+2j)"}


def test_csv_text_writes_the_header_of_no_rows():
    assert csv_text([], ["a", "b"]) == "a,b\n"
    assert csv_text([]) == ""
