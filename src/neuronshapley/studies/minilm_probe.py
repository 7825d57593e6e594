"""Which attention heads and MLP neurons of a pretrained MiniLM carry a sentiment probe?

Setup (:func:`minilm_setup`): the Rotten Tomatoes splits
(:mod:`neuronshapley.zoo.rotten_tomatoes`, by film); MiniLM-L6 from the wheel's folder,
frozen; a logistic-regression probe on its mean-pooled sentence embeddings of the training
split (``C`` chosen on the selection split), as one module
(:class:`~neuronshapley.zoo.minilm.ProbedEncoder`). ``V(S)`` = probe accuracy on a
valuation set drawn from the validation split, with the units outside S replaced by their
mean over that set's real tokens. Every reported curve is on a test set drawn from the test
split, which neither the probe nor the valuation saw.

Two games: the 72 heads (12 per layer), and the 1,536 MLP neurons of one layer (the
neurons of the other layers stay). The neurons' games run on a
:class:`~neuronshapley.zoo.minilm.ProbedTail`: everything before the neurons is computed
once per sentence and cached; the values are the whole model's (:func:`game_model`). For
each: Shapley values (:func:`neuronshapley.estimate`, ``method="auto"``, a stated budget per
seed, each walk on a fresh batch of ``walk_sample`` valuation sentences), and the baselines
conductance (Captum, embedding space; on the whole model), ``head_importance`` (Michel et
al. 2019; for neurons the same gate gradient), weight norm, activation norm, leave-one-out
and random. Removal curves: test accuracy after removing each ranking's top-k units, k on a
grid. The top heads' favourite sentences (where removing the head moves the probe's logit
most) and tokens (largest head-output norms) are listed.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuronshapley.errors import InputError
from neuronshapley.estimators import estimate
from neuronshapley.evaluation.baselines import (
    activation_norm,
    conductance,
    head_importance,
    leave_one_out,
    random_ranking,
    weight_norm,
)
from neuronshapley.evaluation.removal import removal_masks
from neuronshapley.files import atomic_write_text, csv_text, json_safe
from neuronshapley.network.ablation import unit_hook
from neuronshapley.network.game import ModelGame
from neuronshapley.network.inputs import Inputs
from neuronshapley.network.players import PlayerSet, discover_players
from neuronshapley.report.figures import save_figure
from neuronshapley.result import ShapleyResult, library_versions
from neuronshapley.zoo.minilm import (
    Probe,
    ProbedEncoder,
    ProbedTail,
    encode_texts,
    fit_probe,
    load_minilm,
    sentence_embeddings,
    tail_inputs,
)
from neuronshapley.zoo.rotten_tomatoes import RottenTomatoes, TextSplit, load_rotten_tomatoes

__all__ = [
    "RANKINGS",
    "GameModel",
    "MiniLMSetup",
    "UnitStudy",
    "favourite_sentences",
    "favourite_tokens",
    "game_model",
    "logit_margin",
    "minilm_setup",
    "removal_grid",
    "run_minilm_study",
    "study_units",
]

RANKINGS = ("shapley", "conductance", "head_importance", "weight_norm", "activation_norm",
            "loo", "random")
COLOURS = {"shapley": "#d62728", "conductance": "#2ca02c", "head_importance": "#ff7f0e",
           "weight_norm": "#8c564b", "activation_norm": "#9467bd", "loo": "#1f77b4",
           "random": "#7f7f7f"}
Log = Callable[[str], None]
Batch = dict[str, torch.Tensor]
#: Examples x masks per forward pass of the games. On this CPU (one thread) small passes
#: are fastest: measured, a heads evaluation on 16 sentences costs 0.38 s at 16, 0.54 s at
#: the automatic size (145) and 1.1 s at 512; a neurons evaluation on the cached tail
#: 15 ms at 64, 23 ms at 256 and 70 ms at 4,096.
PASS_SIZE = {"attention_heads": 32, "mlp_neurons": 64}


# ------------------------------------------------------------------------------ setup
@dataclass
class MiniLMSetup:
    """The probed encoder, its tokenizer, and the tokenized valuation and test sets."""

    model: ProbedEncoder
    tokenizer: Any
    data: RottenTomatoes
    value: TextSplit
    test: TextSplit
    value_batch: Batch
    test_batch: Batch
    probe: Probe
    max_length: int
    n_train: int
    accuracy: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _take(split: TextSplit, n: int | None) -> TextSplit:
    return split if n is None or n >= len(split) else split.head(n)


def minilm_setup(
    seed: int = 0,
    max_length: int = 32,
    n_value: int = 128,
    n_test: int = 256,
    n_train: int | None = None,
    path: str | os.PathLike[str] | None = None,
    encoder: Any = None,
    tokenizer: Any = None,
    data: RottenTomatoes | None = None,
    log: Log | None = None,
) -> MiniLMSetup:
    """Load MiniLM (or take ``encoder`` / ``tokenizer``, e.g. a tiny model in tests), fit the
    probe on the training split (its first ``n_train`` snippets if given; ``C`` on the
    selection split) and tokenize the first ``n_value`` validation and ``n_test`` test
    snippets, all cut/padded to ``max_length`` tokens."""
    say = log or (lambda _m: None)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    if encoder is None or tokenizer is None:
        encoder, tokenizer = load_minilm(path)
    encoder.eval()
    seconds["load"] = time.perf_counter() - t0
    data = data or load_rotten_tomatoes(seed=seed)
    train, selection = _take(data.train, n_train), data.selection
    value, test = _take(data.validation, n_value), _take(data.test, n_test)
    t0 = time.perf_counter()
    emb = {name: sentence_embeddings(encoder, encode_texts(tokenizer, s.texts, max_length))
           for name, s in (("train", train), ("selection", selection))}
    seconds["embeddings"] = time.perf_counter() - t0
    say(f"embeddings of {len(train)} + {len(selection)} snippets: {seconds['embeddings']:.0f} s")
    probe = fit_probe(emb["train"], train.labels, emb["selection"], selection.labels,
                      seed=seed)
    model = ProbedEncoder(encoder, probe.linear).eval()
    value_batch = encode_texts(tokenizer, value.texts, max_length)
    test_batch = encode_texts(tokenizer, test.texts, max_length)
    with torch.no_grad():
        acc = {name: float((model(**b).argmax(1) == s.targets).double().mean())
               for name, b, s in (("value", value_batch, value), ("test", test_batch, test))}
    acc.update(train=probe.train_accuracy, selection=probe.selection_accuracy)
    return MiniLMSetup(model, tokenizer, data, value, test, value_batch, test_batch, probe,
                       max_length, len(train), acc, seconds)


# -------------------------------------------------------------------------- metrics
def logit_margin(outputs: torch.Tensor, targets: torch.Tensor, extra: Any = None
                 ) -> torch.Tensor:
    """Per-example probe logit for "fresh" minus "rotten": (M, B, 2) -> (M, B)."""
    return outputs[..., 1] - outputs[..., 0]


logit_margin.output_names = lambda d: [f"example{j}" for j in range(d)]  # type: ignore[attr-defined]


# -------------------------------------------------------------------------- removal
def removal_grid(n: int, max_k: int | None = None) -> list[int]:
    """0, 1, 2, 3, 4, 6, 9, 14, 21, 32, 48, 72, ... (x1.5 from 4) up to ``max_k`` (default n),
    which is always the last point."""
    top = n if max_k is None else min(max_k, n)
    out, k = [0, 1, 2, 3, 4], 4.0
    while True:
        k *= 1.5
        if round(k) >= top:
            break
        out.append(int(round(k)))
    return sorted({x for x in out if x < top} | {top})


def _removal(game: ModelGame, orders: Mapping[str, np.ndarray], sizes: Sequence[int],
             draws: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Test values after removing each order's top-k (k in ``sizes``), and ``draws`` random
    sets per k, all distinct masks in one game call. Returns (curves, random (S, draws))."""
    n = game.n_players
    rng = np.random.default_rng([seed, 17])
    tops, rand = {}, None
    for name, order in orders.items():
        top, r = removal_masks(order, n, sizes, draws if rand is None else 0, rng)
        tops[name] = top
        rand = r if rand is None else rand
    assert rand is not None
    stacked = np.concatenate([*tops.values(), rand.reshape(-1, n)])
    unique, inverse = np.unique(stacked, axis=0, return_inverse=True)
    values = np.asarray(game(unique), dtype=np.float64)[np.ravel(inverse)]
    s = len(sizes)
    curves = {name: values[i * s : (i + 1) * s] for i, name in enumerate(tops)}
    return curves, values[len(tops) * s :].reshape(s, draws)


# ------------------------------------------------------------------------ one game
@dataclass
class GameModel:
    """The module the games of a set of units run, with its valuation and test inputs."""

    model: torch.nn.Module
    value: Inputs
    test: Inputs
    pass_size: int
    cached: bool  # True: a ProbedTail on activations computed once per sentence


def game_model(setup: MiniLMSetup, players: PlayerSet, pass_size: int | None = None
               ) -> GameModel:
    """For the MLP neurons of the last encoder layer: a :class:`ProbedTail` on the
    sentences' cached activations before them (the games' values are the whole model's;
    the embeddings and every layer before the neurons run once per sentence, not once per
    coalition). For any other units: the whole model on the token ids."""
    n_layers = len(setup.model.encoder.encoder.layer)
    last = f"encoder.encoder.layer.{n_layers - 1}.intermediate"
    kinds = {ly.kind for ly in players.layers}
    size = pass_size or max(PASS_SIZE.get(k, 32) for k in kinds)
    if [ly.name for ly in players.layers] == [last]:
        return GameModel(ProbedTail(setup.model).eval(), tail_inputs(setup.model,
                         setup.value_batch), tail_inputs(setup.model, setup.test_batch),
                         size, True)
    return GameModel(setup.model, setup.value_batch, setup.test_batch, size, False)


@dataclass
class UnitStudy:
    """Values, baselines and test removal curves of one set of units (heads or neurons)."""

    name: str
    players: PlayerSet
    rankings: dict[str, ShapleyResult]
    seed_results: list[ShapleyResult]
    sizes: list[int]
    curves: dict[str, np.ndarray]  # ranking -> (S,) test accuracy; "random": the mean
    random_draws: np.ndarray  # (S, draws)
    seed_curves: np.ndarray  # (n_seeds, S)
    full: float
    empty: float
    seconds: dict[str, float]
    settings: dict[str, Any]

    def area(self, name: str, k: int) -> float:
        """Mean test accuracy over the grid points 1 <= size <= k (lower = faster drop)."""
        idx = [i for i, s in enumerate(self.sizes) if 1 <= s <= k]
        curve = self.curves[name]
        return float(np.mean(curve[idx])) if idx else float("nan")


def study_units(
    setup: MiniLMSetup,
    players: PlayerSet,
    name: str,
    *,
    budget: int,
    seeds: Sequence[int] = (0,),
    walk_sample: int | None = 32,
    conductance_examples: int = 32,
    n_steps: int = 8,
    random_draws: int = 3,
    max_k: int | None = None,
    sizes: Sequence[int] | None = None,
    seed: int = 0,
    log: Log | None = None,
) -> UnitStudy:
    """Shapley values (``budget`` evaluations per seed) and every baseline of ``players`` on
    the valuation set, and the test removal curves of every ranking."""
    say = log or (lambda _m: None)
    if not seeds:
        raise InputError("seeds is empty: give at least one estimator seed")
    model = setup.model
    y_value, y_test = setup.value.targets, setup.test.targets
    ids = players.ids
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    gm = game_model(setup, players)
    game = ModelGame(gm.model, gm.value, y_value, "accuracy", players=players,
                     walk_sample=walk_sample, pass_size=gm.pass_size)
    full_game = ModelGame(gm.model, gm.value, y_value, "accuracy", players=players,
                          pass_size=gm.pass_size)
    seconds["games"] = time.perf_counter() - t0

    def timed(key: str, fn: Callable[[], ShapleyResult]) -> ShapleyResult:
        t0 = time.perf_counter()
        res = fn()
        seconds[key] = time.perf_counter() - t0
        say(f"  {name}: {key} {seconds[key]:.0f} s")
        return res

    seed_results = []
    for s in seeds:
        seed_results.append(timed(f"shapley_seed{s}", lambda s=s: estimate(
            game, method="auto", seed=int(s), max_evaluations=budget)))
    values = np.mean([r.values for r in seed_results], axis=0)
    shap = ShapleyResult(values, values.copy(), values.copy(),
                         np.sum([r.samples for r in seed_results], axis=0),
                         int(sum(r.evaluations for r in seed_results)), ids, "shapley",
                         info={"seeds": list(seeds), "budget_per_seed": budget})
    rankings = {"shapley": shap}
    sub = {k: v[:conductance_examples] for k, v in setup.value_batch.items()}
    rankings["conductance"] = timed("conductance", lambda: conductance(
        model, players, sub, y_value[:conductance_examples], n_steps=n_steps))
    rankings["head_importance"] = timed("head_importance", lambda: head_importance(
        model, players, setup.value_batch, y_value))
    rankings["weight_norm"] = timed("weight_norm", lambda: weight_norm(model, players))
    rankings["activation_norm"] = timed("activation_norm", lambda: activation_norm(
        model, players, setup.value_batch))
    rankings["loo"] = timed("loo", lambda: leave_one_out(full_game))
    rankings["random"] = random_ranking(ids, seed)

    t0 = time.perf_counter()
    test_game = ModelGame(gm.model, gm.test, y_test, "accuracy", players=players,
                          reference=gm.value, pass_size=gm.pass_size)
    sizes = sorted({0, *(int(k) for k in sizes)}) if sizes is not None else removal_grid(
        len(ids), max_k)
    if sizes[-1] > len(ids):
        raise InputError(f"cannot remove {sizes[-1]} of {len(ids)} units")
    orders = {n: r.ranking() for n, r in rankings.items()}
    orders.update({f"shapley_seed{r.seed}": r.ranking() for r in seed_results})
    curves, rand = _removal(test_game, orders, sizes, random_draws, seed)
    seed_curves = np.stack([curves.pop(f"shapley_seed{r.seed}") for r in seed_results])
    curves["random"] = np.mean(np.concatenate([curves["random"][:, None], rand], axis=1), 1)
    both = np.stack([np.ones(len(ids), bool), np.zeros(len(ids), bool)])
    ends = test_game(both)
    value_ends = full_game(both)  # V(N), V(empty): what the values share out
    seconds["removal_curves"] = time.perf_counter() - t0
    say(f"  {name}: removal curves {seconds['removal_curves']:.0f} s")
    settings = {"budget_per_seed": budget, "seeds": list(seeds), "walk_sample": walk_sample,
                "conductance_examples": conductance_examples, "conductance_steps": n_steps,
                "random_draws": random_draws + 1, "n_players": len(ids),
                "layers": [ly.name for ly in players.layers],
                "auto": [r.info.get("auto", {}).get("reason") for r in seed_results],
                "evaluations": [int(r.evaluations) for r in seed_results],
                "cached_prefix": gm.cached, "pass_size": gm.pass_size,
                "value_full": float(value_ends[0]), "value_empty": float(value_ends[1])}
    return UnitStudy(name, players, rankings, seed_results, sizes, curves, rand, seed_curves,
                     float(ends[0]), float(ends[1]), seconds, settings)


# ---------------------------------------------------------------------- favourites
def favourite_sentences(setup: MiniLMSetup, players: PlayerSet, units: Sequence[int],
                        top: int = 3) -> dict[str, list[dict[str, Any]]]:
    """For each unit: the test sentences whose probe logit (fresh minus rotten) moves most
    when that unit alone is removed (mean replacement over the valuation set)."""
    gm = game_model(setup, players)
    game = ModelGame(gm.model, gm.test, setup.test.targets, logit_margin, players=players,
                     reference=gm.value, pass_size=gm.pass_size)
    masks = np.ones((1 + len(units), players.n_players), dtype=bool)
    for row, u in enumerate(units, start=1):
        masks[row, u] = False
    margins = game(masks)  # (1 + units, B)
    out = {}
    for row, u in enumerate(units, start=1):
        change = margins[0] - margins[row]  # > 0: the unit pushed towards "fresh"
        idx = np.argsort(-np.abs(change))[:top]
        out[players.ids[u]] = [{"text": setup.test.texts[i], "label": int(setup.test.labels[i]),
                                "logit_change": float(change[i])} for i in idx]
    return out


@torch.no_grad()
def favourite_tokens(setup: MiniLMSetup, players: PlayerSet, units: Sequence[int],
                     top_positions: int = 40, top: int = 8) -> dict[str, list[tuple[str, int]]]:
    """For each head: the word pieces most frequent among the ``top_positions`` real-token
    positions of the test set with the largest norm of that head's output (its slice of the
    output projection's input)."""
    ids = setup.test_batch["input_ids"]
    real = setup.test_batch["attention_mask"].bool()
    out: dict[str, list[tuple[str, int]]] = {}
    for u in units:
        layer = next(ly for ly in players.layers if ly.offset <= u < ly.offset + ly.n_units)
        if not layer.is_heads:
            continue
        head = u - layer.offset
        norms: list[torch.Tensor] = []

        def record(x: torch.Tensor, h: int = head, into: list = norms) -> None:
            into.append(x[..., h, :].norm(dim=-1))

        handle = unit_hook(setup.model, layer, record)
        try:
            setup.model(**setup.test_batch)
        finally:
            handle.remove()
        score = norms[0].masked_fill(~real, -1.0).flatten()
        best = torch.argsort(score, descending=True)[:top_positions]
        words = setup.tokenizer.convert_ids_to_tokens(ids.flatten()[best].tolist())
        out[players.ids[u]] = Counter(words).most_common(top)
    return out


# ---------------------------------------------------------------------------- the study
def run_minilm_study(
    out_dir: str | os.PathLike[str] | None,
    setup: MiniLMSetup,
    *,
    head_budget: int = 1500,
    head_seeds: Sequence[int] = (0, 1),
    neuron_layer: int = 5,
    neuron_budget: int = 12_000,
    neuron_seeds: Sequence[int] = (0,),
    walk_sample: int | None = 32,
    conductance_examples: int = 32,
    n_steps: int = 8,
    neuron_max_k: int = 256,
    head_sizes: Sequence[int] | None = None,
    neuron_sizes: Sequence[int] | None = None,
    random_draws: int = 3,
    seed: int = 0,
    log: Log | None = None,
) -> dict[str, Any]:
    """Both games (:func:`study_units`), the favourites of the top heads, and the files
    (:func:`write_minilm_study`). Returns the summary written to ``summary.json``."""
    say = log or (lambda _m: None)
    started = time.perf_counter()
    heads = discover_players(setup.model, kinds=("attention_heads",))
    neuron_name = next(ly.name for ly in discover_players(setup.model, kinds=("mlp_neurons",))
                       .layers if ly.name.endswith(f"layer.{neuron_layer}.intermediate")
                       or ly.name.endswith(f"layer.{neuron_layer}.mlp"))
    neurons = discover_players(setup.model, [neuron_name])
    say(f"heads: {heads.n_players} units in {len(heads.layers)} layers")
    head_study = study_units(setup, heads, "heads", budget=head_budget, seeds=head_seeds,
                             walk_sample=walk_sample, conductance_examples=conductance_examples,
                             n_steps=n_steps, sizes=head_sizes, random_draws=random_draws,
                             seed=seed, log=say)
    say(f"neurons: {neurons.n_players} units of {neuron_name}")
    neuron_study = study_units(setup, neurons, "neurons", budget=neuron_budget,
                               seeds=neuron_seeds, walk_sample=walk_sample,
                               conductance_examples=conductance_examples, n_steps=n_steps,
                               max_k=neuron_max_k, sizes=neuron_sizes,
                               random_draws=random_draws, seed=seed, log=say)
    top_heads = head_study.rankings["shapley"].ranking()[:5].tolist()
    favourites = {"sentences": favourite_sentences(setup, heads, top_heads),
                  "tokens": favourite_tokens(setup, heads, top_heads)}
    summary = {
        "settings": {
            "seed": seed, "max_length": setup.max_length, "value_examples": len(setup.value),
            "test_examples": len(setup.test), "probe_C": setup.probe.C,
            "probe_train_examples": setup.n_train, "splits": setup.data.sizes(),
            "split_seed": setup.data.seed, "torch_threads": torch.get_num_threads(),
            "neuron_layer": neuron_name, "metric": "accuracy", "replacement": "mean",
        },
        "accuracy": setup.accuracy, "setup_seconds": setup.seconds,
        "studies": {s.name: _study_json(s) for s in (head_study, neuron_study)},
        "favourites": favourites, "versions": library_versions(),
    }
    summary["wall_time_s"] = round(time.perf_counter() - started + sum(setup.seconds.values()),
                                   1)
    if out_dir is not None:
        write_minilm_study(out_dir, setup, (head_study, neuron_study), summary)
    summary["_studies"] = (head_study, neuron_study)
    return summary


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def _study_json(s: UnitStudy) -> dict[str, Any]:
    ks = [k for k in (4, 8, 16, 32) if k <= s.sizes[-1]]
    shap = s.rankings["shapley"]
    seeds = [r.ranking() for r in s.seed_results]
    return {
        "settings": s.settings, "seconds": s.seconds, "sizes": s.sizes,
        "full_test": s.full, "empty_test": s.empty,
        "curves": {n: c.tolist() for n, c in s.curves.items()},
        "seed_curves": s.seed_curves.tolist(), "random_draws": s.random_draws.tolist(),
        "area": {str(k): {n: s.area(n, k) for n in s.curves} for k in ks},
        "seed_area": {str(k): [float(np.mean(c[[i for i, z in enumerate(s.sizes)
                                                if 1 <= z <= k]])) for c in s.seed_curves]
                      for k in ks},
        "top10": {n: [r.players[i] for i in r.ranking()[:10]] for n, r in s.rankings.items()
                  if n != "random"},
        "spearman_with_shapley": {n: _spearman(shap.values, r.values)
                                  for n, r in s.rankings.items() if n != "shapley"},
        "seed_top10_overlap": [len(set(a[:10].tolist()) & set(b[:10].tolist()))
                               for i, a in enumerate(seeds) for b in seeds[i + 1 :]],
        "shapley_ci_halfwidth_median": float(np.median(
            np.concatenate([(r.ci_high - r.ci_low) / 2 for r in s.seed_results]))),
        "shapley_top_values": sorted(shap.values.tolist(), reverse=True)[:10],
    }


# ------------------------------------------------------------------------------ files
def write_minilm_study(out_dir: str | os.PathLike[str], setup: MiniLMSetup,
                       studies: Sequence[UnitStudy], summary: dict[str, Any]) -> dict[str, Path]:
    """``<name>_removal.csv``, ``<name>_scores.csv``, ``<name>_removal.png`` per game,
    ``favourites.json`` and ``summary.json`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for s in studies:
        rows = [{"ranking": n, "removed": k, "test_accuracy": float(c[i])}
                for n, c in s.curves.items() for i, k in enumerate(s.sizes)]
        rows += [{"ranking": f"shapley_seed{r.seed}", "removed": k,
                  "test_accuracy": float(s.seed_curves[j, i])}
                 for j, r in enumerate(s.seed_results) for i, k in enumerate(s.sizes)]
        files[f"{s.name}_removal"] = out / f"{s.name}_removal.csv"
        atomic_write_text(files[f"{s.name}_removal"], csv_text(rows))
        score_rows = []
        for i, pid in enumerate(s.players.ids):
            row: dict[str, Any] = {"unit": pid}
            row.update({n: float(r.values[i]) for n, r in s.rankings.items()})
            for r in s.seed_results:
                row[f"shapley_seed{r.seed}"] = float(r.values[i])
                row[f"shapley_seed{r.seed}_ci_low"] = float(r.ci_low[i])
                row[f"shapley_seed{r.seed}_ci_high"] = float(r.ci_high[i])
            score_rows.append(row)
        files[f"{s.name}_scores"] = out / f"{s.name}_scores.csv"
        atomic_write_text(files[f"{s.name}_scores"], csv_text(score_rows))
        files[f"{s.name}_plot"] = plot_unit_removal(s, setup, out / f"{s.name}_removal.png")
    if any(s.name == "heads" for s in studies):
        files["head_map"] = plot_head_map(next(s for s in studies if s.name == "heads"),
                                          out / "heads_shapley_map.png", setup)
    files["summary"] = out / "summary.json"
    clean = {k: v for k, v in summary.items() if not k.startswith("_")}
    atomic_write_text(files["summary"], json.dumps(json_safe(clean), indent=2) + "\n")
    return files


def _caption(s: UnitStudy, setup: MiniLMSetup) -> str:
    st = s.settings
    return (f"MiniLM-L6 + linear probe, Rotten Tomatoes (split by film). Values on "
            f"{len(setup.value)} validation sentences (walks on fresh batches of "
            f"{st['walk_sample']}), curves on {len(setup.test)} test sentences, max length "
            f"{setup.max_length}. Shapley: auto, {st['budget_per_seed']:,} evaluations x seeds "
            f"{st['seeds']}; conductance {st['conductance_steps']} steps on "
            f"{st['conductance_examples']} sentences; random: {st['random_draws']} draws")


def plot_unit_removal(s: UnitStudy, setup: MiniLMSetup, path: str | os.PathLike[str]) -> Path:
    """Test accuracy against the number of top units removed, per ranking."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    for name in RANKINGS:
        if name not in s.curves:
            continue
        if name == "random":
            ax.fill_between(s.sizes, s.random_draws.min(1), s.random_draws.max(1),
                            color=COLOURS[name], alpha=0.15, linewidth=0)
        ax.plot(s.sizes, s.curves[name], marker="o", ms=3, color=COLOURS[name],
                lw=2.4 if name == "shapley" else 1.3,
                label=name if name != "random" else "random (mean, min-max band)")
    for j in range(len(s.seed_results)):
        ax.plot(s.sizes, s.seed_curves[j], color=COLOURS["shapley"], ls=":", lw=0.9,
                label="shapley, one seed" if j == 0 else None)
    ax.axhline(0.5, color="k", lw=0.8, ls=":")
    ax.set_xscale("symlog", linthresh=4)
    ax.set_xlabel(f"{s.name} removed (top-k of each ranking, mean replacement)")
    ax.set_ylabel("probe accuracy on the test sentences")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left", framealpha=0.85)
    import textwrap

    ax.set_title(textwrap.fill(f"{s.name}: " + _caption(s, setup), 110), fontsize=7.5)
    return save_figure(fig, path, dpi=110)


def plot_head_map(s: UnitStudy, path: str | os.PathLike[str], setup: MiniLMSetup) -> Path:
    """Shapley value of every head as a layers x heads grid."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    n_layers = len(s.players.layers)
    grid = s.rankings["shapley"].values.reshape(n_layers, -1)
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    lim = float(np.abs(grid).max()) or 1.0
    im = ax.imshow(grid, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_xticks(range(grid.shape[1]))
    ax.set_yticks(range(n_layers))
    fig.colorbar(im, ax=ax, label="Shapley value (probe accuracy)")
    import textwrap

    ax.set_title(textwrap.fill(_caption(s, setup), 95), fontsize=7)
    return save_figure(fig, path, dpi=110)
