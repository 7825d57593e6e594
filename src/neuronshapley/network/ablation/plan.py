"""How the M masks of one pass share activations, stage by stage (prefix sharing)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from neuronshapley.errors import AblationError
from neuronshapley.network.players import Layer

#: Strategy tried next when a pass fails with ``expand="auto"``.
FALLBACK = {"tree": "lazy", "lazy": "input"}


class Plan:
    """How the M masks of one pass share activations, stage by stage.

    Stage 0 is the input, stage k the output of the k-th segment of hooked layers in execution
    order (a segment is one layer, or the layers of one transformer block). Masks in one group
    of stage k agree on every layer up to segment k, so they share one copy of the activations
    there (B rows per group). A tensor's row count tells its stage apart: the groups of a later
    stage refine those of an earlier one, so equal counts mean equal groups (numbered alike),
    and tensors of different stages cannot be mixed without a shape error.

    - ``"tree"``: groups split at each segment where the masks differ (prefix sharing);
    - ``"lazy"``: one group before the first hooked layer, then one per distinct mask;
    - ``"input"``: one group per distinct mask from the input on.
    """

    def __init__(
        self,
        masks: torch.Tensor,
        segments: Sequence[Sequence[Layer]],
        b: int,
        strategy: str,
        device: torch.device,
    ) -> None:
        self.b, self.m, self.strategy, self.device = b, int(masks.shape[0]), strategy, device
        self.split = False  # set when a pass copied rows into more groups
        self.reached = 0  # the latest stage a tensor of this pass was brought to
        full, n_full = row_groups(masks)
        self.stage: dict[str, int] = {}
        self.sizes: list[int] = [n_full if strategy == "input" else 1]
        self.groups: list[torch.Tensor] = [
            full if strategy == "input" else torch.zeros(self.m, dtype=torch.long)
        ]
        #: Per layer name: the kept units of each group of its stage (G, n_units), or None
        #: when every unit is kept in every mask.
        self.keep: dict[str, torch.Tensor | None] = {}
        for k, segment in enumerate(segments, start=1):
            cols = torch.cat([masks[:, ly.slice] for ly in segment], dim=1)
            g, size = self.groups[-1], self.sizes[-1]
            if strategy != "tree":
                g, size = full, n_full
            elif not bool(cols.all()):
                rows, n_rows = row_groups(cols)
                if n_rows > 1:
                    g, size = row_groups(torch.stack([g, rows], dim=1))
            self.groups.append(g)
            self.sizes.append(size)
            first = first_index(g, size)
            for layer in segment:
                self.stage[layer.name] = k
                lm = masks[:, layer.slice]
                keep = None if bool(lm.all()) else lm[first]
                self.keep[layer.name] = None if keep is None else keep.to(device,
                                                                        non_blocking=True)
        self._parents: dict[tuple[int, int], tuple[list[tuple[int, int, int]], torch.Tensor]] = {}

    @property
    def last(self) -> int:
        return len(self.sizes) - 1

    def source(self, rows: int, k: int, what: str) -> int:
        """The latest stage <= k whose group count times B is ``rows``."""
        j = self.find(rows, k)
        if j is None:
            expected = sorted({s * self.b for s in self.sizes[: k + 1]})
            raise AblationError(
                f"{what} produced a batch of {rows}, expected one of {expected}: "
                "the batch dimension must come first"
            )
        return j

    def find(self, rows: int, k: int) -> int | None:
        """Like :meth:`source`, None when no stage up to k has ``rows`` rows."""
        for j in range(k, -1, -1):
            if self.sizes[j] * self.b == rows:
                return j
        return None

    def parents(
        self, j: int, k: int, device: torch.device
    ) -> tuple[list[tuple[int, int, int]], torch.Tensor]:
        """For each group of stage k, its group at stage j: as runs (parent, lo, hi) of
        consecutive groups with one parent, and as an index tensor on ``device``."""
        if (j, k) not in self._parents:
            index = self.groups[j][first_index(self.groups[k], self.sizes[k])]
            values, counts = torch.unique_consecutive(index, return_counts=True)
            ends = torch.cumsum(counts, 0).tolist()
            starts = [0, *ends[:-1]]
            runs = list(zip(values.tolist(), starts, ends, strict=True))
            self._parents[(j, k)] = (runs, index.to(device))
        return self._parents[(j, k)]

    def identity(self, j: int) -> bool:
        """Whether mask i's rows are group i at stage j."""
        return self.sizes[j] == self.m and bool(
            torch.equal(self.groups[j], torch.arange(self.m))
        )

    def groups_on(self, j: int, device: torch.device) -> torch.Tensor:
        return self.groups[j].to(device)

    def regroup(self, t: torch.Tensor, k: int) -> torch.Tensor:
        """``t`` (batch first, at some stage <= k) copied to the groups of stage k; ``t``
        itself if it is there already or its row count is no stage's."""
        j = self.find(int(t.shape[0]), k)
        if j is None or self.sizes[j] == self.sizes[k]:
            return t
        self.split = True
        self.reached = max(self.reached, k)
        _runs, index = self.parents(j, k, t.device)
        src = t.reshape(self.sizes[j], self.b, *t.shape[1:])
        return src.index_select(0, index).reshape(-1, *t.shape[1:])


def segments_of(order: Sequence[Layer]) -> list[list[Layer]]:
    """Hooked layers (execution order) in stages: consecutive layers of one transformer block
    share a stage, every other layer has its own."""
    out: list[list[Layer]] = []
    for layer in order:
        if out and layer.block and out[-1][-1].block == layer.block:
            out[-1].append(layer)
        else:
            out.append([layer])
    return out


def row_groups(rows: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Group index of each row (equal rows, equal index; indices follow the rows' sorted
    order), and the number of groups."""
    if rows.shape[0] == 1:
        return torch.zeros(1, dtype=torch.long), 1
    uniq, inverse = torch.unique(rows.to(torch.uint8 if rows.dtype == torch.bool else rows.dtype),
                                 dim=0, return_inverse=True)
    return inverse, int(uniq.shape[0])


def first_index(groups: torch.Tensor, n: int) -> torch.Tensor:
    """The first row of each of the ``n`` groups."""
    first = torch.full((n,), len(groups), dtype=torch.long)
    return first.scatter_reduce_(0, groups, torch.arange(len(groups)), "amin")
