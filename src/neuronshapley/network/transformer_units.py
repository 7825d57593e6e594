"""Find the attention heads and MLP neurons of transformer blocks (Hugging Face and alike).

Detection reads module types and shapes, not the names of one family:

1. An **attention module** is an outermost sub-module whose class name ends in
   ``Attention`` (``BertAttention``, ``GPT2Attention``, ``LlamaAttention``, ...; not
   ``nn.MultiheadAttention``, whose heads :mod:`neuronshapley.network.players` handles itself)
   and that holds at least two projections. A **projection** is a ``nn.Linear`` or a
   ``transformers`` ``Conv1D`` (weight stored as (in, out)).
2. Its number of heads is the first of ``num_heads`` / ``num_attention_heads`` / ``n_head`` /
   ``n_heads`` found on the module, its sub-modules, its ``config`` or the model's ``config``.
3. Its **output projection** is its last projection (registration order: BERT/RoBERTa
   ``attention.output.dense``, GPT-2 ``attn.c_proj``, Llama/Mistral/Qwen ``self_attn.o_proj``)
   and must take ``heads * head_dim`` inputs. The per-head context is that projection's input,
   head ``h`` = features ``[h * head_dim, (h + 1) * head_dim)``. With grouped-query attention
   keys and values are shared between heads, the context is still one slice per query head.
4. The **block** is the attention module's parent. Its **down projection** is its last
   projection outside the attention module, writing as many features as the output
   projection; the MLP neurons are its input (BERT: the output of ``intermediate``; GPT-2:
   the input of ``mlp.c_proj``; Llama: ``act(gate) * up``, the input of ``mlp.down_proj``).

Every projection of a recognized block (queries, keys, values, the output, up, gate and down
projections) is then left out of the plain ``Linear`` players: their outputs are not units.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

#: ``Layer.kind`` of a layer of attention heads (one unit per head).
ATTENTION_HEADS = "attention_heads"
#: ``Layer.kind`` of the MLP neurons of a transformer block (inputs of the down projection).
MLP_NEURONS = "mlp_neurons"
_HEAD_ATTRS = ("num_heads", "num_attention_heads", "n_head", "n_heads")
_HEAD_DIM_ATTRS = ("head_dim", "attention_head_size", "key_value_proj_dim")


@dataclass(frozen=True)
class TransformerLayer:
    """One layer of units found in a transformer block.

    ``name``: the layer's name (ids ``"<name>:<i>"``): the attention module for heads, the
    MLP module (or, in BERT, ``intermediate``) for neurons. ``module``: the projection whose
    input holds the units. ``block``: the block's module path.
    """

    name: str
    kind: str
    n_units: int
    module: str
    block: str


def is_projection(module: nn.Module) -> bool:
    """A ``nn.Linear`` or a ``transformers`` ``Conv1D`` (2-D weight stored (in, out))."""
    return isinstance(module, nn.Linear) or is_conv1d(module)


def is_conv1d(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    return (
        type(module).__name__ == "Conv1D" and hasattr(module, "nf")
        and weight is not None and weight.ndim == 2
    )


def in_features(module: nn.Module) -> int:
    """Input width of a projection."""
    if isinstance(module, nn.Linear):
        return int(module.in_features)
    return int(module.weight.shape[0])


def out_features(module: nn.Module) -> int:
    """Output width of a projection."""
    if isinstance(module, nn.Linear):
        return int(module.out_features)
    return int(module.weight.shape[1])


def input_columns(module: nn.Module):  # noqa: ANN201 - a tensor view
    """The projection's weight as (out, in): column j multiplies input feature j."""
    return module.weight if isinstance(module, nn.Linear) else module.weight.t()


def _is_attention(module: nn.Module) -> bool:
    return type(module).__name__.endswith("Attention") and not isinstance(
        module, nn.MultiheadAttention
    )


def _int_attr(objs: list[object], names: tuple[str, ...]) -> int | None:
    for obj in objs:
        if obj is None:
            continue
        for attr in names:
            value = getattr(obj, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def _projections(module: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    return [
        (f"{prefix}.{n}" if prefix else n, m)
        for n, m in module.named_modules()
        if n and is_projection(m)
    ]


def find_transformer_layers(model: nn.Module) -> tuple[list[TransformerLayer], set[str]]:
    """Head and neuron layers of ``model``'s transformer blocks, in module order, and the
    paths of every projection of those blocks (never plain ``Linear`` players)."""
    found: list[TransformerLayer] = []
    claimed: set[str] = set()
    modules = dict(model.named_modules())
    model_config = getattr(model, "config", None)
    skip: tuple[str, ...] = ()
    blocks_done: set[str] = set()
    for name, module in model.named_modules():
        if not name or (skip and name.startswith(skip)) or not _is_attention(module):
            continue
        projections = _projections(module, name)
        if len(projections) < 2:
            continue
        skip = (*skip, name + ".")
        subs = [m for _, m in module.named_modules()]
        heads = _int_attr([*subs, getattr(module, "config", None), model_config], _HEAD_ATTRS)
        out_name, out_proj = projections[-1]
        width = in_features(out_proj)
        if heads is None or width % heads:
            continue
        head_dim = _int_attr(subs, _HEAD_DIM_ATTRS) or width // heads
        if heads * head_dim != width:
            continue
        block = name.rpartition(".")[0]
        found.append(TransformerLayer(name, ATTENTION_HEADS, heads, out_name, block))
        claimed.update(n for n, _ in projections)
        if block in blocks_done:  # a second attention (cross-attention): one MLP per block
            continue
        blocks_done.add(block)
        neurons = _mlp_layer(modules, block, out_features(out_proj), skip)
        if neurons is not None:
            found.append(neurons[0])
            claimed.update(neurons[1])
    order = {n: i for i, n in enumerate(modules)}
    found.sort(key=lambda ly: order[ly.name])
    return found, claimed


def _mlp_layer(
    modules: dict[str, nn.Module], block: str, hidden: int, attention: tuple[str, ...]
) -> tuple[TransformerLayer, list[str]] | None:
    """The MLP neurons of ``block`` (the input of its down projection) and its projections."""
    block_module = modules.get(block) if block else None
    if block_module is None:
        return None
    projections = [
        (n, m) for n, m in _projections(block_module, block)
        if not n.startswith(attention)
    ]
    if len(projections) < 2:
        return None
    down_name, down = projections[-1]
    width = in_features(down)
    ups = [n for n, m in projections[:-1] if out_features(m) == width]
    if out_features(down) != hidden or not ups:
        return None
    parent = down_name.rpartition(".")[0]
    # Name the layer after the MLP module when it holds the up projection(s), else after the
    # module that produces the neurons (BERT's ``intermediate``).
    if all(u.startswith(parent + ".") for u in ups) and parent != block:
        name = parent
    else:
        name = ups[-1].rpartition(".")[0] or ups[-1]
    layer = TransformerLayer(name, MLP_NEURONS, width, down_name, block)
    return layer, [n for n, _ in projections]
