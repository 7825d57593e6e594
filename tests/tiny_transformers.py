"""Tiny random Hugging Face models built from configs (nothing is downloaded).

Two layers, hidden size 32, 4 heads of 8; Llama with grouped-query attention (2 key/value
heads). Import from tests after ``pytest.importorskip("transformers")``.
"""

from __future__ import annotations

import logging

import torch

VOCAB = 40
SEQ = 7


def _quiet() -> None:
    logging.getLogger("transformers").setLevel(logging.ERROR)


def tiny_bert(seed: int = 0, num_labels: int = 3, classifier: bool = True):  # noqa: ANN201
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    _quiet()
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=37, max_position_embeddings=16, num_labels=num_labels,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, initializer_range=0.3,
    )
    model = BertForSequenceClassification(config) if classifier else BertModel(config)
    return model.eval()


def tiny_gpt2(seed: int = 0, num_labels: int = 3):  # noqa: ANN201
    from transformers import GPT2Config, GPT2ForSequenceClassification

    _quiet()
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=16, n_inner=44,
        num_labels=num_labels, pad_token_id=0, bos_token_id=1, eos_token_id=1,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, initializer_range=0.3,
    )
    return GPT2ForSequenceClassification(config).eval()


def tiny_llama(seed: int = 0):  # noqa: ANN201
    from transformers import LlamaConfig, LlamaForCausalLM

    _quiet()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=40, max_position_embeddings=16,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, attention_bias=True, mlp_bias=True,
        initializer_range=0.3,
    )
    return LlamaForCausalLM(config).eval()


def token_batch(n: int = 6, seq: int = SEQ, seed: int = 1, pad_last: int = 2,
                token_types: bool = False) -> dict[str, torch.Tensor]:
    """Random token ids (n, seq) with an attention mask; the last ``pad_last`` examples are
    right-padded (1 and 2 padding tokens, ...)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (n, seq), generator=g)
    mask = torch.ones(n, seq, dtype=torch.long)
    for i in range(pad_last):
        mask[n - 1 - i, seq - 1 - i :] = 0
    ids = ids.masked_fill(mask == 0, 0)
    batch = {"input_ids": ids, "attention_mask": mask}
    if token_types:
        batch["token_type_ids"] = torch.zeros_like(ids)
    return batch
