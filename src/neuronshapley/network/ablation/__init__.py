"""Remove sets of units from a network with hooks, many masks in one pass.

A removed unit's output is replaced by a reference value:

- ``"mean"``: its mean activation over reference data, per channel and position
  (the paper's choice: the network sees an "average" input for that unit); for token
  sequences (an ``attention_mask`` among the inputs), averaged over real tokens only;
- ``"channel"``: one scalar per channel (mean over reference data and positions);
- ``"zero"``: zero.

Parts: :mod:`~.ablator` (the :class:`Ablator`: reference means, hooks, the replacement),
:mod:`~.plan` (how masks share activations: tree / lazy / input expansion), :mod:`~.fold`
(batch-norm and ReLU folding), :mod:`~.heads` (attention heads), :mod:`~.layout` (memory
layout and shape checks) and :mod:`~.taps` (read or replace one layer's units, for other
tools). Every hook and patched ``forward`` is removed in a ``finally``: on errors and on
KeyboardInterrupt the user's model is left as it was.

``Ablator.forward(x, masks)`` evaluates ``M`` masks on a batch of ``B`` inputs (a tensor, or
a mapping of tensors sharing the batch axis such as ``input_ids`` and ``attention_mask``) in
one forward pass, and computes what masks share only once. With ``expand="tree"`` (tried first
by the default ``"auto"``), masks that agree on every hooked layer up to layer ``k`` share one
copy of the activations up to ``k``: the rows are copied into more groups only at the layers
where the masks differ (for the consecutive steps of a permutation walk, most layers). With
``"lazy"``, the batch is expanded to one copy per distinct mask at the first hooked layer, so
layers before it run once; with ``"input"``, up front. Each tensor's stage is told by its
number of rows, so a model that mixes tensors of different stages (a skip connection or a
second branch around a layer where the masks split) fails with a shape error rather than a
wrong value, and so does an output with fewer rows than its hooked layers produced (a model
that indexes its output by the input's batch size); ``"auto"`` then redoes the pass with the
next strategy (tree, lazy, input) and remembers it for the next passes.

Transformer blocks: the layers of one block (its heads and MLP neurons) share a stage, and a
forward pre-hook on the block copies its batch-first tensor arguments (hidden states,
attention mask, position embeddings) to that stage's groups, so the residual sums inside the
block see one stage and blocks before the first one where masks differ run once. Heads and
MLP neurons are read at the input of their projection (a forward pre-hook; heads as slices of
width ``head_dim``), and the replaced input is a new tensor (the original may have other
readers).

A removed unit's value is written into the layer's output in place when that output is a
new tensor of its own (not a view of an input or a parameter): one read and one write, in
the tensor's own memory format (channels-last stays channels-last). The blend is
``x * keep + reference * (1 - keep)`` with ``keep`` 0 or 1 (one multiply-add, about twice as
fast as ``torch.where`` on CPU): exact for finite activations; a removed unit whose output is
infinite or NaN gives NaN.

Folding (``fold=True``): where a ``torch.fx`` trace of the model (player layers as leaves)
shows that a layer's output is read only by an eval-mode batch norm, and/or then by a
``nn.ReLU`` / ``nn.ReLU6`` module, the hook applies them too and those modules pass the
result on untouched. The norm's per-channel affine map joins the replacement in the same
multiply-add (``y = x * keep * a + (c where kept, r * a + c where removed)``), so a conv-BN
layer costs no extra pass over its output; its results differ from running the norm module
by float rounding (~1e-7 relative), and they are the same whatever other masks share the
pass. The activation runs in place. Models that cannot be traced are run as they are.

Attention heads of a ``nn.MultiheadAttention``: the module does not call its ``out_proj``
module (it passes the weights to ``F.linear``), so no pre-hook on ``out_proj`` can see the
heads. Instead a forward hook on the attention module recomputes, from the same inputs, masks
and flags, the concatenated head outputs before ``out_proj``
(``F.multi_head_attention_forward`` with an identity output projection), replaces the
removed heads' slices by their reference (mean over the reference data per position; for
``"channel"``, also over positions), and applies ``out_proj``. The attention weights it
returns are the original ones (removing a head happens after attention). Cost: the
attention of a hooked module runs twice per pass; with every head kept the original output
is returned as is.
"""

from neuronshapley.errors import AblationError
from neuronshapley.network.ablation.ablator import (
    EXPAND_INPUT_ATTR,
    EXPANSIONS,
    REPLACEMENTS,
    Ablator,
)
from neuronshapley.network.ablation.heads import attention_head_outputs
from neuronshapley.network.ablation.taps import unit_hook

__all__ = [
    "EXPANSIONS",
    "EXPAND_INPUT_ATTR",
    "REPLACEMENTS",
    "AblationError",
    "Ablator",
    "attention_head_outputs",
    "unit_hook",
]
