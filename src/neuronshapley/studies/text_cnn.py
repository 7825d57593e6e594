"""The text study of Dhamdhere et al. (2019) with Neuron Shapley beside conductance.

A Kim (2014) CNN (:mod:`neuronshapley.zoo.kim_cnn`) is trained on the Rotten Tomatoes
snippets (:mod:`neuronshapley.zoo.rotten_tomatoes`): train split for the weights, selection
split for the epoch kept and the feature-selection classifier's regularisation, validation
split for every score of the units, test split for every reported curve. Players: the 256
1-max pooled filters and the 10 dense units (266).

Rankings, all computed on the validation split:

- ``shapley``: Neuron Shapley of validation accuracy (mean replacement) in each layer's own
  game: for the filters the mean of the per-seed estimates of :func:`neuronshapley.estimate`
  (``method="auto"``, one budget per seed; each seed's own ranking is also measured), for
  the 10 dense units the exact values (1,024 coalitions);
- ``conductance``: Captum's neuron conductance of the true class's head (per example, the
  positive head for fresh snippets and the negative head for rotten ones), from the
  all-padding input (zero embeddings); ``conductance_pos`` / ``conductance_neg``: of the
  positive / negative head for every example; ``conductance_both``: the top units of the two
  heads taken in turn (the paper scores units per head);
- ``weight_norm``, ``activation_norm``, ``loo`` (leave-one-out) and ``random`` from
  :mod:`neuronshapley.evaluation.baselines`.

Evaluations (test split):

- removal curves: test accuracy after removing (mean-replacing) the top-k units of each
  ranking, k = 0..n, in each layer's own game (the other layer intact)
  (:func:`neuronshapley.studies.compare.run_compare`);
- feature selection (the paper's evaluation): the top-m units of one layer, by each
  ranking, are the only inputs of a logistic regression trained on the training split
  (its ``C`` chosen on the selection split); its test accuracy against m.

The convolutions come before every player, so the game runs on the pooled filters of each
split, computed once (:class:`~neuronshapley.zoo.kim_cnn.PooledHead`): the same values as
the full model, hundreds of masks per pass.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuronshapley.errors import InputError
from neuronshapley.estimators import estimate
from neuronshapley.evaluation.baselines import (
    activation_norm,
    layer_conductance,
    leave_one_out,
    random_ranking,
    weight_norm,
)
from neuronshapley.files import atomic_write_text, csv_text, json_safe
from neuronshapley.network.game import ModelGame
from neuronshapley.network.players import PlayerSet
from neuronshapley.report.figures import save_figure
from neuronshapley.result import ShapleyResult, library_versions
from neuronshapley.studies.compare import (
    SHAPLEY,
    CompareResult,
    removal_curves,
    run_compare,
)
from neuronshapley.zoo.kim_cnn import (
    FromEmbeddings,
    KimCNN,
    PooledHead,
    TrainingLog,
    kim_players,
    predict_logits,
    train_kim_cnn,
    unit_activations,
    unit_weight_players,
)
from neuronshapley.zoo.rotten_tomatoes import (
    SPLITS,
    RottenTomatoes,
    Vocabulary,
    load_rotten_tomatoes,
)

__all__ = [
    "HEADS",
    "RANKINGS",
    "LayerStudy",
    "TextCNNSetup",
    "TextCNNStudy",
    "conductance_per_head",
    "feature_selection",
    "interleave",
    "run_text_cnn_study",
    "text_cnn_setup",
]

#: Output index of each head of the Kim CNN.
HEADS = {"neg": 0, "pos": 1}
#: The rankings of the study, in display order.
RANKINGS = (SHAPLEY, "conductance", "conductance_pos", "conductance_neg", "conductance_both",
            "weight_norm", "activation_norm", "loo", "random")
COLOURS = {SHAPLEY: "#d62728", "conductance": "#2ca02c", "conductance_pos": "#98df8a",
           "conductance_neg": "#17becf", "conductance_both": "#bcbd22",
           "weight_norm": "#8c564b", "activation_norm": "#9467bd", "loo": "#1f77b4",
           "random": "#7f7f7f"}
#: Pass size of the games: examples x masks per forward pass of the pooled head (~130 MB).
PASS_SIZE = 1 << 17

Log = Callable[[str], None]


# ------------------------------------------------------------------------------ setup
@dataclass
class TextCNNSetup:
    """The trained CNN, its vocabulary, the splits and their token ids (N, length)."""

    model: KimCNN
    vocab: Vocabulary
    data: RottenTomatoes
    tokens: dict[str, torch.Tensor]
    length: int
    seed: int
    training: TrainingLog
    accuracy: dict[str, float] = field(default_factory=dict)

    def labels(self, split: str) -> torch.Tensor:
        return self.data.split(split).targets


def text_cnn_setup(seed: int = 0, length: int = 48, epochs: int = 6, lr: float = 3e-3,
                   min_count: int = 2, num_threads: int | None = 1,
                   data: RottenTomatoes | None = None) -> TextCNNSetup:
    """Splits (seed), vocabulary (train split, words seen ``min_count`` times), token ids cut
    or padded to ``length``, and a Kim CNN trained for up to ``epochs`` (the epoch best on
    the selection split is kept). ``data`` replaces the corpus (e.g. a subset in tests)."""
    data = data or load_rotten_tomatoes(seed=seed)
    vocab = Vocabulary.build(data.train.texts, min_count=min_count)
    tokens = {s: vocab.encode(data.split(s).texts, length) for s in SPLITS}
    model, log = train_kim_cnn(len(vocab), tokens["train"], data.train.targets,
                               tokens["selection"], data.selection.targets, epochs=epochs,
                               seed=seed, lr=lr, num_threads=num_threads)
    acc = {s: float((predict_logits(model, tokens[s]).argmax(1)
                     == data.split(s).targets).double().mean()) for s in SPLITS}
    return TextCNNSetup(model, vocab, data, tokens, length, seed, log, acc)


# ------------------------------------------------------------------------ conductance
def conductance_per_head(model: KimCNN, tokens: torch.Tensor, n_steps: int = 20,
                         method: str = "gausslegendre") -> dict[str, np.ndarray]:
    """Per-example conductance of every player for each head: ``{"neg": (N, 266), "pos":
    (N, 266)}``, players in :func:`~neuronshapley.zoo.kim_cnn.kim_players` order.

    Captum's ``LayerConductance`` on the embedded inputs (:class:`FromEmbeddings`), from
    the all-zero embedding (the padding word's) to each snippet, per layer of players.
    """
    wrapped = FromEmbeddings(model).eval()
    players = kim_players(model)
    with torch.no_grad():
        embedded = model.embedding(tokens).detach()
    out: dict[str, np.ndarray] = {}
    with torch.enable_grad():
        for head, index in HEADS.items():
            target = torch.full((len(tokens),), index, dtype=torch.int64)
            cols = [layer_conductance(wrapped, replace(layer, name=f"model.{layer.name}"),
                                      embedded, target, 0.0, n_steps, method).numpy()
                    for layer in players.layers]
            out[head] = np.concatenate(cols, axis=1)
    return out


def interleave(*orders: np.ndarray) -> np.ndarray:
    """The orders' entries taken in turn (first of each, second of each, ...), each unit once."""
    seen: set[int] = set()
    out: list[int] = []
    for row in zip(*[np.asarray(o).tolist() for o in orders], strict=True):
        for unit in row:
            if unit not in seen:
                seen.add(unit)
                out.append(unit)
    return np.asarray(out, dtype=np.int64)


def _scores(values: np.ndarray, players: list[str], method: str,
            info: dict[str, Any] | None = None) -> ShapleyResult:
    v = np.asarray(values, dtype=np.float64)
    return ShapleyResult(v, v.copy(), v.copy(), np.zeros(len(v), dtype=np.int64), 0,
                         list(players), method, info=dict(info or {}))


def _order_scores(order: np.ndarray, players: list[str], method: str) -> ShapleyResult:
    """A result whose ranking is ``order`` (values: n - position)."""
    values = np.empty(len(order))
    values[order] = len(order) - np.arange(len(order))
    return _scores(values, players, method, {"order_only": True})


# -------------------------------------------------------------------- feature selection
def feature_selection(
    features: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    orders: dict[str, np.ndarray],
    sizes: Sequence[int],
    cs: Sequence[float] = (0.01, 0.1, 1.0, 10.0),
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Test accuracy of a logistic regression on the top-m units of each order.

    ``features[split]``: (N, n) unit activations of the ``"train"``, ``"selection"`` and
    ``"test"`` splits; ``orders[name]``: unit indices, most important first. For each order
    and m in ``sizes``: standardise the m columns on the training split, fit one classifier
    per ``C`` in ``cs`` on the training split, keep the one most accurate on the selection
    split, report its test accuracy. Rows: ``ranking, m, C, selection_accuracy,
    test_accuracy, units``.
    """
    from sklearn.linear_model import LogisticRegression

    done: dict[tuple[int, ...], tuple[float, float, float]] = {}  # same units, same fit

    def fit(cols: np.ndarray) -> tuple[float, float, float]:
        x = {s: features[s][:, cols] for s in ("train", "selection", "test")}
        mean, std = x["train"].mean(0), x["train"].std(0) + 1e-8
        x = {s: (v - mean) / std for s, v in x.items()}
        best: tuple[float, float, Any] | None = None
        for c in cs:
            clf = LogisticRegression(C=c, max_iter=1000, random_state=seed)
            clf.fit(x["train"], labels["train"])
            acc = float(clf.score(x["selection"], labels["selection"]))
            if best is None or acc > best[0]:
                best = (acc, c, clf)
        assert best is not None
        return best[0], best[1], float(best[2].score(x["test"], labels["test"]))

    rows = []
    for name, order in orders.items():
        for m in sizes:
            cols = np.asarray(order[:m])
            key = tuple(sorted(int(u) for u in cols))
            if key not in done:
                done[key] = fit(cols)
            sel_acc, c, test_acc = done[key]
            rows.append({"ranking": name, "m": int(m), "C": c, "selection_accuracy": sel_acc,
                         "test_accuracy": test_acc,
                         "units": " ".join(str(int(u)) for u in cols)})
    return rows


# ---------------------------------------------------------------------------- the study
@dataclass
class LayerStudy:
    """One layer's game (its units removable, the other layer intact): the rankings, each
    Shapley seed, and the removal curves on the test split."""

    layer: str
    players: PlayerSet
    rankings: dict[str, ShapleyResult]
    seed_results: list[ShapleyResult]
    compare: CompareResult
    seed_curves: np.ndarray  # (n_seeds, K + 1) test accuracy, each seed's own ranking
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class TextCNNStudy:
    """Everything :func:`run_text_cnn_study` measured (see its files)."""

    setup: TextCNNSetup
    layers: dict[str, LayerStudy]
    selection_rows: list[dict[str, Any]]
    settings: dict[str, Any]
    facts: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


def run_text_cnn_study(
    out_dir: str | os.PathLike[str] | None = None,
    *,
    setup: TextCNNSetup | None = None,
    seed: int = 0,
    shapley_seeds: Sequence[int] = (0, 1, 2),
    max_evaluations: int = 40_000,
    n_steps: int = 20,
    random_draws: int = 10,
    selection_sizes: dict[str, Sequence[int]] | None = None,
    log: Log | None = None,
) -> TextCNNStudy:
    """Train (or take) the CNN, score its units, measure the removal curves and the feature
    selection, and write the files (see :func:`write_text_cnn_study`) into ``out_dir``.

    Each layer is its own game: the 256 pooled filters (the dense units kept), and the 10
    dense units (the filters kept; 1,024 coalitions: ``method="auto"`` enumerates them, so
    it runs once, not per seed). ``max_evaluations`` is the filter game's Shapley budget per
    seed (coalitions evaluated on the validation split); ``n_steps`` the conductance
    integration steps. Removal levels start from the test split's majority-class share (the
    accuracy of a network that always predicts the larger class).
    """
    say = log or (lambda _msg: None)
    started = time.perf_counter()
    if not shapley_seeds:
        raise InputError("shapley_seeds is empty: give at least one estimator seed")
    if setup is None:
        say("training the Kim CNN")
        setup = text_cnn_setup(seed=seed)
    model = setup.model.eval()
    say(f"CNN trained in {setup.training.seconds:.0f} s, best epoch {setup.training.best_epoch}"
        f"; accuracy {', '.join(f'{s} {a:.3f}' for s, a in setup.accuracy.items())}")
    head = PooledHead(model).eval()
    everyone = kim_players(head)
    pooled = {s: head.pooled_inputs(setup.tokens[s]) for s in SPLITS}
    y = {s: setup.labels(s) for s in SPLITS}
    majority = float(max(y["test"].double().mean(), 1 - y["test"].double().mean()))

    say(f"conductance ({n_steps} steps) of {everyone.n_players} units for both heads")
    t0 = time.perf_counter()
    per_head = conductance_per_head(model, setup.tokens["validation"], n_steps=n_steps)
    cond_seconds = time.perf_counter() - t0
    completeness = _completeness(model, setup.tokens["validation"], per_head, everyone)
    true_head = np.where(y["validation"].numpy()[:, None] == 1, per_head["pos"], per_head["neg"])
    norms = weight_norm(model, unit_weight_players(model)).values

    layers: dict[str, LayerStudy] = {}
    for layer in everyone.layers:
        players = PlayerSet((replace(layer, offset=0),))
        ids, cols = players.ids, layer.slice
        value_game = ModelGame(head, pooled["validation"], y["validation"], "accuracy",
                               players=players, pass_size=PASS_SIZE)
        seeds = list(shapley_seeds) if layer.n_units > 12 else [shapley_seeds[0]]
        seed_results = []
        for s in seeds:
            t0 = time.perf_counter()
            res = estimate(value_game, method="auto", seed=int(s),
                           max_evaluations=max(max_evaluations, 1 << layer.n_units)
                           if layer.n_units <= 12 else max_evaluations)
            seed_results.append(res)
            say(f"{layer.name}: Shapley seed {s}: {res.evaluations} evaluations, "
                f"{time.perf_counter() - t0:.0f} s ({res.info.get('auto', {}).get('reason', '')})")
        mean = np.mean([r.values for r in seed_results], axis=0)
        rankings: dict[str, ShapleyResult] = {SHAPLEY: _scores(mean, ids, SHAPLEY, {
            "seeds": seeds, "method": seed_results[0].method})}
        rankings[SHAPLEY].evaluations = int(sum(r.evaluations for r in seed_results))
        rankings[SHAPLEY].wall_time = float(sum(r.wall_time for r in seed_results))
        rankings["conductance"] = _scores(true_head[:, cols].mean(0), ids, "conductance",
                                          {"head": "true class", "n_steps": n_steps})
        rankings["conductance_pos"] = _scores(per_head["pos"][:, cols].mean(0), ids,
                                              "conductance_pos")
        rankings["conductance_neg"] = _scores(per_head["neg"][:, cols].mean(0), ids,
                                              "conductance_neg")
        rankings["conductance_both"] = _order_scores(interleave(
            rankings["conductance_pos"].ranking(), rankings["conductance_neg"].ranking()),
            ids, "conductance_both")
        for name in ("conductance", "conductance_pos", "conductance_neg", "conductance_both"):
            rankings[name].wall_time = cond_seconds
        rankings["weight_norm"] = _scores(norms[cols], ids, "weight_norm")
        rankings["activation_norm"] = activation_norm(head, players, pooled["validation"])
        rankings["loo"] = leave_one_out(value_game)
        rankings["random"] = random_ranking(ids, seed)
        say(f"{layer.name}: removal curves on the test split")
        compare = run_compare(
            head, pooled["validation"], y["validation"], pooled["test"], y["test"],
            players=players, shapley_method=None, baselines=(), rankings=rankings,
            random_draws=random_draws, game_options={"pass_size": PASS_SIZE}, seed=seed,
            chance=majority, small_k=min(10, layer.n_units))
        test_game = ModelGame(head, pooled["test"], y["test"], "accuracy", players=players,
                              reference=pooled["validation"], pass_size=PASS_SIZE)
        seed_curves = removal_curves(test_game, np.stack([r.ranking() for r in seed_results]),
                                     len(ids), len(ids))
        layers[layer.name] = LayerStudy(layer.name, players, rankings, seed_results, compare,
                                        seed_curves)
        layers[layer.name].facts = _layer_facts(layers[layer.name])

    say("feature selection")
    acts = {s: unit_activations(head, pooled[s]) for s in ("train", "selection", "test")}
    labels = {s: y[s].numpy() for s in ("train", "selection", "test")}
    sizes = selection_sizes or {"pool": (1, 2, 3, 5, 10, 20, 50, 100, 256),
                                "dense": (1, 2, 3, 5, 10)}
    selection_rows = []
    for layer in everyone.layers:
        if layer.name not in sizes:
            continue
        orders = {name: layers[layer.name].rankings[name].ranking() for name in RANKINGS}
        feats = {s: a[:, layer.slice] for s, a in acts.items()}
        for row in feature_selection(feats, labels, orders,
                                     [m for m in sizes[layer.name] if m <= layer.n_units],
                                     seed=seed):
            selection_rows.append({"layer": layer.name, **row})

    facts = {"pos_neg_conductance_spearman": _spearman(per_head["pos"].mean(0),
                                                       per_head["neg"].mean(0)),
             "conductance_completeness_median_gap": completeness,
             "test_majority_share": majority}
    settings = {
        "seed": seed, "shapley_seeds": list(shapley_seeds),
        "max_evaluations_per_seed": max_evaluations, "shapley_method": "auto",
        "conductance_steps": n_steps, "conductance_baseline": "zero embeddings (padding)",
        "random_draws": random_draws, "length": setup.length, "vocabulary": len(setup.vocab),
        "splits": setup.data.sizes(), "split_seed": setup.data.seed,
        "split_fractions": list(setup.data.fractions), "replacement": "mean",
        "metric": "accuracy", "n_players": everyone.n_players,
        "torch_threads": torch.get_num_threads(),
        "training": {"epochs_run": len(setup.training.train_accuracy),
                     "best_epoch": setup.training.best_epoch,
                     "seconds": round(setup.training.seconds, 1),
                     "selection_accuracy": setup.training.selection_accuracy},
        "accuracy": setup.accuracy,
    }
    study = TextCNNStudy(setup, layers, selection_rows, settings, facts)
    study.settings["wall_time_s"] = round(time.perf_counter() - started, 1)
    if out_dir is not None:
        write_text_cnn_study(study, out_dir)
    return study


def _completeness(model: KimCNN, tokens: torch.Tensor, per_head: dict[str, np.ndarray],
                  players: PlayerSet) -> dict[str, float]:
    """Median relative gap between each layer's conductance sum and F(x) - F(baseline)."""
    with torch.no_grad():
        full = predict_logits(model, tokens).numpy()
        base = FromEmbeddings(model).eval()(torch.zeros(1, tokens.shape[1],
                                                         model.embedding.embedding_dim))
    out = {}
    for head, index in HEADS.items():
        diff = full[:, index] - float(base[0, index])
        for layer in players.layers:
            total = per_head[head][:, layer.slice].sum(1)
            gap = np.abs(total - diff) / np.maximum(np.abs(diff), 1e-6)
            out[f"{head}:{layer.name}"] = float(np.median(gap))
    return out


def _overlap(a: np.ndarray, b: np.ndarray, k: int) -> int:
    return len(set(a[:k].tolist()) & set(b[:k].tolist()))


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def _layer_facts(ls: LayerStudy) -> dict[str, Any]:
    """Numbers the markdown quotes: curve areas, agreement between seeds and rankings."""
    comp, n = ls.compare, ls.players.n_players
    orders = [r.ranking() for r in ls.seed_results]
    shap = ls.rankings[SHAPLEY]
    ks = [k for k in (1, 3, 5, 10, 25, 50) if k < n]
    return {
        "n_units": n, "small_k": comp.small_k,
        "drop_area_by_k": {str(k): {m: comp.drop_area(m, k) for m in comp.curves} for k in ks},
        "seed_drop_area_by_k": {str(k): [float(c[1 : k + 1].mean()) for c in ls.seed_curves]
                                for k in ks},
        "seed_top10_overlap": [_overlap(orders[i], orders[j], 10)
                               for i in range(len(orders)) for j in range(i + 1, len(orders))],
        "shapley_vs": {m: {"spearman": _spearman(shap.values, r.values),
                           "top10_overlap": _overlap(shap.ranking(), r.ranking(), 10)}
                       for m, r in ls.rankings.items() if m not in (SHAPLEY, "random")},
        "units_to_level": {m: c.units_to_level for m, c in comp.curves.items()},
        "level": comp.level, "full_test": comp.full,
        "evaluations": [int(r.evaluations) for r in ls.seed_results],
        "top10": {m: [r.players[i] for i in r.ranking()[:10]] for m, r in ls.rankings.items()
                  if m != "random"},
    }


# ------------------------------------------------------------------------------ files
def write_text_cnn_study(study: TextCNNStudy, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write into ``out_dir``: ``removal.csv`` (layer, ranking, removed, test_accuracy,
    validation_accuracy, unit), ``removal_seeds.csv``, ``feature_selection.csv``,
    ``scores.csv`` (every unit's score by every ranking), ``summary.json``, ``removal.png``,
    ``feature_selection.png``, and per layer the compare files (``<layer>/compare.csv``,
    ``levels.csv``, ``values/<ranking>/``)."""
    from neuronshapley.studies.compare import write_compare

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    removal, seeds, scores = [], [], []
    for name, ls in study.layers.items():
        for key, path in write_compare(ls.compare, out / name).items():
            files[f"{name}_{key}"] = path
        (out / name / "compare.png").unlink(missing_ok=True)
        files.pop(f"{name}_plot", None)
        removal += [{"layer": name, "ranking": r["ranking"], "removed": r["removed"],
                     "test_accuracy": r["heldout"], "validation_accuracy": r["value_data"],
                     "unit": r["unit"]} for r in ls.compare.rows()]
        seeds += [{"layer": name, "seed": r.seed, "method": r.method, "removed": k,
                   "test_accuracy": float(ls.seed_curves[i, k]), "evaluations": r.evaluations}
                  for i, r in enumerate(ls.seed_results) for k in range(ls.seed_curves.shape[1])]
        for i, pid in enumerate(ls.players.ids):
            row: dict[str, Any] = {"unit": pid}
            row.update({m: float(res.values[i]) for m, res in ls.rankings.items()})
            for r in ls.seed_results:
                row[f"shapley_seed{r.seed}"] = float(r.values[i])
            scores.append(row)
    files["removal"] = out / "removal.csv"
    atomic_write_text(files["removal"], csv_text(removal))
    files["removal_seeds"] = out / "removal_seeds.csv"
    atomic_write_text(files["removal_seeds"], csv_text(seeds))
    files["feature_selection"] = out / "feature_selection.csv"
    atomic_write_text(files["feature_selection"], csv_text(study.selection_rows))
    keys = list(dict.fromkeys(k for row in scores for k in row))
    files["scores"] = out / "scores.csv"
    atomic_write_text(files["scores"], csv_text([{k: row.get(k) for k in keys} for row in scores]))
    files["removal_plot"] = plot_text_removal(study, out / "removal.png")
    files["selection_plot"] = plot_feature_selection(study, out / "feature_selection.png")
    files["summary"] = out / "summary.json"
    summary = {"settings": study.settings, "facts": study.facts,
               "layers": {n: ls.facts for n, ls in study.layers.items()},
               "versions": library_versions()}
    atomic_write_text(files["summary"], json.dumps(json_safe(summary), indent=2) + "\n")
    study.files = files
    return files


def _caption(study: TextCNNStudy) -> str:
    s = study.settings
    sp = s["splits"]
    return (f"Kim CNN on Rotten Tomatoes (splits by film, seed {s['split_seed']}: train "
            f"{sp['train']}, selection {sp['selection']}, validation {sp['validation']}, test "
            f"{sp['test']}). Scores on validation; Shapley: auto, filters "
            f"{s['max_evaluations_per_seed']:,} evaluations x seeds {s['shapley_seeds']}, dense "
            f"units exact; conductance {s['conductance_steps']} steps; random: "
            f"{s['random_draws']} draws; each layer removed with the other intact")


def plot_text_removal(study: TextCNNStudy, path: str | os.PathLike[str],
                      plot_k: int = 60) -> Path:
    """Test accuracy against the number of top units removed, per ranking: the filters
    (k <= plot_k) and the dense units; each Shapley seed dotted."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = [n for n in ("pool", "dense") if n in study.layers]
    fig, axes = plt.subplots(1, len(names), figsize=(6.6 * len(names), 4.8), squeeze=False)
    for ax, layer in zip(axes[0], names, strict=True):
        ls = study.layers[layer]
        comp = ls.compare
        kmax = min(plot_k, comp.max_k)
        ks = np.arange(kmax + 1)
        for name in RANKINGS:
            c = comp.curves.get(name)
            if c is None:
                continue
            label = name if c.draws is None else f"random (mean of {len(c.draws)}, band)"
            if c.draws is not None:
                ax.fill_between(ks, c.draws[:, : kmax + 1].min(0), c.draws[:, : kmax + 1].max(0),
                                color=COLOURS[name], alpha=0.15, linewidth=0)
            ax.plot(ks, c.heldout[: kmax + 1], color=COLOURS[name],
                    lw=2.4 if name == SHAPLEY else 1.3, label=label)
        if len(ls.seed_results) > 1:
            for i in range(len(ls.seed_results)):
                ax.plot(ks, ls.seed_curves[i, : kmax + 1], color=COLOURS[SHAPLEY], lw=0.8,
                        ls=":", label="shapley, one seed" if i == 0 else None)
        ax.axhline(study.facts["test_majority_share"], color="k", lw=0.8, ls=":",
                   label="majority-class share")
        ax.set_xlabel(f"{'pooled filters' if layer == 'pool' else 'dense units'} removed "
                      "(top-k of each ranking, mean replacement)")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{layer}: {ls.players.n_players} units", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower left", framealpha=0.85)
    fig.suptitle(_wrap("Removal curves on the test split. " + _caption(study)), fontsize=9)
    return save_figure(fig, path, dpi=110)


def plot_feature_selection(study: TextCNNStudy, path: str | os.PathLike[str]) -> Path:
    """Test accuracy of the logistic regression on the top-m units, per layer and ranking."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    layers = sorted({r["layer"] for r in study.selection_rows},
                    key=lambda n: ("pool", "dense").index(n) if n in ("pool", "dense") else 9)
    fig, axes = plt.subplots(1, len(layers), figsize=(6.2 * len(layers), 4.6), squeeze=False)
    for ax, layer in zip(axes[0], layers, strict=True):
        for name in RANKINGS:
            rows = [r for r in study.selection_rows if r["layer"] == layer and r["ranking"] == name]
            if not rows:
                continue
            ax.plot([r["m"] for r in rows], [r["test_accuracy"] for r in rows], marker="o", ms=3,
                    color=COLOURS[name], lw=2.4 if name == SHAPLEY else 1.3, label=name)
        ax.set_xscale("log")
        ax.set_xlabel(f"m: top units of {layer!r} used as the only features")
        ax.set_ylabel("test accuracy of the logistic regression")
        ax.set_title(f"{layer} ({'256 pooled filters' if layer == 'pool' else '10 dense units'})",
                     fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower right", framealpha=0.85)
    fig.suptitle(_wrap("Feature selection: classifier trained on train, C chosen on selection, "
                       "accuracy on test. " + _caption(study)), fontsize=9)
    return save_figure(fig, path, dpi=110)


def _wrap(text: str, width: int = 150) -> str:
    import textwrap

    return textwrap.fill(text, width)


def fmt(x: float | None, digits: int = 3) -> str:
    """A number for the markdown (``-`` for None / NaN)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}"
