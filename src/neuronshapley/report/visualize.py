"""What a unit responds to: the evaluation examples that activate it most and least, and a
feature visualisation (an input optimised to excite it), in plain torch.

A unit's *activation* on an example is one number: a conv channel's output averaged over
positions, a linear unit's output (averaged over any sequence axis), an attention head's
output norm averaged over positions.

Feature visualisation (:func:`feature_visualization`) optimises an input with Adam to
maximise the activation. The input is parameterised in a decorrelated space: a Fourier
spectrum over the spatial (or sequence) axes scaled by ``1 / frequency`` (so low frequencies
move first, no high-frequency noise), mixed across channels by the Cholesky factor of the
channel correlation of the evaluation data, then squashed into the data's per-channel range
with a sigmoid. Each step the input is randomly shifted (jitter, circular roll) so the result
does not rely on exact pixel positions. Integer inputs (tokens) are not optimised.

Input layouts (per example): ``(C, H, W)`` images; ``(C, L)`` signals when the model starts
with a ``Conv1d``, otherwise ``(L, F)`` sequences of feature vectors; ``(F,)`` feature vectors.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from neuronshapley.network.ablation import unit_hook
from neuronshapley.network.players import Layer, PlayerSet


class _StopForwardError(Exception):
    """Raised by a capture hook to skip the rest of the forward pass."""


def _per_unit(out: torch.Tensor, axis: int) -> torch.Tensor:
    """(B, ...) with units on ``axis`` -> (B, units), averaging the other axes."""
    axis = axis if axis >= 0 else out.ndim + axis
    moved = out.movedim(axis, 1)
    return moved.reshape(moved.shape[0], moved.shape[1], -1).mean(-1)


def _capture(model: nn.Module, layer: Layer, x: torch.Tensor) -> torch.Tensor:
    """Activations (B, n_units) of ``layer`` for inputs ``x`` (autograd allowed).

    A head's activation is the norm of its head_dim slice, averaged over positions."""
    got: list[torch.Tensor] = []

    def read(units: torch.Tensor) -> None:
        if layer.is_heads:
            got.append(units.norm(dim=-1).mean(dim=1))
        else:
            got.append(_per_unit(units, layer.channel_axis))
        raise _StopForwardError

    handle = unit_hook(model, layer, read)
    try:
        model(x)
    except _StopForwardError:
        pass
    finally:
        handle.remove()
    if not got:
        raise RuntimeError(f"layer {layer.name!r} did not run in the forward pass")
    return got[0]


def layer_activations(model: nn.Module, layer: Layer, inputs: torch.Tensor,
                      batch_size: int = 256) -> torch.Tensor:
    """Activations (N, n_units) of every unit of ``layer`` on ``inputs``."""
    outs = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            outs.append(_capture(model, layer, inputs[start:start + batch_size]).float().cpu())
    return torch.cat(outs)


# -------------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class Layout:
    """How one example's axes are used: ``channel`` axis and ``spatial`` axes."""

    kind: str  # "image", "signal", "sequence", "vector", "other"
    channel: int
    spatial: tuple[int, ...]


def input_layout(model: nn.Module, example: torch.Tensor) -> Layout:
    """The layout of one example (shape without the batch axis)."""
    nd = example.ndim
    if nd == 3:
        return Layout("image", 0, (1, 2))
    if nd == 2:
        first = next((m for m in model.modules()
                      if isinstance(m, (nn.Conv1d, nn.Linear, nn.MultiheadAttention))
                      or getattr(m, "kind", None) in ("Conv1d", "Linear")), None)
        is_conv = isinstance(first, nn.Conv1d) or getattr(first, "kind", None) == "Conv1d"
        return Layout("signal", 0, (1,)) if is_conv else Layout("sequence", 1, (0,))
    if nd == 1:
        return Layout("vector", 0, ())
    return Layout("other", 0, tuple(range(1, nd)))


# ---------------------------------------------------------------------- feature vis
def _to_channels_first(x: torch.Tensor, layout: Layout) -> torch.Tensor:
    """(B, *example) -> (B, C, *spatial)."""
    perm = [0, 1 + layout.channel] + [1 + a for a in layout.spatial]
    return x.permute(*perm)


def _from_channels_first(x: torch.Tensor, layout: Layout) -> torch.Tensor:
    perm = [0, 1 + layout.channel] + [1 + a for a in layout.spatial]
    inverse = [perm.index(i) for i in range(len(perm))]
    return x.permute(*inverse)


def _spectrum_scale(spatial: Sequence[int], decay: float) -> torch.Tensor:
    """1 / |frequency|^decay on the rfftn grid of ``spatial``."""
    freqs = [torch.fft.fftfreq(s) for s in spatial[:-1]] + [torch.fft.rfftfreq(spatial[-1])]
    grids = torch.meshgrid(*freqs, indexing="ij")
    radius = torch.sqrt(sum(g**2 for g in grids))
    return 1.0 / radius.clamp_min(1.0 / max(spatial)) ** decay


def feature_visualization(
    model: nn.Module,
    layer: Layer,
    unit: int,
    data: torch.Tensor,
    steps: int = 96,
    lr: float = 0.05,
    jitter: int | None = None,
    decay: float = 1.0,
    l2: float = 0.1,
    seed: int = 0,
) -> tuple[torch.Tensor, float]:
    """An input (one example's shape) that excites ``unit`` of ``layer``, and its activation.

    ``data`` (N, ...) sets the layout, the channel correlation and the value range; ``l2``
    weighs a penalty on the pre-sigmoid values (relative to the activation) that keeps the
    input away from the range's bounds.
    """
    if not data.is_floating_point():
        raise ValueError("feature visualisation needs float inputs (not token ids)")
    gen = torch.Generator().manual_seed(seed)
    layout = input_layout(model, data[0])
    ref = _to_channels_first(data.detach().float().cpu(), layout)  # (N, C, *spatial)
    c = ref.shape[1]
    spatial = tuple(ref.shape[2:])
    flat = ref.transpose(0, 1).reshape(c, -1)
    lo = torch.quantile(flat, 0.005, dim=1) if flat.shape[1] < 16_000_000 else flat.min(1).values
    hi = torch.quantile(flat, 0.995, dim=1) if flat.shape[1] < 16_000_000 else flat.max(1).values
    hi = torch.maximum(hi, lo + 1e-3)
    mean = flat.mean(1)
    corr = torch.corrcoef(flat) if c > 1 else torch.ones(1, 1)
    corr = torch.nan_to_num(corr) + 1e-3 * torch.eye(c)
    mix = torch.linalg.cholesky(corr)
    mix = mix / mix.norm(dim=1, keepdim=True).max()
    frac = ((mean - lo) / (hi - lo)).clamp(0.05, 0.95)
    offset = torch.log(frac / (1 - frac))
    shape_c = [1, c] + [1] * len(spatial)
    lo_, span, offset_ = (t.reshape(shape_c) for t in (lo, hi - lo, offset))
    batch = 2  # two starts (and a batch of 2 suits exported programs' dynamic batch)
    if spatial:
        scale = _spectrum_scale(spatial, decay)
        freq_shape = (*spatial[:-1], spatial[-1] // 2 + 1)
        param = (0.01 * torch.randn(batch, c, *freq_shape, 2, generator=gen)).requires_grad_()
    else:
        param = (0.1 * torch.randn(batch, c, generator=gen)).requires_grad_()
    shift = jitter if jitter is not None else max(1, min(spatial) // 8) if spatial else 0
    device = next((p.device for p in model.parameters()), torch.device("cpu"))

    def latent() -> torch.Tensor:
        if spatial:
            spec = torch.view_as_complex(param) * scale
            dims = tuple(range(2, 2 + len(spatial)))
            z = torch.fft.irfftn(spec, s=spatial, dim=dims, norm="ortho")
            z = z * (float(np.sqrt(np.prod(spatial))) / 4.0)
        else:
            z = param
        return torch.einsum("ij,bj...->bi...", mix, z)

    def image() -> torch.Tensor:
        return lo_ + span * torch.sigmoid(latent() + offset_)

    opt = torch.optim.Adam([param], lr=lr)
    was_training = model.training
    with torch.inference_mode(False), torch.enable_grad():
        for _ in range(steps):
            x = image()
            if shift and spatial:
                rolls = torch.randint(-shift, shift + 1, (len(spatial),), generator=gen).tolist()
                x = torch.roll(x, rolls, dims=tuple(range(2, 2 + len(spatial))))
            act = _capture(model, layer, _from_channels_first(x, layout).to(device))[:, unit]
            scale_act = act.detach().abs().mean().clamp_min(1e-3)
            penalty = l2 * scale_act * latent().pow(2).mean()  # keeps pixels off saturation
            opt.zero_grad()
            (-act.sum() + penalty).backward()
            opt.step()
        with torch.no_grad():
            x = image()
            act = _capture(model, layer, _from_channels_first(x, layout).to(device))[:, unit]
    if was_training:  # pragma: no cover - models here are in eval mode
        model.train()
    best = int(act.argmax())
    return _from_channels_first(x, layout)[best].detach().cpu(), float(act[best])


# ----------------------------------------------------------------------------- rendering
def _denormalize(x: torch.Tensor, layout: Layout,
                 normalization: tuple[Sequence[float], Sequence[float]] | None) -> np.ndarray:
    a = x.detach().float().cpu()
    if normalization is not None and layout.kind in ("image", "signal", "sequence", "vector"):
        mean, std = (torch.tensor(list(v), dtype=torch.float32) for v in normalization)
        shape = [1] * a.ndim
        shape[layout.channel] = -1
        if mean.numel() == a.shape[layout.channel]:
            a = a * std.reshape(shape) + mean.reshape(shape)
    return a.numpy()


def draw_example(ax: Any, x: torch.Tensor, layout: Layout,
                 normalization: tuple[Sequence[float], Sequence[float]] | None = None,
                 limits: tuple[float, float] | None = None) -> None:
    """Draw one example on a matplotlib axis according to its layout."""
    a = _denormalize(x, layout, normalization)
    ax.set_xticks([])
    ax.set_yticks([])
    if layout.kind == "image":
        img = np.moveaxis(a, 0, -1)
        if img.shape[-1] not in (1, 3):
            img = img.mean(-1, keepdims=True)
        lo, hi = (0.0, 1.0) if img.min() >= 0 and img.max() <= 1 else (img.min(), img.max())
        img = np.clip((img - lo) / max(hi - lo, 1e-8), 0, 1)
        if img.shape[-1] == 1:
            ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            ax.imshow(img, interpolation="nearest")
    elif layout.kind == "signal":
        for ch in a[:3]:
            ax.plot(ch, lw=1.2)
        if limits is not None:
            ax.set_ylim(*limits)
    elif layout.kind == "sequence":
        ax.imshow(a.T, aspect="auto", cmap="magma", interpolation="nearest")
    elif layout.kind == "vector":
        colours = np.where(a >= 0, "#6b8fbf", "#c77c7c")
        ax.bar(np.arange(len(a)), a, color=colours)
        ax.axhline(0, color="k", lw=0.6)
        if limits is not None:
            ax.set_ylim(*limits)
    else:
        ax.imshow(a.reshape(a.shape[0], -1), aspect="auto", cmap="magma")


@dataclass
class UnitFigures:
    """The PNGs made for one unit (paths relative to the report folder's ``figures``)."""

    rank: int
    player: str
    value: float
    examples: str | None
    featvis: str | None
    featvis_activation: float | None = None
    note: str = ""


def unit_figures(
    model: nn.Module,
    players: PlayerSet,
    rows: Sequence[dict[str, Any]],
    inputs: torch.Tensor,
    targets: torch.Tensor | None,
    folder: str | os.PathLike[str],
    n_examples: int = 5,
    feature_vis: bool = True,
    steps: int = 96,
    seed: int = 0,
    normalization: tuple[Sequence[float], Sequence[float]] | None = None,
    class_names: Sequence[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[UnitFigures]:
    """For each row (``{rank, player, value}``), the most / least activating examples and a
    feature visualisation, saved as PNGs in ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    x = inputs.detach()
    if x.ndim == 4 and not x.is_contiguous():
        x = x.contiguous()
    layout = input_layout(model, x[0])
    limits = None
    if layout.kind in ("signal", "vector") and x.is_floating_point():
        limits = (float(x.min()), float(x.max()))
    cache: dict[str, torch.Tensor] = {}
    made: list[UnitFigures] = []
    for row in rows:
        player = str(row["player"])
        name, _, unit_s = player.rpartition(":")
        layer = next(ly for ly in players.layers if ly.name == name)
        unit = int(unit_s)
        if name not in cache:
            cache[name] = layer_activations(model, layer, x)
        acts = cache[name][:, unit]
        k = min(n_examples, len(acts))
        order = torch.argsort(acts, descending=True)
        pick = [("most", order[:k]), ("least", order[-k:].flip(0))]
        labels = []
        for _, idx in pick:
            for i in idx.tolist():
                cls = ""
                if targets is not None:
                    t = int(targets[i])
                    cls = class_names[t] if class_names and t < len(class_names) else str(t)
                    cls = f"y={cls} "
                labels.append(f"{cls}a={float(acts[i]):.2f}")
        stem = f"unit{int(row['rank']):02d}"
        title = f"#{row['rank']} {player}: examples that activate it most / least"
        _examples_png(out / f"{stem}_examples.png", x, [idx for _, idx in pick], labels,
                      layout, normalization, limits, title)
        fv_name, fv_act, note = None, None, ""
        if feature_vis and x.is_floating_point():
            img, fv_act = feature_visualization(model, layer, unit, x, steps=steps,
                                                seed=seed + int(row["rank"]))
            fig, ax = plt.subplots(figsize=(2.4, 2.6))
            fig.subplots_adjust(left=0.05, right=0.95, bottom=0.04, top=0.84)
            draw_example(ax, img, layout, normalization, None)
            ax.set_title(f"optimised input, a={fv_act:.2f}\n(data max {float(acts.max()):.2f})",
                         fontsize=7)
            fv_name = f"{stem}_featvis.png"
            fig.savefig(out / fv_name, dpi=90)
            plt.close(fig)
        elif feature_vis:
            note = "no feature visualisation for integer inputs"
        made.append(UnitFigures(int(row["rank"]), player, float(row["value"]),
                                f"{stem}_examples.png", fv_name, fv_act, note))
        if log is not None:
            log(f"unit {player}: figures done")
    return made


def _examples_png(
    path: Path, x: torch.Tensor, rows: Sequence[torch.Tensor], labels: Sequence[str],
    layout: Layout, normalization: tuple[Sequence[float], Sequence[float]] | None,
    limits: tuple[float, float] | None, title: str,
) -> None:
    """A grid of examples (one row per index tensor), labelled, as one PNG.

    Images are tiled into one mosaic on a single axis (much faster than one axis each).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    n_rows, k = len(rows), max(len(r) for r in rows)
    if layout.kind == "image":
        tiles = []
        for idx in rows:
            for i in idx.tolist():
                img = np.moveaxis(_denormalize(x[i].cpu(), layout, normalization), 0, -1)
                if img.shape[-1] not in (1, 3):
                    img = img.mean(-1, keepdims=True)
                tiles.append(img)
        lo = min(float(t.min()) for t in tiles)
        hi = max(float(t.max()) for t in tiles)
        if lo >= 0 and hi <= 1:
            lo, hi = 0.0, 1.0
        h, w, c = tiles[0].shape
        gx, gy = max(1, w // 8), max(3, int(round(0.45 * h)))  # gaps; gy holds labels
        mosaic = np.ones((n_rows * (h + gy), k * (w + gx) - gx, c), dtype=np.float32)
        for t_i, tile in enumerate(tiles):
            r, j = divmod(t_i, k)
            y0, x0 = r * (h + gy) + gy, j * (w + gx)
            mosaic[y0: y0 + h, x0: x0 + w] = np.clip((tile - lo) / max(hi - lo, 1e-8), 0, 1)
        fig, ax = plt.subplots(figsize=(1.5 * k, 1.7 * n_rows + 0.3))
        fig.subplots_adjust(left=0.07, right=0.99, bottom=0.01, top=0.9)
        ax.imshow(mosaic[..., 0] if c == 1 else mosaic, cmap="gray" if c == 1 else None,
                  vmin=0, vmax=1, interpolation="nearest")
        for t_i, label in enumerate(labels):
            r, j = divmod(t_i, k)
            ax.text(j * (w + gx) + w / 2, r * (h + gy) + gy * 0.8, label, ha="center",
                    va="bottom", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([(h + gy) * r + gy + h / 2 for r in range(n_rows)],
                      ["most", "least"][:n_rows], fontsize=8)
        for side in ax.spines.values():
            side.set_visible(False)
    else:
        fig, axes = plt.subplots(n_rows, k, figsize=(1.6 * k, 1.8 * n_rows + 0.4),
                                 squeeze=False)
        fig.subplots_adjust(left=0.06, right=0.99, bottom=0.03, top=0.85, wspace=0.08,
                            hspace=0.35)
        t_i = 0
        for r, idx in enumerate(rows):
            for j, i in enumerate(idx.tolist()):
                ax = axes[r][j]
                draw_example(ax, x[i].cpu(), layout, normalization, limits)
                ax.set_title(labels[t_i], fontsize=7)
                t_i += 1
            axes[r][0].set_ylabel(["most", "least"][r] if r < 2 else "", fontsize=8)
    fig.suptitle(title, fontsize=8)
    fig.savefig(path, dpi=90)
    plt.close(fig)
