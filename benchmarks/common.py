"""Shared set-up for the benchmarks: thread count, the digits game, walk masks, result files."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"


def set_threads(n: int = 1) -> None:
    """The machine is shared: set torch threads explicitly (1 by default).

    Also restarts the script once with faster malloc settings (neuronshapley.runtime).
    """
    from neuronshapley.runtime import reexec_with_fast_malloc

    reexec_with_fast_malloc(sys.argv)
    torch.set_num_threads(n)


def digits_game(seed: int = 0, **game_options: Any):
    """The digits CNN accuracy game over all 80 conv filters, on the 359 valuation images
    (the game the digits studies value; :func:`neuronshapley.zoo.load_digits_split`)."""
    from neuronshapley import ModelGame
    from neuronshapley.zoo import pretrained_digits_cnn

    model, data = pretrained_digits_cnn(seed=seed)
    return ModelGame(model, data.x_valuation, data.y_valuation, metric="accuracy",
                     players=["features.*"], **game_options)


def save_json(name: str, payload: dict[str, Any]) -> Path:
    """Write ``results/<name>.json`` with the machine and time it was measured on."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "argv": sys.argv[1:]},
        **payload,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def walk_masks(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """``m`` consecutive steps of a random permutation walk, from a random start (M, n)."""
    perm = rng.permutation(n)
    start = int(rng.integers(0, max(1, n - m)))
    masks = np.ones((m, n), dtype=bool)
    for j in range(m):
        masks[j, perm[: start + j]] = False
    return masks
