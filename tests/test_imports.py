"""The estimators are numpy-only: importing them loads no torch."""

import subprocess
import sys


def test_estimators_import_no_torch() -> None:
    code = ("import sys, neuronshapley.estimators, neuronshapley.games; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
