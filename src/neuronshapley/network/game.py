"""The game ``V(S)``: a model, evaluation data and a metric, as a batched callable.

Any callable ``game(masks) -> values`` with ``masks`` a bool array (M, n_players) and
``values`` a float array (M,) (or (M, d) for a vector of metrics) is a game for the
estimators; :class:`ModelGame` is the one built from a PyTorch model. Optional game
attributes the estimators use: ``n_players``, ``players`` (ids), ``output_names``,
``value_range`` and ``new_walk(rng)`` (draw a fresh data batch for the next walk).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from neuronshapley.errors import GameError
from neuronshapley.network import inputs as batch
from neuronshapley.network.ablation import Ablator
from neuronshapley.network.inputs import Inputs
from neuronshapley.network.metrics import METRICS, get_metric
from neuronshapley.network.players import PlayerSet, discover_players
from neuronshapley.network.prefix import PrefixSplit, split_for_players
from neuronshapley.protocol import check_masks

PRECISIONS = {"float32": torch.float32, "tf32": torch.float32, "bfloat16": torch.bfloat16,
              "float16": torch.float16}


@contextlib.contextmanager
def cuda_math(allow_tf32: bool) -> Any:
    """Allow or forbid TF32 in CUDA convolutions and matrix products inside the block.

    PyTorch lets cuDNN convolutions use TF32 by default, which rounds operands to 10
    mantissa bits: measured on an H100, that moved the digits CNN's accuracy by one test
    image on 27 of 128 coalitions. ``"float32"`` games therefore run with TF32 off."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (cudnn.allow_tf32, matmul.allow_tf32)
    cudnn.allow_tf32 = matmul.allow_tf32 = allow_tf32
    try:
        yield
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = saved


#: On CPU, examples x masks per pass such that the activations one pass writes (as probed)
#: stay under this many bytes, and at most ``CPU_MAX_PASS``. Measured (benchmarks/engine.py):
#: throughput is flat from about 2,048 to 32,768 digits images per pass (33 KB each) and from
#: 16 to 64 EfficientNet-Lite0 images (56 MB each), lower when 16 images are split in passes
#: of 9 (each pass has a fixed cost of about one image per hooked layer); bigger passes only
#: cost memory.
CPU_PASS_BYTES = 2**30
#: At most this many bytes of cached prefix activations (the evaluation data's) per game.
PREFIX_CACHE_BYTES = 2**31
CPU_MAX_PASS = 8192


def auto_pass_size(model: nn.Module, example: Inputs, device: torch.device) -> int:
    """Examples x masks per forward pass for ``device`` (see ``ModelGame``'s pass_size)."""
    per_example = activation_bytes(model, example)
    if device.type != "cuda":
        return cpu_pass_size(per_example)
    free, _total = torch.cuda.mem_get_info(device)
    return pass_size_for_memory(free, per_example)


def activation_bytes(model: nn.Module, example: Inputs) -> int:
    """Bytes of the module outputs of one forward pass, per example (a probe pass)."""
    total = 0

    def count(_module: nn.Module, _inp: object, out: object) -> None:
        nonlocal total
        if isinstance(out, torch.Tensor):
            total += out.numel() * out.element_size()

    handles = [m.register_forward_hook(count) for m in model.modules() if m is not model]
    try:
        with torch.inference_mode():
            batch.call(model, example)
    finally:
        for h in handles:
            h.remove()
    return max(total // max(batch.n_rows(example), 1), 1)


def cpu_pass_size(bytes_per_example: int) -> int:
    """``CPU_PASS_BYTES`` over one example's activation bytes, within [1, CPU_MAX_PASS]."""
    return int(min(max(CPU_PASS_BYTES // max(bytes_per_example, 1), 1), CPU_MAX_PASS))


def pass_size_for_memory(free_bytes: int, bytes_per_example: int) -> int:
    """Half the free memory over one example's activation bytes, within [64, 2**20]."""
    return int(min(max(free_bytes // 2 // bytes_per_example, 64), 1 << 20))


class ModelGame:
    """``V(S)`` = ``metric`` of ``model`` on ``(inputs, targets)`` with units outside S removed.

    Args:
        model: a trained network in eval mode, batch dimension first. Its output may be a
            tensor, a tuple (the first element is used) or an object with ``.logits``.
        inputs: evaluation inputs, a tensor (N, ...) or a mapping of tensors sharing the
            batch axis, passed as keyword arguments (``input_ids``, ``attention_mask``,
            ``token_type_ids`` of a Hugging Face model). With an ``attention_mask``, mean
            replacement averages over real tokens only, and (when ``extra`` is None) the
            metric gets ``extra={"attention_mask": mask}`` (the next-token metrics read the
            last real token from it).
        targets: labels, tensor (N,) (for next-token metrics: the target token ids).
        metric: name from :data:`neuronshapley.network.metrics.METRICS` or a callable
            ``(outputs (M, B, C), targets (B,), extra) -> (M,) or (M, d)``.
        players: a :class:`PlayerSet`, or layer names / glob patterns, or None for all
            conv and hidden linear units.
        reference: inputs whose mean activations replace removed units (default: ``inputs``),
            of the same form as ``inputs``.
        replacement: ``"mean"`` (paper), ``"channel"`` or ``"zero"``.
        extra: per-example data handed to the metric (e.g. group labels), indexed like inputs.
        batch_size: examples per forward pass (default: all, capped by ``pass_size``).
        pass_size: examples times masks per forward pass; masks per pass follow from it.
            None sizes it from the activation bytes one example needs (measured with a
            probe pass): on CPU, 1 GiB of activations per pass, at most 8192 (e.g. 8192
            for the digits CNN, 19 for EfficientNet-Lite0 at 224 x 224); on a GPU, half of
            its free memory.
        precision: ``"float32"`` (on CUDA with TF32 off, so a GPU gives the CPU's values up
            to float rounding), ``"tf32"`` (CUDA convolutions and matrix products in TF32),
            or ``"bfloat16"`` / ``"float16"`` to run the passes under autocast. Anything but
            float32 is only accepted when it leaves the metric unchanged on the full and the
            empty coalition; otherwise the game refuses it.
        walk_sample: if set, each permutation walk draws this many examples at random
            (the paper's "fresh batch per permutation"); otherwise all examples are used.
        channels_last: use the channels-last memory format for 4-D activations (faster
            convolutions on CPU); None picks it for models with ``Conv2d`` on CPU. This
            converts ``model`` in place (``model.to(memory_format=...)``): it computes the
            same function, up to float rounding (~1e-7).
        prefix_cache: compute the layers before the first player layer once per example
            and run only the rest for every mask (:mod:`neuronshapley.network.prefix`; skip
            connections and branches included). The values are the same as without it.
            Models that cannot be split by ``torch.fx``, and mapping inputs, run whole.
        prefix_cache_bytes: the cache holds at most this many bytes of activations (the
            evaluation data's); above it, the model runs whole.
    """

    def __init__(
        self,
        model: nn.Module,
        inputs: Inputs,
        targets: torch.Tensor,
        metric: str | Callable[..., torch.Tensor] = "accuracy",
        players: PlayerSet | Sequence[str] | str | None = None,
        reference: Inputs | None = None,
        replacement: str = "mean",
        extra: Any = None,
        batch_size: int | None = None,
        pass_size: int | None = None,
        walk_sample: int | None = None,
        channels_last: bool | None = None,
        precision: str = "float32",
        prefix_cache: bool = True,
        prefix_cache_bytes: int = PREFIX_CACHE_BYTES,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise GameError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if model.training:
            raise GameError(
                "the model is in training mode (dropout and batch-norm would make V random): "
                "call model.eval() first"
            )
        inputs = batch.as_inputs(inputs)
        targets = torch.as_tensor(targets)
        n = batch.n_rows(inputs)
        for name, tensor in _named_tensors(inputs, "evaluation inputs"):
            check_finite(tensor, name)
        if reference is not None:
            reference = batch.as_inputs(reference)
            for name, tensor in _named_tensors(reference, "reference data"):
                check_finite(tensor, name)
            if batch.n_rows(reference) == 0:
                raise GameError("the reference data is empty: give at least one example, or "
                                "reference=None to use the inputs")
        if n != len(targets):
            raise GameError(f"{n} inputs but {len(targets)} targets: they must match")
        if n == 0:
            raise GameError("the evaluation data is empty")
        if walk_sample is not None and not 0 < walk_sample <= n:
            raise GameError(f"walk_sample must be in 1..{n}, got {walk_sample}")
        if pass_size is not None and pass_size < 1:
            raise GameError("pass_size must be positive")
        if precision not in PRECISIONS:
            raise GameError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")
        if isinstance(metric, str) and metric in METRICS:  # built-ins score class labels
            targets = check_labels(targets, _n_classes(model, batch.take(inputs, slice(0, 1))),
                                   "targets")
        self.model = model
        self.players_set = players if isinstance(players, PlayerSet) else discover_players(
            model, players
        )
        self.metric = get_metric(metric)
        self.metric_name = metric if isinstance(metric, str) else getattr(
            metric, "__name__", type(metric).__name__
        )
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        self.device = device
        image = isinstance(inputs, torch.Tensor) and inputs.ndim == 4
        if channels_last is None:
            channels_last = device.type == "cpu" and any(
                isinstance(mod, nn.Conv2d) for mod in model.modules()
            ) and image
        self.channels_last = bool(channels_last and image)
        self.inputs = self._prepare(inputs)
        self.targets = targets.to(device)
        tokens = batch.token_mask(self.inputs)
        if extra is None and tokens is not None:
            extra = {batch.ATTENTION_MASK: self.inputs[batch.ATTENTION_MASK]}  # type: ignore[index]
        self.extra = extra
        self.precision = "float32"
        self.walk_sample = walk_sample
        self._subset: torch.Tensor | None = None
        self._reference_given = reference
        self._data_digest: bytes | None = None
        ref = self._prepare(reference) if reference is not None else self.inputs
        if self.channels_last:
            self.model = model.to(memory_format=torch.channels_last)
        #: The model split before its first player layer (see :mod:`.prefix`), or None.
        self.split: PrefixSplit | None = None
        self._cut: Inputs | None = None  # the prefix's outputs for ``inputs``, computed once
        if prefix_cache and isinstance(self.inputs, torch.Tensor):
            self.split = split_for_players(self.model, self.players_set, self.inputs[:2])
        runs = self.split.suffix if self.split is not None else self.model
        if self.split is not None:
            self._cut = self._prefix_of(self.inputs, pass_size or 256)
            self._cut_stamp = self._prefix_stamp()
            if sum(t.numel() * t.element_size() for t in batch.tensors(self._cut)) > int(
                    prefix_cache_bytes):
                self.split, self._cut, runs = None, None, self.model  # too big to keep
        if pass_size is None:  # sized from the activations of what runs per mask
            example = batch.take(self._cut if self._cut is not None else self.inputs,
                                 slice(0, 1))
            pass_size = auto_pass_size(runs, example, device)
        self.batch_size = min(batch_size or n, pass_size, n)
        self.pass_size = pass_size
        ref_in = self._prefix_of(ref, pass_size) if self.split is not None else ref
        with self._autocast():
            self.ablator = Ablator(runs, self.players_set, replacement).fit_reference(
                ref_in, batch_size=max(1, min(batch.n_rows(ref), pass_size))
            )
        self.replacement = replacement
        self.evaluations = 0
        probe = self._values(np.ones((1, self.n_players), dtype=bool))
        if precision != "float32":
            self._check_precision(precision)
        self.output_dim = 1 if probe.ndim == 1 else probe.shape[1]
        names = getattr(self.metric, "output_names", None)
        self.output_names: list[str] | None = (
            list(names(self.output_dim)) if names and probe.ndim == 2 else
            ([f"output{j}" for j in range(self.output_dim)] if probe.ndim == 2 else None)
        )
        self.value_range: float | None = None

    # ------------------------------------------------------------------ facts
    @property
    def n_players(self) -> int:
        return self.players_set.n_players

    @property
    def players(self) -> list[str]:
        return self.players_set.ids

    @property
    def masks_per_pass(self) -> int:
        """How many masks one forward pass evaluates, from ``pass_size``."""
        n_examples = self.walk_sample or batch.n_rows(self.inputs)
        return max(1, self.pass_size // min(n_examples, self.batch_size))

    def fingerprint(self) -> str:
        """A 16-hex-digit hash of everything that defines ``V``: the model's class and
        weights, the players, the evaluation inputs and targets, the reference data, the
        metric's ``extra`` data, the metric, the replacement, ``walk_sample`` and the
        precision. Resumes and merges compare it. The data are hashed once (on the first
        call); the weights on every call, so a changed model gives a new fingerprint."""
        if self._data_digest is None:
            d = hashlib.sha256()
            for name, t in (*_named_tensors(self.inputs, "inputs"), ("targets", self.targets)):
                _hash_tensor(d, name, t)
            if self._reference_given is None:
                d.update(b"reference=inputs")
            else:
                for name, t in _named_tensors(self._reference_given, "reference"):
                    _hash_tensor(d, name, t)
            _hash_extra(d, self.extra)
            self._data_digest = d.digest()
        h = hashlib.sha256(self._data_digest)
        h.update(f"{type(self.model).__module__}.{type(self.model).__qualname__}".encode())
        for name, t in sorted(self.model.state_dict().items()):
            _hash_tensor(h, name, t)
        h.update(f"|{self.metric_name}|{self.replacement}|{self.walk_sample}|"
                 f"{self.precision}|".encode())
        h.update("|".join(self.players).encode())
        return h.hexdigest()[:16]

    # --------------------------------------------------------------- sampling
    def new_walk(self, rng: np.random.Generator) -> None:
        """Draw the data batch for the next permutation walk (no-op without ``walk_sample``)."""
        if self.walk_sample is None:
            return
        idx = rng.choice(batch.n_rows(self.inputs), size=self.walk_sample, replace=False)
        self._subset = torch.as_tensor(np.sort(idx), device=self.device)

    @contextlib.contextmanager
    def all_examples(self) -> Iterator[None]:
        """Inside, coalitions are scored on every example, not the walk's drawn batch."""
        saved, self._subset = self._subset, None
        try:
            yield
        finally:
            self._subset = saved

    # ------------------------------------------------------------- evaluation
    def __call__(self, masks: np.ndarray) -> np.ndarray:
        """Values of the coalitions in ``masks`` (M, n_players) -> (M,) or (M, d)."""
        arr = check_masks(masks, self.n_players)
        return self._values(arr)

    @torch.inference_mode()
    def _prefix_of(self, x: Inputs, chunk: int) -> Inputs:
        """The prefix's outputs for inputs ``x`` (a mapping: cut name -> tensor (N, ...))."""
        assert self.split is not None and isinstance(x, torch.Tensor)
        parts = [self.split.run_prefix(x[i : i + chunk]) for i in range(0, len(x), chunk)]
        names = self.split.inputs
        return {name: torch.cat([p[j] for p in parts]) for j, name in enumerate(names)}

    def _prefix_stamp(self) -> tuple[int, ...]:
        """In-place edit counters of the prefix's weights and of the evaluation inputs."""
        assert self.split is not None
        tensors = [*self.split.prefix.parameters(), *self.split.prefix.buffers(),
                   *batch.tensors(self.inputs)]
        return tuple(t._version for t in tensors)

    def _values(self, masks: np.ndarray) -> np.ndarray:
        inputs, targets, extra = self.inputs, self.targets, self.extra
        if self._cut is not None:
            if self._prefix_stamp() != self._cut_stamp:  # weights or data edited in place
                self._cut = self._prefix_of(self.inputs, self.pass_size)
                self._cut_stamp = self._prefix_stamp()
            inputs = self._cut
        if self._subset is not None:
            inputs, targets = batch.take(inputs, self._subset), targets[self._subset]
            extra = _take(extra, self._subset)
        mask_t = torch.from_numpy(np.ascontiguousarray(masks))
        n = batch.n_rows(inputs)
        per_pass = max(1, self.pass_size // min(n, self.batch_size))
        chunks = []
        for m0 in range(0, len(mask_t), per_pass):
            mchunk = mask_t[m0 : m0 + per_pass]
            with self._autocast():
                outs = [
                    self.ablator.forward(
                        batch.take(inputs, slice(b0, b0 + self.batch_size)), mchunk
                    ).float()
                    for b0 in range(0, n, self.batch_size)
                ]
            outputs = outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)
            vals = self.metric(outputs, targets, extra)
            chunks.append(torch.as_tensor(vals).detach().double().cpu())
        values = torch.cat(chunks).numpy()
        self.evaluations += len(masks)
        if values.shape[0] != len(masks) or values.ndim not in (1, 2):
            raise GameError(
                f"metric {self.metric_name!r} returned shape {values.shape}; expected "
                f"({len(masks)},) or ({len(masks)}, d)"
            )
        if not np.isfinite(values).all():
            raise GameError(
                f"metric {self.metric_name!r} returned NaN or infinite values; check the metric "
                "(e.g. a class or group with no examples) and the model's outputs"
            )
        return values

    def _autocast(self) -> Any:
        """The numeric context of a forward pass at this game's precision."""
        if self.device.type != "cuda":
            if self.precision in ("float32", "tf32"):
                return contextlib.nullcontext()
            return torch.autocast(self.device.type, dtype=PRECISIONS[self.precision])
        stack = contextlib.ExitStack()
        stack.enter_context(cuda_math(allow_tf32=self.precision == "tf32"))
        if self.precision not in ("float32", "tf32"):
            stack.enter_context(torch.autocast("cuda", dtype=PRECISIONS[self.precision]))
        return stack

    def _check_precision(self, precision: str) -> None:
        """Switch to ``precision`` only if V(N) and V(empty) stay exactly the same."""
        ends = np.zeros((2, self.n_players), dtype=bool)
        ends[0] = True
        counted = self.evaluations
        exact = self._values(ends)
        self.precision = precision
        try:
            mixed = self._values(ends)
        except RuntimeError as exc:  # an op without a kernel for this dtype on this device
            self.precision = "float32"
            raise GameError(f"precision={precision!r} does not run here: {exc}") from exc
        finally:
            self.evaluations = counted  # checks are not part of the estimate's budget
        if not np.allclose(mixed, exact, rtol=0, atol=1e-6):
            self.precision = "float32"
            raise GameError(
                f"precision={precision!r} changes the metric (V(N), V(empty): "
                f"{exact.tolist()} in float32, {mixed.tolist()} in {precision}); "
                "use precision='float32'"
            )

    def _prepare(self, x: Inputs) -> Inputs:
        if not isinstance(x, torch.Tensor):
            return batch.to_device(x, self.device)
        x = x.to(self.device)
        if x.is_floating_point() and self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def __repr__(self) -> str:
        return (
            f"ModelGame({type(self.model).__name__}, {self.n_players} players in "
            f"{len(self.players_set.layers)} layers, {batch.n_rows(self.inputs)} examples, "
            f"metric={self.metric_name!r}, replacement={self.replacement!r})"
        )


def check_finite(x: torch.Tensor, what: str, error: type[Exception] = GameError) -> None:
    """Raise ``error`` naming ``what`` if the float tensor ``x`` (N, ...) holds NaN or
    infinite entries (how many, in how many examples)."""
    if not x.is_floating_point():
        return
    bad = ~torch.isfinite(x)
    n_bad = int(bad.sum())
    if n_bad:
        rows = torch.nonzero(bad.reshape(len(x), -1).any(dim=1)).flatten() if x.ndim else None
        where = (f" in {len(rows)} of {len(x)} examples (e.g. {rows[:5].tolist()})"
                 if rows is not None else "")
        raise error(
            f"the {what} hold {n_bad} NaN or infinite entries{where}: every value would be "
            f"computed from them; clean or drop those examples"
        )


def check_labels(targets: torch.Tensor, n_classes: int, what: str = "labels") -> torch.Tensor:
    """``targets`` as int64 class ids, checked against a model that scores ``n_classes``.

    Whole-valued floats and booleans are converted; fractional, negative or too large
    labels raise :class:`GameError`. Returns the labels (N,) int64."""
    y = torch.as_tensor(targets)
    if y.ndim != 1:
        raise GameError(f"{what} have shape {tuple(y.shape)}; expected one class id per "
                        "example (N,) (for one-hot labels use y.argmax(1))")
    if y.is_floating_point():
        whole = torch.isfinite(y) & (y == y.round())
        if not bool(whole.all()):
            i = int(torch.nonzero(~whole).flatten()[0])
            raise GameError(f"{what} hold {int((~whole).sum())} non-integer values (e.g. "
                            f"{float(y[i])!r} at {i}): labels must be class ids "
                            f"0..{n_classes - 1}")
    elif y.dtype.is_complex:
        raise GameError(f"{what} are complex: labels must be class ids 0..{n_classes - 1}")
    y = y.long()
    if len(y) and int(y.min()) < 0:
        raise GameError(f"{what} hold negative values ({int(y.min())}): labels must be class "
                        f"ids 0..{n_classes - 1}")
    if len(y) and int(y.max()) >= n_classes:
        raise GameError(
            f"{what} go up to {int(y.max())} but the model scores {n_classes} classes (0.."
            f"{n_classes - 1}): check the labels' encoding (--y-key) or the model's output layer"
        )
    return y


def _n_classes(model: nn.Module, example: Inputs) -> int:
    """The width of the model's scores on one example (a probe pass): C of (N, C) class
    scores, or the vocabulary V of a language model's (N, L, V)."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with torch.inference_mode():
        out = batch.call(model, batch.to_device(example, device))
    try:
        scores = batch.model_output(out)
    except GameError:
        scores = None
    if scores is None or scores.ndim not in (2, 3):
        shape = tuple(scores.shape) if scores is not None else type(out).__name__
        raise GameError(f"the model's output is {shape}; the built-in metrics need scores "
                        "(N, classes) or token logits (N, L, vocabulary): flatten or pool it "
                        "in the model, or pass a callable metric")
    return int(scores.shape[-1])


def _named_tensors(inputs: Inputs, what: str) -> list[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` of a tensor or a mapping of tensors, named for messages."""
    if isinstance(inputs, torch.Tensor):
        return [(what, inputs)]
    return [(f"{what} {key!r}", inputs[key]) for key in sorted(inputs)]


def _hash_tensor(h: Any, name: str, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def _hash_extra(h: Any, extra: Any, name: str = "extra") -> None:
    if isinstance(extra, torch.Tensor):
        _hash_tensor(h, name, extra)
    elif isinstance(extra, np.ndarray) and extra.dtype != object:
        _hash_tensor(h, name, torch.from_numpy(np.ascontiguousarray(extra)))
    elif isinstance(extra, dict):
        for key in sorted(extra, key=str):
            _hash_extra(h, extra[key], f"{name}.{key}")
    else:
        h.update(f"{name}|{extra!r}|".encode())


def _take(extra: Any, idx: torch.Tensor) -> Any:
    if extra is None:
        return None
    if isinstance(extra, torch.Tensor):
        return extra[idx.to(extra.device)]
    if isinstance(extra, np.ndarray):
        return extra[idx.cpu().numpy()]
    if isinstance(extra, dict):
        return {k: _take(v, idx) for k, v in extra.items()}
    return extra

