"""The paper's studies on the user's own model and data (what the study commands load).

A study needs a trained model, a *valuation* split (the values are estimated on it) and a
*held-out* split that the values never saw (the removal curves and repaired scores are measured
on it). ``heldout`` is a second file; without one, ``heldout_fraction`` carves it from the
valuation file with a seeded, class-stratified split. The model and data options are those of
``neuronshapley run`` (:class:`~neuronshapley.pipeline.runner.RunConfig`), loaded the same
way (weights with ``weights_only=True``; a pickled model only with ``trust_pickle``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from neuronshapley.errors import DataError, RunError
from neuronshapley.pipeline.data import Dataset, load_array
from neuronshapley.pipeline.loading import load_model
from neuronshapley.pipeline.runner import (
    RunConfig,
    check_model_on_data,
    load_dataset,
    prepare_model,
    select_players,
)


@dataclass
class UserStudy:
    """A loaded model with its valuation and held-out splits (and group ids, if asked)."""

    model: nn.Module
    value: Dataset
    heldout: Dataset
    players: list[str]
    description: str
    value_groups: torch.Tensor | None = None
    heldout_groups: torch.Tensor | None = None
    notes: list[str] = field(default_factory=list)


def _split(n: int, fraction: float, seed: int, strata: np.ndarray) -> tuple[np.ndarray, ...]:
    if not 0 < fraction < 1:
        raise RunError(f"heldout_fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng([seed, 0x5B1])
    held: list[np.ndarray] = []
    for c in np.unique(strata):
        idx = rng.permutation(np.flatnonzero(strata == c))
        held.append(idx[: int(round(fraction * len(idx)))])
    h = np.sort(np.concatenate(held))
    v = np.setdiff1d(np.arange(n), h)
    if len(v) == 0 or len(h) == 0:
        raise RunError(f"heldout_fraction {fraction} leaves an empty split of {n} examples: "
                       "give more data or another fraction")
    return v, h


def load_user_study(
    settings: RunConfig | Mapping[str, Any],
    heldout: str | None = None,
    heldout_fraction: float | None = None,
    groups: str | None = None,
) -> UserStudy:
    """Load ``settings.model`` and split ``settings.data`` / ``heldout`` for a study.

    Args:
        settings: the model and data fields of ``neuronshapley run`` (``model``, ``data``,
            ``weights``, ``trust_pickle``, ``x_key``, ``y_key``, ``image_size``, ``players``,
            ...); ``data`` is the valuation split.
        heldout: a file or folder of the same kind as ``data``, never used for the values.
        heldout_fraction: without ``heldout``: share of ``data`` set aside (seeded by
            ``settings.seed``, stratified by label).
        groups: name of an integer array in the data files (``.npz`` / ``.pt``) giving each
            example's group (fairness).
    """
    cfg = settings if isinstance(settings, RunConfig) else RunConfig.from_mapping(settings)
    cfg.validate()
    if heldout is None and heldout_fraction is None:
        raise RunError("no held-out split: give --heldout FILE (data the values never see) or "
                       "--heldout-fraction F to carve one from --data")
    if heldout is not None and heldout_fraction is not None:
        raise RunError("give --heldout or --heldout-fraction, not both")
    loaded = load_model(cfg.model, cfg.weights, cfg.trust_pickle, cfg.model_kwargs)
    notes = list(loaded.notes)
    model = prepare_model(loaded, cfg, notes)
    data = load_dataset(cfg.data, cfg)
    g_all = _groups(cfg.data, groups, len(data), cfg) if groups else None
    if heldout is not None:
        held = load_dataset(heldout, cfg)
        g_held = _groups(heldout, groups, len(held), cfg) if groups else None
        if tuple(held.x.shape[1:]) != tuple(data.x.shape[1:]):
            raise DataError(
                f"held-out inputs {heldout} have shape {tuple(held.x.shape[1:])} per example "
                f"but the valuation data {cfg.data} has {tuple(data.x.shape[1:])}: both "
                "splits must be prepared the same way (--image-size, --color, --x-key)")
        value, g_value = data, g_all
    else:
        strata = data.y.numpy() if g_all is None else (data.y * 1000 + g_all).numpy()
        v_idx, h_idx = _split(len(data), float(heldout_fraction), cfg.seed, strata)
        value, held = data.subset(v_idx), data.subset(h_idx)
        g_value = g_all[torch.as_tensor(v_idx)] if g_all is not None else None
        g_held = g_all[torch.as_tensor(h_idx)] if g_all is not None else None
        notes.append(f"held-out split: {len(h_idx)} of {len(data)} examples of {cfg.data} "
                     f"(fraction {heldout_fraction}, seed {cfg.seed}, stratified)")
    check_model_on_data(model, value, loaded)
    check_model_on_data(model, held, loaded)
    players = select_players(model, cfg)
    layers = [ly.name for ly in players.layers]
    desc = (f"{cfg.model}: {players.n_players} units in {len(layers)} layers; values on "
            f"{len(value)} examples of {Path(cfg.data).name}, held-out check on {len(held)} "
            + (f"of {Path(heldout).name}" if heldout else "carved from the same file"))
    return UserStudy(model, value, held, layers, desc, g_value, g_held, notes)


def _groups(path: str, name: str, n: int, cfg: RunConfig) -> torch.Tensor:
    """The integer array ``name`` of the data file ``path``, one group id per example."""
    arr = load_array(path, name, what="groups")
    if arr.ndim != 1 or len(arr) != n:
        raise DataError(f"groups {name!r} in {path} has shape {tuple(arr.shape)}; expected one "
                        f"group id per example ({n},)")
    if not np.issubdtype(arr.dtype, np.integer) and not (
            np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
            raise DataError(f"groups {name!r} in {path} must be integers (group ids), got "
                            f"{arr.dtype} values such as {arr.ravel()[:3].tolist()}")
    if cfg.max_examples is not None and cfg.max_examples < n:
        raise DataError("--groups cannot be combined with --max-examples; cut the files instead")
    return torch.as_tensor(arr.astype(np.int64))


def group_names(value_groups: torch.Tensor, heldout_groups: torch.Tensor,
                names: Sequence[str] | None = None) -> tuple[str, ...]:
    """Names of the groups 0..G-1 (``names`` or ``group0``, ``group1``, ...)."""
    ids = torch.cat([value_groups, heldout_groups])
    if int(ids.min()) < 0:
        raise DataError(f"group ids must be 0, 1, ..., got {int(ids.min())}")
    count = int(ids.max()) + 1
    if names is not None:
        if len(names) != count:
            raise DataError(f"{len(names)} group names for {count} groups (ids 0..{count - 1})")
        return tuple(names)
    return tuple(f"group{g}" for g in range(count))
