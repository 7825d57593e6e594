"""Masked evaluation against a plain forward pass of the same images, measured in one run.

Throughput in images per second (an evaluation of M masks on B images counts M * B images):

- plain: the bare model (channels-last, inference mode, no hooks) on the images one masked
  call processes, in passes of the same size;
- random: ``ModelGame`` on random coalitions (each player kept with probability 0.7);
- walk: ``ModelGame`` on permutation-walk steps, consecutive steps in chunks of
  ``masks_per_pass`` as ``estimators/walks.py`` evaluates them (a fresh permutation per walk);
- variants: walk masks with prefix sharing off (``expand="lazy"``: one copy of the
  activations per mask from the first hooked layer on); random masks with folding off
  (``fold=False``: batch norms and ReLUs after a player layer run as their own modules).

All functions of one pass size are called round-robin (``--rounds`` rounds) and each rate is
the median over its calls, so the machine's load drifts hit all of them alike; the ratios
masked / plain are from the same run. The target is >= 0.9. Pass sizes: ``auto`` (the
``ModelGame`` default) and a few fixed ones. Torch threads are set explicitly (``--threads``).

    python benchmarks/engine.py [--threads 1] [--rounds 15] [--eff-rounds 3] [--no-efficientnet]
                                [--sizes auto,2048,32768] [--eff-sizes auto,16,64]
                                [--no-digits] [--no-bert] [--bert-sizes auto,256,1024]

A small random BERT (heads and MLP neurons as players; needs ``transformers``) is measured
the same way: an evaluation of M masks on B sequences counts M * B sequences.

Writes ``results/engine.json`` and ``results/engine.md`` (``engine-bert.*`` for a run with
``--no-digits --no-efficientnet``).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from common import RESULTS, digits_game, save_json, set_threads

from neuronshapley import ModelGame, discover_players
from neuronshapley.estimators.walks import step_masks
from neuronshapley.network import inputs as batch
from neuronshapley.runtime import fast_malloc_active

KEEP = 0.7  # probability that a random coalition keeps a player
EFF_WALK_STEPS = 1000  # TMAB walks on the EfficientNet game stop at ~4.5% of 21,008 players
WALK_LAZY, NO_FOLD = "walk, no prefix sharing", "random, no folding"


def race(fns: dict[str, Callable[[], int]], rounds: int) -> dict[str, float]:
    """Images per second of each function (a call returns how many images it processed):
    calls interleaved round-robin after one warm-up call each, median of the per-call rates."""
    for f in fns.values():
        f()
    rates: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            images = f()
            rates[k].append(images / (time.perf_counter() - t0))
    return {k: float(np.median(v)) for k, v in rates.items()}


def walk_chunks(n: int, m: int, rng: np.random.Generator, steps: int | None = None
                ) -> Iterator[np.ndarray]:
    """Step masks of random permutation walks, ``m`` consecutive steps per chunk (steps
    1 .. n-1 of each walk, or 1 .. ``steps`` for truncated walks)."""
    while True:
        perm = rng.permutation(n)
        pos = np.empty(n, dtype=np.int64)
        pos[perm] = np.arange(n)
        last = n - 1 if steps is None else min(steps, n - 1)
        for j in range(1, last + 1, m):
            yield step_masks(pos, np.arange(j, min(j + m, last + 1)))


def measure(game: ModelGame, variants: list[tuple[str, ModelGame]], rounds: int,
            walk_steps: int | None, seed: int = 0) -> dict[str, Any]:
    """One race: plain, random masks, walk masks (and variant games) at ``game``'s size."""
    m, n, b = game.masks_per_pass, game.n_players, batch.n_rows(game.inputs)
    images = batch.expand(game.inputs, m)
    if game.channels_last:
        assert isinstance(images, torch.Tensor)
        images = images.contiguous(memory_format=torch.channels_last)
    step = game.pass_size if game.batch_size < b else m * b
    passes = [batch.take(images, slice(i, i + step)) for i in range(0, m * b, step)]
    rng = np.random.default_rng(seed)
    random_masks = rng.random((m, n)) < KEEP
    walks = walk_chunks(n, m, np.random.default_rng(seed + 1), walk_steps)

    def plain() -> int:
        with torch.inference_mode():
            for x in passes:
                batch.call(game.model, x)
        return m * b

    def random() -> int:
        game(random_masks)
        return m * b

    def walk() -> int:
        masks = next(walks)
        game(masks)
        return len(masks) * b

    fns = {"plain": plain, "random": random, "walk": walk}
    for name, other in variants:
        walks_v = walk_chunks(n, m, np.random.default_rng(seed + 1), walk_steps)

        def var(other: ModelGame = other, walks_v: Iterator[np.ndarray] = walks_v,
                on_walks: bool = name.startswith("walk")) -> int:
            masks = next(walks_v) if on_walks else random_masks
            other(masks)
            return len(masks) * b

        fns[name] = var
    rates = race(fns, rounds)
    row: dict[str, Any] = {"pass_size": game.pass_size, "masks_per_pass": m, "images": b,
                           "images_per_s": rates,
                           "ratio": {k: v / rates["plain"] for k, v in rates.items()},
                           "strategy": getattr(game.ablator, "strategy", None)}
    print(row, flush=True)
    return row


def sizes(spec: str) -> list[tuple[str, int | None]]:
    """``"auto,2048"`` -> [("auto", None), ("2048", 2048)]."""
    return [(s, None if s == "auto" else int(s)) for s in spec.split(",")]


def digits_rows(rounds: int, spec: str) -> list[dict[str, Any]]:
    rows = []
    for label, size in sizes(spec):
        game = digits_game(pass_size=size)
        lazy = digits_game(pass_size=size)
        lazy.ablator.expand = lazy.ablator.strategy = "lazy"
        unfolded = digits_game(pass_size=size)
        unfolded.ablator.fold = False
        row = measure(game, [(WALK_LAZY, lazy), (NO_FOLD, unfolded)], rounds, None)
        rows.append({"size": label, **row})
    return rows


def efficientnet_rows(rounds: int, n_images: int, spec: str) -> list[dict[str, Any]]:
    from scale import image_batch

    from neuronshapley.zoo.efficientnet import pretrained_efficientnet_lite0

    model = pretrained_efficientnet_lite0("cpu")
    x = image_batch(n_images, 0)
    with torch.inference_mode():
        y = model(x).argmax(1)
    rows = []
    for label, size in sizes(spec):
        game = ModelGame(model, x, y, metric="accuracy", pass_size=size)
        unfolded = ModelGame(model, x, y, metric="accuracy", pass_size=size)
        unfolded.ablator.fold = False
        row = measure(game, [(NO_FOLD, unfolded)], rounds, EFF_WALK_STEPS)
        rows.append({"size": label, **row})
    return rows


def bert_game(n: int, seq: int, pass_size: int | None, seed: int = 0) -> ModelGame:
    """A small random BERT classifier (4 layers, hidden 128, 4 heads, MLP 512; built from a
    config, nothing downloaded) on ``n`` random token sequences of ``seq`` tokens (a quarter of
    them padded by up to half), players = its 16 heads and 2,048 MLP neurons."""
    import logging

    from transformers import BertConfig, BertForSequenceClassification

    logging.getLogger("transformers").setLevel(logging.ERROR)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=1000, hidden_size=128, num_hidden_layers=4,
                        num_attention_heads=4, intermediate_size=512,
                        max_position_embeddings=seq, num_labels=2)
    model = BertForSequenceClassification(config).eval()
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 1000, (n, seq), generator=g)
    mask = torch.ones(n, seq, dtype=torch.long)
    for i in range(0, n, 4):
        mask[i, seq - 1 - int(torch.randint(0, seq // 2, (1,), generator=g)):] = 0
    data = {"input_ids": ids.masked_fill(mask == 0, 0), "attention_mask": mask,
            "token_type_ids": torch.zeros_like(ids)}
    with torch.inference_mode():
        y = model(**data).logits.argmax(-1)
    players = discover_players(model, kinds=("attention_heads", "mlp_neurons"))
    return ModelGame(model, data, y, metric="accuracy", players=players, pass_size=pass_size)


def bert_rows(rounds: int, n: int, seq: int, spec: str) -> list[dict[str, Any]]:
    rows = []
    for label, size in sizes(spec):
        game = bert_game(n, seq, size)
        lazy = bert_game(n, seq, size)
        lazy.ablator.expand = lazy.ablator.strategy = "input"
        row = measure(game, [("walk, no sharing", lazy)], rounds, None)
        rows.append({"size": label, **row})
    return rows


def table(title: str, rows: list[dict[str, Any]]) -> list[str]:
    variants = [k for k in rows[0]["images_per_s"] if k not in ("plain", "random", "walk")]
    cols = ["random", "walk", *variants]
    lines = [f"## {title}", "",
             "| pass size | masks per pass | sharing | plain images/s | "
             + " | ".join(f"{c}: images/s (ratio)" for c in cols) + " |",
             "| --- | ---: | --- | ---: | " + " | ".join("---:" for _ in cols) + " |"]
    for r in rows:
        ips, ratio = r["images_per_s"], r["ratio"]
        cells = [f"{ips[k]:.0f} (**{ratio[k]:.2f}**)" if k in ("random", "walk") else
                 f"{ips[k]:.0f} ({ratio[k]:.2f})" for k in cols]
        lines.append(f"| {r['size']} ({r['pass_size']}) | {r['masks_per_pass']} | "
                     f"{r['strategy']} | {ips['plain']:.0f} | " + " | ".join(cells) + " |")
    return lines + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=15, help="rounds per race (digits)")
    ap.add_argument("--eff-rounds", type=int, default=3, help="rounds per race (EfficientNet)")
    ap.add_argument("--eff-images", type=int, default=16)
    ap.add_argument("--no-efficientnet", action="store_true")
    ap.add_argument("--no-digits", action="store_true")
    ap.add_argument("--no-bert", action="store_true")
    ap.add_argument("--bert-rounds", type=int, default=7)
    ap.add_argument("--bert-examples", type=int, default=32)
    ap.add_argument("--bert-seq", type=int, default=32)
    ap.add_argument("--bert-sizes", default="auto,256,1024", help="BERT pass sizes")
    ap.add_argument("--sizes", default="auto,2048,32768", help="digits pass sizes")
    ap.add_argument("--eff-sizes", default="auto,16,64", help="EfficientNet pass sizes")
    args = ap.parse_args()
    set_threads(args.threads)
    t0 = time.perf_counter()
    load_start = list(os.getloadavg())
    digits = [] if args.no_digits else digits_rows(args.rounds, args.sizes)
    eff = [] if args.no_efficientnet else efficientnet_rows(args.eff_rounds, args.eff_images,
                                                             args.eff_sizes)
    bert = [] if args.no_bert else bert_rows(args.bert_rounds, args.bert_examples,
                                             args.bert_seq, args.bert_sizes)
    payload = {"digits": digits, "efficientnet": eff, "bert": bert, "keep_probability": KEEP,
               "efficientnet_walk_steps": EFF_WALK_STEPS, "fast_malloc": fast_malloc_active(),
               "load_average_start": load_start, "load_average_end": list(os.getloadavg()),
               "total_seconds": time.perf_counter() - t0}
    md = render(payload, args)
    print(md)
    name = "engine" if digits or eff else "engine-bert"  # a BERT-only run keeps engine.json
    save_json(name, payload)
    (RESULTS / f"{name}.md").write_text(md + "\n")


def render(p: dict[str, Any], args: argparse.Namespace) -> str:
    load = ", ".join(f"{x:.1f}" for x in p["load_average_start"] + p["load_average_end"])
    lines = [
        "# Engine throughput: masked evaluation vs a plain forward pass", "",
        "Images per second (M masks on B images = M x B images); in brackets masked / plain, "
        "from the same run: every function of a row is called round-robin "
        f"({args.rounds} rounds for digits, {args.eff_rounds} for EfficientNet, "
        f"{args.bert_rounds} for BERT) and each "
        f"rate is the median of its calls. Torch threads: {args.threads}; inference mode; "
        f"glibc malloc settings of neuronshapley.runtime active: {p['fast_malloc']}. "
        f"random = each player kept with probability {p['keep_probability']}; walk = "
        "consecutive steps of random permutation walks in chunks of masks-per-pass. Pass "
        "size auto = the ModelGame default.", "",
    ]
    if p["digits"]:
        lines += table("Digits CNN (80 filters, 359 valuation images)", p["digits"])
    if p["efficientnet"]:
        lines += table(f"EfficientNet-Lite0 (21,008 channels, {p['efficientnet'][0]['images']} "
                       "images 224 x 224; walk = the first "
                       f"{p['efficientnet_walk_steps']} steps)", p["efficientnet"])
    if p.get("bert"):
        lines += table(f"Small BERT classifier (random weights; 4 layers, 16 heads and 2,048 "
                       f"MLP neurons as players; {p['bert'][0]['images']} sequences of "
                       f"{args.bert_seq} tokens; images = sequences; walk, no sharing = "
                       "the input expanded up front)", p["bert"])
    lines += ["Sharing: the strategy the engine settled on (tree = masks that agree up to a "
              "layer share the activations up to it; lazy = one copy per mask from the first "
              "hooked layer on, what EfficientNet's skip connections force once masks differ; "
              "with one mask per pass nothing is split, so tree stays). Ratios above 1: the "
              "engine does less work than the plain pass (layers before the first split run "
              "once per group; folded norms and ReLUs write in place).",
              f"Wall time {p['total_seconds']:.0f} s; load average (1, 5, 15 min) at start and "
              f"end: {load} on a shared 2-core machine."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
