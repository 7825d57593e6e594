#!/usr/bin/env bash
# Install shapiq 1.8.0 (the newest approximators: RegressionMSR, ProxySHAP, LeverageSHAP, OddSHAP, PolySHAP)
# into an existing Python 3.11 virtual environment, for benchmarks only.
# shapiq >= 1.5 declares Python >= 3.12; on 3.11 it runs with two shims, both local to that venv:
#  - typing.override is taken from typing_extensions (a sitecustomize.py in the venv's site-packages);
#  - the few `type X = ...` aliases (3.12 syntax, used only for annotations) become plain assignments.
# Usage: bash benchmarks/install_shapiq18.sh [VENV]   (default: .venv)
set -euo pipefail
venv="${1:-.venv}"
py="$venv/bin/python"
[ -x "$py" ] || { echo "no python at $py" >&2; exit 1; }
pip_q() { "$py" -m pip install -q "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }; return "${PIPESTATUS[0]}"; }
# its dependencies first, as binary wheels that suit 3.11 (never let it pick a 3.12-only scipy)
pip_q numpy scipy pandas joblib scikit-learn tqdm requests matplotlib networkx colour pillow \
      typing_extensions xgboost lightgbm
pip_q --no-deps --ignore-requires-python "shapiq==1.8.0"
site=$("$py" -c "import site; print(site.getsitepackages()[0])")
cat > "$site/sitecustomize.py" <<'PY'
import typing
if not hasattr(typing, "override"):
    import typing_extensions
    typing.override = typing_extensions.override
PY
grep -rlE '^\s*type [A-Z][A-Za-z0-9_]* = ' "$site/shapiq" | while read -r f; do
  sed -i -E 's/^(\s*)type ([A-Z][A-Za-z0-9_]*) = /\1\2 = /' "$f"
done
"$py" - <<'PY'
import shapiq, numpy as np
n = 12; w = np.linspace(-1, 1, n)
game = lambda m: np.tanh(np.asarray(m, float) @ w)
for name, kw in [("RegressionMSR", {"index": "SV"}), ("ProxySHAP", {"index": "SV", "max_order": 1}),
                 ("LeverageSHAP", {}), ("OddSHAP", {}), ("PolySHAP", {})]:
    v = getattr(shapiq, name)(n=n, random_state=0, **kw).approximate(300, game).get_n_order_values(1)
    assert np.all(np.isfinite(v)) and len(v) == n, name
print("shapiq", shapiq.__version__, "ready: RegressionMSR, ProxySHAP, LeverageSHAP, OddSHAP, PolySHAP")
PY
