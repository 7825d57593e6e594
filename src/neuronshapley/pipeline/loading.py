"""Load a user's model for ``neuronshapley run``: a factory and a state dict, a ``torch.export``
program, or (only when trusted) a pickled module.

Sources (:func:`load_model`):

- ``"package.module:factory"`` or ``"path/to/file.py:factory"``: the callable (a class or a
  function, called with ``factory_kwargs``) returns the ``nn.Module``; ``weights`` is a state
  dict file read with ``torch.load(weights_only=True)`` (a checkpoint dict holding it under
  ``"state_dict"`` / ``"model_state_dict"`` / ``"model"`` also works).
- ``"model.pt2"``: a program saved with ``torch.export.save``. Its graph has no conv or linear
  *modules* (``ExportedProgram.module()`` calls ``aten.conv2d`` / ``aten.linear`` functions),
  so :func:`instrument_exported` inserts a
  :class:`~neuronshapley.network.players.UnitTap` after every
  conv / linear node, at the path of the module the node came from (``"features.0"``), holding
  that module's parameters. Ids are therefore the original ones. Export with a dynamic batch
  dimension (``dynamic_shapes={"x": {0: torch.export.Dim("batch")}}``): the many masks of one
  pass are a batch ``M`` times larger, so the ablator expands the program's *input* (shapes
  inside the graph follow the input's batch size). Attention heads are not players of an
  exported program (its attention is a flat graph); its projections are left out too.
- ``"model.pt"`` holding a pickled ``nn.Module``: loaded only with ``trust_pickle=True``
  (``weights_only=False`` runs code from the file).
- ``"hf:PATH"``: a Hugging Face model saved in a local folder (see
  :mod:`neuronshapley.pipeline.hf`; nothing is downloaded, no code from the folder runs);
  its tokenizer comes with it (``LoadedModel.tokenizer``).
- TorchScript archives cannot be instrumented (TorchScript modules refuse forward hooks):
  the error says how to export the model or to load its weights into a factory instead
  (a TorchScript archive as ``weights`` is read with ``torch.jit.load``, with
  ``trust_pickle=True``).

Every problem raises :class:`ModelLoadError` (a ``ValueError``) naming the problem and the fix.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from neuronshapley.errors import ModelLoadError
from neuronshapley.network.ablation import EXPAND_INPUT_ATTR
from neuronshapley.network.players import UnitTap
from neuronshapley.pipeline.hf import is_hf_spec, load_hf

EXPORT_HINT = (
    "torch.export.save(torch.export.export(model.eval(), (example_batch,), "
    "dynamic_shapes=({0: torch.export.Dim('batch')},)), 'model.pt2')"
)


@dataclass
class LoadedModel:
    """A loaded model and what is known about it.

    ``kind`` is ``"factory"``, ``"exported"``, ``"pickle"`` or ``"huggingface"``;
    ``input_shape`` the expected input shape when the source says it (exported programs: e.g.
    ``("batch", 1, 8, 8)``); ``tokenizer`` the Hugging Face model's own tokenizer.
    """

    module: nn.Module
    kind: str
    source: str
    input_shape: tuple[int | str, ...] | None = None
    notes: list[str] = field(default_factory=list)
    training_ops: list[str] = field(default_factory=list)
    tokenizer: Any = None


# ----------------------------------------------------------------------------- entry point
def load_model(
    model: str | os.PathLike[str],
    weights: str | os.PathLike[str] | None = None,
    trust_pickle: bool = False,
    factory_kwargs: Mapping[str, Any] | None = None,
) -> LoadedModel:
    """Load ``model`` (``module:factory``, a ``.pt2`` file or a pickled module file).

    Args:
        model: the source (see the module docstring).
        weights: state dict file for a factory (ignored otherwise: an error).
        trust_pickle: allow ``torch.load(weights_only=False)`` (runs code from the file).
        factory_kwargs: keyword arguments for the factory.
    """
    text = str(model)
    path = Path(text)
    if is_hf_spec(text):
        if weights is not None:
            raise ModelLoadError(f"--weights is for a factory model; {text} holds its own "
                                 "weights: drop --weights")
        module, tokenizer, notes = load_hf(text)
        return LoadedModel(module, "huggingface", text, notes=notes, tokenizer=tokenizer)
    if _is_factory_spec(text):
        return _from_factory(text, weights, trust_pickle, dict(factory_kwargs or {}))
    if not path.exists():
        raise ModelLoadError(
            f"model {text!r} not found: give a model file (.pt2 from torch.export, or a "
            "pickled module with --trust-pickle), a factory as 'package.module:function' "
            "with --weights STATE_DICT.pt, or a Hugging Face model folder as hf:PATH"
        )
    if path.is_dir():
        raise ModelLoadError(f"model {text!r} is a folder; give a model file or module:factory "
                             f"(a Hugging Face model folder: --model hf:{text})")
    if weights is not None:
        raise ModelLoadError(
            f"--weights is for a factory model ('package.module:function'); {text!r} is a file "
            "that holds its own weights: drop --weights"
        )
    if _is_exported(path):
        return load_exported(path)
    if _is_torchscript(path):
        raise ModelLoadError(
            f"{text} is a TorchScript archive: TorchScript modules cannot take the forward "
            f"hooks that remove units. Export the model instead with {EXPORT_HINT}, or give "
            "the Python class as --model package.module:factory with --weights "
            f"{text} --trust-pickle (its weights are read from the archive)"
        )
    return _from_pickle(path, trust_pickle)


def _is_factory_spec(text: str) -> bool:
    if ":" not in text or Path(text).exists():
        return False
    mod, _, attr = text.rpartition(":")
    return bool(mod) and attr.isidentifier() and not (len(mod) == 1 and mod.isalpha())


# ------------------------------------------------------------------------------- factory
def _import_factory(spec: str) -> Any:
    mod_name, _, attr = spec.rpartition(":")
    try:
        if mod_name.endswith(".py"):
            file = Path(mod_name)
            if not file.is_file():
                raise ModelLoadError(f"model file {mod_name!r} not found (from {spec!r})")
            name = f"_neuronshapley_user_{abs(hash(str(file.resolve())))}"
            module_spec = importlib.util.spec_from_file_location(name, file)
            if module_spec is None or module_spec.loader is None:
                raise ModelLoadError(f"cannot import {mod_name!r} as a Python module")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        else:
            if "" not in sys.path and os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(mod_name)
    except ModelLoadError:
        raise
    except ImportError as exc:
        raise ModelLoadError(
            f"cannot import {mod_name!r} for model {spec!r}: {exc}. Give an importable module "
            "(installed, or on PYTHONPATH / in the current folder) or a file 'path/model.py:name'"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed to run
        raise ModelLoadError(
            f"importing {mod_name!r} for model {spec!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ModelLoadError(
            f"{mod_name!r} has no attribute {attr!r}: give 'module:name' where name is a class "
            "or function returning the nn.Module"
        ) from None


def _from_factory(
    spec: str,
    weights: str | os.PathLike[str] | None,
    trust_pickle: bool,
    kwargs: dict[str, Any],
) -> LoadedModel:
    factory = _import_factory(spec)
    if not callable(factory):
        raise ModelLoadError(f"{spec!r} is a {type(factory).__name__}, not a class or function")
    try:
        module = factory(**kwargs)
    except Exception as exc:  # noqa: BLE001 - the user's factory failed
        raise ModelLoadError(
            f"calling the model factory {spec!r} failed: {type(exc).__name__}: {exc}"
            + (" (check model_kwargs in the config)" if kwargs else "")
        ) from None
    if not isinstance(module, nn.Module):
        raise ModelLoadError(
            f"the factory {spec!r} returned a {type(module).__name__}, not a torch.nn.Module"
        )
    loaded = LoadedModel(module, "factory", spec)
    if weights is None:
        loaded.notes.append("no --weights: the factory's own (untrained or built-in) weights")
        return loaded
    state = load_state_dict(weights, trust_pickle)
    try:
        result = module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(_state_mismatch(spec, weights, module, state, exc)) from None
    del result
    loaded.notes.append(f"weights from {weights}")
    return loaded


def load_state_dict(
    path: str | os.PathLike[str], trust_pickle: bool = False
) -> dict[str, torch.Tensor]:
    """Read a state dict (``torch.load(weights_only=True)``), unwrapping common checkpoints."""
    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"weights file {str(path)!r} not found")
    if _is_torchscript(p):
        if not trust_pickle:
            raise ModelLoadError(
                f"{p} is a TorchScript archive; reading its weights runs torch.jit.load: "
                "pass --trust-pickle if you trust the file"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return dict(torch.jit.load(str(p), map_location="cpu").state_dict())
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(f"cannot read TorchScript archive {p}: {exc}") from None
    if _is_exported(p):
        raise ModelLoadError(
            f"{p} is a torch.export program, not a state dict: pass it as the model "
            f"(--model {p}) without a factory"
        )
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds here
        msg = str(exc).split("\n")[0]
        if "Weights only load failed" in str(exc):
            raise ModelLoadError(
                f"{p} is not a plain state dict (it pickles Python objects, e.g. a whole "
                "module): save model.state_dict() instead, or pass the file as the model with "
                "--trust-pickle if you trust it"
            ) from None
        raise ModelLoadError(f"{p} is not a PyTorch weights file: {msg}") from None
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(
                isinstance(v, torch.Tensor) for v in inner.values()
            ):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelLoadError(
            f"{p} does not hold a state dict (a mapping of names to tensors) but a "
            f"{type(obj).__name__}: save it with torch.save(model.state_dict(), path)"
        )
    return {str(k).removeprefix("module."): v for k, v in obj.items()}


def _state_mismatch(
    spec: str,
    weights: str | os.PathLike[str],
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    exc: Exception,
) -> str:
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        parts.append(
            f"unexpected {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}"
        )
    if shapes:
        parts.append(f"shape mismatch {'; '.join(shapes[:3])}")
    detail = "; ".join(parts) or str(exc).split("\n")[0]
    return (
        f"the weights in {weights} do not fit the model built by {spec!r} ({detail}): "
        "check that the factory builds the same architecture (and its model_kwargs)"
    )


# -------------------------------------------------------------------------------- pickle
def _from_pickle(path: Path, trust_pickle: bool) -> LoadedModel:
    if not _looks_like_torch_file(path):
        raise ModelLoadError(
            f"{path} is not a model file torch can read (neither a torch.save archive nor a "
            f"pickle). Give a .pt2 from torch.export ({EXPORT_HINT}) or a factory with --weights"
        )
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        if "Weights only load failed" not in str(exc):
            raise ModelLoadError(
                f"{path} is not a model file torch can read: {str(exc).splitlines()[0]}. "
                f"Give a .pt2 from torch.export ({EXPORT_HINT}) or a factory with --weights"
            ) from None
        obj = None
    if isinstance(obj, Mapping):
        raise ModelLoadError(
            f"{path} holds a state dict (weights only), not a model: give the architecture as "
            f"--model package.module:factory and this file as --weights {path}"
        )
    if obj is not None:
        raise ModelLoadError(
            f"{path} holds a {type(obj).__name__}, not a model: give a .pt2 from torch.export "
            "or a factory with --weights"
        )
    if not trust_pickle:
        raise ModelLoadError(
            f"{path} is a pickled Python object (e.g. torch.save(model)); loading it runs code "
            "from the file. Pass --trust-pickle if you trust it, or better give a .pt2 from "
            f"torch.export ({EXPORT_HINT}) or a factory with --weights STATE_DICT"
        )
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(
            f"unpickling {path} failed: {type(exc).__name__}: {exc} (the classes it was "
            "saved with must be importable: run from the project's folder or set PYTHONPATH)"
        ) from None
    if not isinstance(obj, nn.Module):
        raise ModelLoadError(f"{path} holds a {type(obj).__name__}, not a torch.nn.Module")
    if isinstance(obj, torch.jit.ScriptModule):
        raise ModelLoadError(
            f"{path} is a TorchScript module: it cannot take forward hooks; export the model "
            f"with {EXPORT_HINT}"
        )
    return LoadedModel(obj, "pickle", str(path), notes=["unpickled with --trust-pickle"])


# ------------------------------------------------------------------------ torch.export
def _looks_like_torch_file(path: Path) -> bool:
    if zipfile.is_zipfile(path):
        return True
    with path.open("rb") as fh:
        return fh.read(1) == b"\x80"  # a pickle (protocol 2 or later): torch's legacy format


def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def _is_exported(path: Path) -> bool:
    if path.suffix == ".pt2":
        return True
    return any(n.endswith("models/model.json") or "/serialized_exported_program" in n
               for n in _zip_names(path))


def _is_torchscript(path: Path) -> bool:
    names = _zip_names(path)
    return any("/code/__torch__" in n for n in names) or any(
        n.endswith("constants.pkl") for n in names
    )


_UNIT_OPS = {
    "aten.conv1d.default": ("Conv1d", 1),
    "aten.conv2d.default": ("Conv2d", 1),
    "aten.conv3d.default": ("Conv3d", 1),
    "aten.convolution.default": ("Conv", 1),
    "aten.linear.default": ("Linear", -1),
    "aten.addmm.default": ("Linear", -1),
}


def load_exported(path: str | os.PathLike[str]) -> LoadedModel:
    """Load a ``torch.export`` program and instrument its conv / linear nodes."""
    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(
            f"cannot load {path} with torch.export.load: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''} (was it saved with "
            "torch.export.save by a compatible torch version?)"
        ) from None
    user_inputs = list(program.graph_signature.user_inputs)
    if len(user_inputs) != 1:
        raise ModelLoadError(
            f"{path} takes {len(user_inputs)} inputs; neuronshapley feeds one tensor: export a "
            "wrapper module whose forward takes one batch tensor"
        )
    try:
        gm = program.module()
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"cannot build a module from {path}: {exc}") from None
    shape = _input_shape(gm)
    if shape is not None and shape and isinstance(shape[0], int):
        raise ModelLoadError(
            f"{path} was exported with a fixed batch size of {shape[0]}; the masks of one pass "
            f"need a dynamic batch: re-export with {EXPORT_HINT}"
        )
    taps = instrument_exported(gm)
    if not taps:
        raise ModelLoadError(
            f"{path} has no conv or linear operation (aten.conv*/linear/addmm) to value"
        )
    loaded = LoadedModel(gm, "exported", str(path), input_shape=shape)
    loaded.training_ops = training_ops(gm)
    loaded.notes.append(
        f"torch.export program: {len(taps)} conv/linear operations instrumented "
        f"({', '.join(taps[:4])}{' ...' if len(taps) > 4 else ''})"
    )
    return loaded


def _input_shape(gm: torch.fx.GraphModule) -> tuple[int | str, ...] | None:
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            val = node.meta.get("val")
            if isinstance(val, torch.Tensor):
                return tuple(
                    int(d) if isinstance(d, int) else ("batch" if i == 0 else str(d))
                    for i, d in enumerate(val.shape)
                )
            return None
    return None


def _module_path(node: torch.fx.Node) -> tuple[str | None, str]:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return None, ""
    path, kind = list(stack.values())[-1]
    kind_name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    return str(path).split("@")[0] or None, kind_name.rsplit(".", 1)[-1]


def instrument_exported(gm: torch.fx.GraphModule) -> list[str]:
    """Insert a :class:`UnitTap` after every conv / linear node of ``gm``; return their paths.

    Also marks ``gm`` as evaluation-mode (``training = False`` on every module: the graph's
    ops carry their own mode flags, see :func:`training_ops`) and asks the ablator to expand
    the input batch rather than an intermediate one.
    """
    paths: list[str] = []
    for node in list(gm.graph.nodes):
        if node.op != "call_function":
            continue
        op = _UNIT_OPS.get(str(node.target))
        if op is None:
            continue
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor) or val.dim() < 2:
            continue
        path, module_kind = _module_path(node)
        if module_kind == "MultiheadAttention":
            continue  # attention internals: not batch-first, not neurons
        if str(node.target) == "aten.convolution.default" and bool(node.args[6]):
            continue  # transposed convolution: not a player kind
        kind, axis = op
        if kind == "Conv":
            kind = f"Conv{val.dim() - 2}d"
        n_units = val.shape[axis]
        if not isinstance(n_units, int):
            continue
        name = _place_tap(gm, path or node.name, node.name, UnitTap(kind, n_units, axis))
        with gm.graph.inserting_after(node):
            tap_node = gm.graph.call_module(name, (node,))
        tap_node.meta = dict(node.meta)
        node.replace_all_uses_with(tap_node, delete_user_cb=lambda user, t=tap_node: user is not t)
        paths.append(name)
    gm.recompile()
    for module in gm.modules():
        module.training = False
    setattr(gm, EXPAND_INPUT_ATTR, True)
    return paths


def _place_tap(gm: nn.Module, path: str, node_name: str, tap: UnitTap) -> str:
    """Put ``tap`` at ``path`` in ``gm`` (taking over a parameter holder there), or below it."""
    parent_path, _, leaf = path.rpartition(".")
    parent: nn.Module = gm
    for part in parent_path.split(".") if parent_path else []:
        child = parent._modules.get(part)
        if child is None:
            child = nn.Module()
            parent.add_module(part, child)
        parent = child
    existing = parent._modules.get(leaf)
    if existing is None and not hasattr(parent, leaf):
        parent.add_module(leaf, tap)
        return path
    if type(existing) is nn.Module:  # a parameter holder made by ExportedProgram.module()
        for pname, param in existing._parameters.items():
            tap.register_parameter(pname, param)
        for bname, buf in existing._buffers.items():
            tap.register_buffer(bname, buf, persistent=bname not in
                                existing._non_persistent_buffers_set)
        for cname, child in existing._modules.items():
            tap.add_module(cname, child)
        parent._modules[leaf] = tap
        return path
    if (
        isinstance(existing, UnitTap)
        and (existing.kind, existing.n_units, existing.channel_axis)
        == (tap.kind, tap.n_units, tap.channel_axis)
        and not any(isinstance(c, UnitTap) for c in existing.children())
    ):
        return path  # the same module called again: the same players
    holder = existing if isinstance(existing, nn.Module) else parent
    prefix = path if isinstance(existing, nn.Module) else parent_path
    holder.add_module(node_name, tap)
    return f"{prefix}.{node_name}" if prefix else node_name


def training_ops(gm: torch.fx.GraphModule) -> list[str]:
    """Nodes of an exported graph that run in training mode (dropout / batch-norm flags)."""
    found = []
    for node in gm.graph.nodes:
        flag = _train_flag(node)
        if flag is not None and flag[1]:
            found.append(node.name)
    return found


def set_exported_eval(gm: torch.fx.GraphModule) -> int:
    """Switch training-mode dropout / batch-norm nodes of ``gm`` to evaluation; returns how many."""
    changed = 0
    for node in gm.graph.nodes:
        flag = _train_flag(node)
        if flag is None or not flag[1]:
            continue
        index, _ = flag
        if isinstance(index, int):
            args = list(node.args)
            args[index] = False
            node.args = tuple(args)
        else:
            node.kwargs = {**node.kwargs, index: False}
        changed += 1
    if changed:
        gm.recompile()
    return changed


def _train_flag(node: torch.fx.Node) -> tuple[int | str, bool] | None:
    """(position or name, value) of a node's ``train`` / ``training`` argument, if any."""
    if node.op != "call_function":
        return None
    schema = getattr(node.target, "_schema", None)
    if schema is None:
        return None
    name = str(node.target)
    if "dropout" not in name and "batch_norm" not in name:
        return None
    for i, arg in enumerate(schema.arguments):
        if arg.name in ("train", "training"):
            if arg.name in node.kwargs:
                return arg.name, bool(node.kwargs[arg.name])
            if i < len(node.args):
                return i, bool(node.args[i])
            return None
    return None


def expected_input_shape(model: nn.Module) -> str | None:
    """A human description of the input ``model`` expects, from its first layer, if known."""
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            dims = {nn.Conv1d: "L", nn.Conv2d: "H, W", nn.Conv3d: "D, H, W"}[type(module)]
            return f"(N, {module.in_channels}, {dims}) (first layer {type(module).__name__})"
        if isinstance(module, nn.Linear):
            return f"(N, ..., {module.in_features}) (first layer Linear)"
        if isinstance(module, nn.MultiheadAttention):
            return f"(N, L, {module.embed_dim}) (first layer MultiheadAttention)"
        if isinstance(module, nn.Embedding):
            return (f"(N, L) integer tokens in 0..{module.num_embeddings - 1} "
                    "(first layer Embedding)")
    return None
