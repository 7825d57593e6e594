"""Kim (2014) sentence CNN, as studied by Dhamdhere et al. (2019, "How important is a neuron").

Layout (module ids in brackets)::

    tokens (N, L) int64
      -> word embeddings, 50-d, trained from scratch            [embedding]
      -> four Conv1d(50 -> 64) of widths 3, 4, 5, 6, ReLU      [convs.0 .. convs.3]
      -> 1-max pooling over positions, concatenated: 256 units  [pool]   (players)
      -> dropout (training only), Linear(256 -> 10), ReLU       [dense]  (players)
      -> two binary heads: logit of "negative", of "positive"   [heads]

The output is ``(N, 2)``: column 0 is the negative head, column 1 the positive head, each
trained with its own binary cross-entropy (negative = rotten, positive = fresh), so the
predicted label (1 = fresh) is the head with the larger logit and the ``accuracy`` metric
applies as it is. The players are the 256 pooled filters (``pool:i``, filter ``i % 64`` of
width ``3 + i // 64``) and the 10 dense units (``dense:j``, before their ReLU).

:class:`FromEmbeddings` runs the same network from embedded inputs ``(N, L, 50)``: gradient
methods (conductance) interpolate there, since token indices cannot be interpolated.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neuronshapley.errors import DataError
from neuronshapley.network.players import PlayerSet, UnitTap, discover_players
from neuronshapley.runtime import torch_threads

__all__ = [
    "PLAYER_LAYERS",
    "WIDTHS",
    "FromEmbeddings",
    "KimCNN",
    "TrainingLog",
    "PooledHead",
    "kim_players",
    "predict_logits",
    "train_kim_cnn",
    "unit_activations",
    "unit_weight_players",
]

#: Window widths of the convolutions, in module order.
WIDTHS = (3, 4, 5, 6)
#: Module paths of the player layers.
PLAYER_LAYERS = ("pool", "dense")
#: ``Layer.kind`` of the pooled filters.
POOLED = "MaxPooledFilter"


class KimCNN(nn.Module):
    """The sentence CNN of the module doc. Input (N, L) token ids, L >= 6; output (N, 2)."""

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 50,
        widths: Sequence[int] = WIDTHS,
        filters: int = 64,
        hidden: int = 10,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if vocab_size < 3 or embedding_dim < 1 or filters < 1 or hidden < 1 or not widths:
            raise ValueError(
                f"bad sizes: vocab_size={vocab_size}, embedding_dim={embedding_dim}, "
                f"widths={widths!r}, filters={filters}, hidden={hidden}")
        self.widths = tuple(int(w) for w in widths)
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(embedding_dim, filters, w) for w in self.widths)
        n_pooled = filters * len(self.widths)
        self.pool = UnitTap(POOLED, n_pooled, -1)
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(n_pooled, hidden)
        self.heads = nn.Linear(hidden, 2)

    @property
    def min_length(self) -> int:
        """Shortest input length: the widest window."""
        return max(self.widths)

    def features(self, embedded: torch.Tensor) -> torch.Tensor:
        """Embedded inputs (N, L, E) -> pooled filters (N, 256) (through the ``pool`` tap)."""
        x = embedded.transpose(1, 2)
        pooled = torch.cat([F.relu(conv(x)).amax(dim=-1) for conv in self.convs], dim=1)
        return self.pool(pooled)

    def from_embeddings(self, embedded: torch.Tensor) -> torch.Tensor:
        """Embedded inputs (N, L, E) -> logits (N, 2): [negative, positive]."""
        hidden = F.relu(self.dense(self.dropout(self.features(embedded))))
        return self.heads(hidden)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids (N, L) -> logits (N, 2): [negative, positive]."""
        if tokens.ndim != 2 or tokens.shape[1] < self.min_length:
            raise DataError(
                f"KimCNN takes token ids (N, L) with L >= {self.min_length}, got shape "
                f"{tuple(tokens.shape)}: pad the snippets (Vocabulary.encode(texts, length))")
        return self.from_embeddings(self.embedding(tokens))


class FromEmbeddings(nn.Module):
    """``model`` run from embedded inputs (N, L, E) (shares its modules and weights)."""

    def __init__(self, model: KimCNN) -> None:
        super().__init__()
        self.model = model

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        return self.model.from_embeddings(embedded)


class PooledHead(nn.Module):
    """The part of ``model`` after the convolutions: pooled filters (N, 256) -> logits (N, 2).

    Shares ``model``'s ``pool``, ``dense`` and ``heads`` modules (same player ids). Every
    player comes after the convolutions, so a game can run on :meth:`pooled_inputs` computed
    once: its values equal those of ``model`` on the tokens (eval mode, no dropout).
    """

    def __init__(self, model: KimCNN) -> None:
        super().__init__()
        self.source = [model]  # a list: not a sub-module (the convolutions are not run here)
        self.pool = model.pool
        self.dense = model.dense
        self.heads = model.heads
        self.train(model.training)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.heads(F.relu(self.dense(self.pool(pooled))))

    @torch.no_grad()
    def pooled_inputs(self, tokens: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Pooled filters (N, 256) of token ids (N, L), before any unit is removed."""
        model = self.source[0]
        return torch.cat([model.features(model.embedding(tokens[i : i + batch_size]))
                          for i in range(0, len(tokens), batch_size)])


@torch.no_grad()
def unit_activations(head: PooledHead, pooled: torch.Tensor) -> np.ndarray:
    """Every player's activation (N, 266): the pooled filters, then the dense units (before
    their ReLU), in :func:`kim_players` order."""
    return torch.cat([pooled, head.dense(pooled)], dim=1).double().numpy()


def kim_players(model: nn.Module) -> PlayerSet:
    """The 256 pooled filters (``pool:i``) and the 10 dense units (``dense:j``) of a
    :class:`KimCNN` or its :class:`PooledHead`."""
    return discover_players(model, list(PLAYER_LAYERS))


def unit_weight_players(model: KimCNN) -> PlayerSet:
    """The conv filters and dense units as a player set in the same order as
    :func:`kim_players`: pooled unit ``i`` is output channel ``i % 64`` of ``convs.(i // 64)``,
    so the weight of player ``i`` here is the filter behind ``pool:i``."""
    return discover_players(model, [f"convs.{i}" for i in range(len(model.convs))] + ["dense"])


@torch.inference_mode()
def predict_logits(model: nn.Module, tokens: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits (N, 2) of ``model`` in eval mode."""
    was = model.training
    model.eval()
    out = torch.cat([model(tokens[i : i + batch_size]) for i in range(0, len(tokens), batch_size)])
    model.train(was)
    return out


def _accuracy(model: nn.Module, tokens: torch.Tensor, labels: torch.Tensor) -> float:
    return float((predict_logits(model, tokens).argmax(1) == labels).double().mean())


@dataclass
class TrainingLog:
    """Per-epoch accuracies and the epoch kept (best on the selection split)."""

    train_accuracy: list[float] = field(default_factory=list)
    selection_accuracy: list[float] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0


def train_kim_cnn(
    vocab_size: int,
    train_tokens: torch.Tensor,
    train_labels: torch.Tensor,
    selection_tokens: torch.Tensor,
    selection_labels: torch.Tensor,
    *,
    epochs: int = 6,
    seed: int = 0,
    lr: float = 1e-3,
    batch_size: int = 50,
    weight_decay: float = 0.0,
    num_threads: int | None = 1,
) -> tuple[KimCNN, TrainingLog]:
    """Train a :class:`KimCNN` with Adam, keeping the epoch best on the selection split.

    Each head gets a binary cross-entropy: the positive head's target is ``label == 1``
    (fresh), the negative head's ``label == 0``. Deterministic for a given ``seed`` and
    thread count. Returns the model in eval mode and its :class:`TrainingLog`.
    """
    if len(train_tokens) != len(train_labels) or len(selection_tokens) != len(selection_labels):
        raise DataError("tokens and labels must have the same length in each split")
    if epochs < 1:
        raise DataError(f"epochs must be at least 1, got {epochs}")
    started = time.perf_counter()
    log = TrainingLog()
    with torch_threads(num_threads):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = KimCNN(vocab_size)
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        y = train_labels.long()
        both = torch.stack([1 - y, y], dim=1).float()  # targets of [negative, positive]
        best_state, best = None, -np.inf
        for epoch in range(epochs):
            model.train()
            perm = torch.randperm(len(y), generator=gen)
            for i in range(0, len(y), batch_size):
                b = perm[i : i + batch_size]
                opt.zero_grad(set_to_none=True)
                loss = F.binary_cross_entropy_with_logits(model(train_tokens[b]), both[b])
                loss.backward()
                opt.step()
            log.train_accuracy.append(_accuracy(model, train_tokens, y))
            sel = _accuracy(model, selection_tokens, selection_labels.long())
            log.selection_accuracy.append(sel)
            if sel > best:
                best, log.best_epoch = sel, epoch + 1
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        assert best_state is not None
        model.load_state_dict(best_state)
    log.seconds = time.perf_counter() - started
    return model.eval(), log
