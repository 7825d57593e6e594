"""The text study of Dhamdhere et al. (2019) with Neuron Shapley beside conductance.

A Kim (2014) CNN (:mod:`neuronshapley.zoo.kim_cnn`) is trained on the Rotten Tomatoes
snippets (:mod:`neuronshapley.zoo.rotten_tomatoes`): train split for the weights, selection
split for the epoch kept and the feature-selection classifier's regularisation, validation
split for every score of the units, test split for every reported curve. Players: the 256
1-max pooled filters and the 10 dense units (266).

Rankings, all computed on the validation split:

- ``shapley``: Neuron Shapley of validation accuracy (mean replacement), the mean of the
  per-seed estimates of :func:`neuronshapley.estimate` (``method="auto"``, one budget per
  seed); each seed's own ranking is also measured;
- ``conductance``: Captum's neuron conductance of the true class's head (per example, the
  positive head for fresh snippets and the negative head for rotten ones), from the
  all-padding input (zero embeddings); ``conductance_pos`` / ``conductance_neg``: of the
  positive / negative head for every example; ``conductance_both``: the top units of the two
  heads taken in turn (the paper scores units per head);
- ``weight_norm``, ``activation_norm``, ``loo`` (leave-one-out) and ``random`` from
  :mod:`neuronshapley.evaluation.baselines`.

Evaluations (test split):

- removal curves: test accuracy after removing (mean-replacing) the top-k units of each
  ranking, k = 0..266 (:func:`neuronshapley.studies.compare.run_compare`);
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


def _relabel(result: ShapleyResult, players: list[str]) -> ShapleyResult:
    result.players = list(players)
    return result


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
class TextCNNStudy:
    """Everything :func:`run_text_cnn_study` measured (see its files)."""

    setup: TextCNNSetup
    rankings: dict[str, ShapleyResult]
    seed_results: list[ShapleyResult]
    compare: CompareResult
    seed_curves: np.ndarray  # (n_seeds, K + 1) test accuracy, each seed's own ranking
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

    ``max_evaluations`` is the Shapley budget per seed (coalitions evaluated on the
    validation split); ``n_steps`` the conductance integration steps.
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
    players = kim_players(head)
    ids = players.ids
    pooled = {s: head.pooled_inputs(setup.tokens[s]) for s in SPLITS}
    y = {s: setup.labels(s) for s in SPLITS}
    value_game = ModelGame(head, pooled["validation"], y["validation"], "accuracy",
                           players=players, pass_size=PASS_SIZE)

    rankings: dict[str, ShapleyResult] = {}
    seed_results = []
    for s in shapley_seeds:
        t0 = time.perf_counter()
        res = estimate(value_game, method="auto", seed=int(s), max_evaluations=max_evaluations)
        seed_results.append(res)
        say(f"Shapley seed {s}: {res.evaluations} evaluations, {time.perf_counter() - t0:.0f} s"
            f" ({res.info.get('auto', {}).get('reason', '')})")
    mean = np.mean([r.values for r in seed_results], axis=0)
    rankings[SHAPLEY] = _scores(mean, ids, SHAPLEY, {
        "seeds": list(shapley_seeds), "max_evaluations_per_seed": max_evaluations,
        "evaluations": int(sum(r.evaluations for r in seed_results)),
        "wall_time_s": float(sum(r.wall_time for r in seed_results))})
    rankings[SHAPLEY].evaluations = int(sum(r.evaluations for r in seed_results))
    rankings[SHAPLEY].wall_time = float(sum(r.wall_time for r in seed_results))

    say(f"conductance ({n_steps} steps) of {len(ids)} units for both heads")
    t0 = time.perf_counter()
    per_head = conductance_per_head(model, setup.tokens["validation"], n_steps=n_steps)
    cond_seconds = time.perf_counter() - t0
    true_head = np.where(y["validation"].numpy()[:, None] == 1, per_head["pos"], per_head["neg"])
    completeness = _completeness(model, setup.tokens["validation"], per_head, players)
    rankings["conductance"] = _scores(true_head.mean(0), ids, "conductance",
                                      {"head": "true class", "n_steps": n_steps})
    rankings["conductance_pos"] = _scores(per_head["pos"].mean(0), ids, "conductance_pos")
    rankings["conductance_neg"] = _scores(per_head["neg"].mean(0), ids, "conductance_neg")
    rankings["conductance_both"] = _order_scores(
        interleave(rankings["conductance_pos"].ranking(), rankings["conductance_neg"].ranking()),
        ids, "conductance_both")
    for name in ("conductance", "conductance_pos", "conductance_neg", "conductance_both"):
        rankings[name].wall_time = cond_seconds
    rankings["weight_norm"] = _relabel(weight_norm(model, unit_weight_players(model)), ids)
    rankings["activation_norm"] = activation_norm(head, players, pooled["validation"])
    rankings["loo"] = leave_one_out(value_game)
    rankings["random"] = random_ranking(ids, seed)

    say("removal curves on the test split")
    compare = run_compare(
        head, pooled["validation"], y["validation"], pooled["test"], y["test"],
        players=players, shapley_method=None, baselines=(), rankings=rankings,
        random_draws=random_draws, game_options={"pass_size": PASS_SIZE}, seed=seed)
    test_game = ModelGame(head, pooled["test"], y["test"], "accuracy", players=players,
                          reference=pooled["validation"], pass_size=PASS_SIZE)
    seed_curves = removal_curves(test_game, np.stack([r.ranking() for r in seed_results]),
                                 len(ids), len(ids))

    say("feature selection")
    acts = {s: unit_activations(head, pooled[s]) for s in ("train", "selection", "test")}
    labels = {s: y[s].numpy() for s in ("train", "selection", "test")}
    sizes = selection_sizes or {"pool": (1, 2, 3, 5, 10, 20, 50, 100, 256),
                                "dense": (1, 2, 3, 5, 10)}
    selection_rows = []
    for layer in players.layers:
        if layer.name not in sizes:
            continue
        orders = {}
        for name in RANKINGS:
            if name == "conductance_both":
                orders[name] = _within(interleave(rankings["conductance_pos"].ranking(),
                                                  rankings["conductance_neg"].ranking()), layer)
            else:
                orders[name] = _within(rankings[name].ranking(), layer)
        feats = {s: a[:, layer.slice] for s, a in acts.items()}
        for row in feature_selection(feats, labels, orders,
                                     [m for m in sizes[layer.name] if m <= layer.n_units],
                                     seed=seed):
            selection_rows.append({"layer": layer.name, **row})

    facts = _facts(setup, rankings, seed_results, compare, seed_curves, per_head, completeness)
    settings = {
        "seed": seed, "shapley_seeds": list(shapley_seeds),
        "max_evaluations_per_seed": max_evaluations, "shapley_method": "auto",
        "conductance_steps": n_steps, "conductance_baseline": "zero embeddings (padding)",
        "random_draws": random_draws, "length": setup.length, "vocabulary": len(setup.vocab),
        "splits": setup.data.sizes(), "split_seed": setup.data.seed,
        "split_fractions": list(setup.data.fractions), "replacement": "mean",
        "metric": "accuracy", "n_players": len(ids), "torch_threads": torch.get_num_threads(),
        "training": {"epochs_run": len(setup.training.train_accuracy),
                     "best_epoch": setup.training.best_epoch,
                     "seconds": round(setup.training.seconds, 1),
                     "selection_accuracy": setup.training.selection_accuracy},
        "accuracy": setup.accuracy,
    }
    study = TextCNNStudy(setup, rankings, seed_results, compare, seed_curves, selection_rows,
                         settings, facts)
    study.settings["wall_time_s"] = round(time.perf_counter() - started, 1)
    if out_dir is not None:
        write_text_cnn_study(study, out_dir)
    return study


def _within(order: np.ndarray, layer: Any) -> np.ndarray:
    """The units of ``layer`` in ``order``, as indices within the layer."""
    order = np.asarray(order)
    inside = order[(order >= layer.offset) & (order < layer.offset + layer.n_units)]
    return inside - layer.offset


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


def _facts(setup: TextCNNSetup, rankings: dict[str, ShapleyResult],
           seed_results: list[ShapleyResult], compare: CompareResult, seed_curves: np.ndarray,
           per_head: dict[str, np.ndarray], completeness: dict[str, float]) -> dict[str, Any]:
    """Numbers the markdown quotes: curve areas, agreement between seeds and rankings."""
    small = compare.small_k
    orders = [r.ranking() for r in seed_results]
    seed_overlap = [_overlap(orders[i], orders[j], 10)
                    for i in range(len(orders)) for j in range(i + 1, len(orders))]
    shap = rankings[SHAPLEY]
    agreement = {name: {"spearman": _spearman(shap.values, res.values),
                        "top10_overlap": _overlap(shap.ranking(), res.ranking(), 10)}
                 for name, res in rankings.items() if name not in (SHAPLEY, "random")}
    areas = {name: compare.drop_area(name) for name in compare.curves}
    area_by_k = {}
    for kk in (10, 25, 50):
        if kk <= compare.max_k:
            area_by_k[str(kk)] = {n: compare.drop_area(n, kk) for n in compare.curves}
    pos, neg = per_head["pos"].mean(0), per_head["neg"].mean(0)
    return {
        "small_k": small, "drop_area": areas, "drop_area_by_k": area_by_k,
        "seed_drop_area": [float(c[1 : small + 1].mean()) for c in seed_curves],
        "seed_top10_overlap": seed_overlap,
        "shapley_vs": agreement,
        "pos_neg_conductance_spearman": _spearman(pos, neg),
        "conductance_completeness_median_gap": completeness,
        "units_to_level": {n: c.units_to_level for n, c in compare.curves.items()},
        "level": compare.level, "full_test": compare.full,
        "top10": {n: [r.players[i] for i in r.ranking()[:10]] for n, r in rankings.items()
                  if n != "random"},
    }


# ------------------------------------------------------------------------------ files
def write_text_cnn_study(study: TextCNNStudy, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write into ``out_dir``: ``removal.csv`` (ranking, removed, test_accuracy,
    validation_accuracy, unit),
    ``removal_seeds.csv``, ``feature_selection.csv``, ``scores.csv`` (every unit's score by
    every ranking), ``summary.json``, ``removal.png``, ``feature_selection.png``, and the
    compare files (``compare.csv``, ``levels.csv``, ``values/<ranking>/``)."""
    from neuronshapley.studies.compare import write_compare

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = write_compare(study.compare, out)
    files.pop("plot", None)
    (out / "compare.png").unlink(missing_ok=True)
    files["removal"] = out / "removal.csv"
    atomic_write_text(files["removal"], csv_text([
        {"ranking": r["ranking"], "removed": r["removed"], "test_accuracy": r["heldout"],
         "validation_accuracy": r["value_data"], "unit": r["unit"]}
        for r in study.compare.rows()]))
    files["removal_seeds"] = out / "removal_seeds.csv"
    atomic_write_text(files["removal_seeds"], csv_text([
        {"seed": int(r.seed) if r.seed is not None else "", "removed": k,
         "test_accuracy": float(study.seed_curves[i, k]), "evaluations": int(r.evaluations)}
        for i, r in enumerate(study.seed_results) for k in range(study.seed_curves.shape[1])]))
    files["feature_selection"] = out / "feature_selection.csv"
    atomic_write_text(files["feature_selection"], csv_text(study.selection_rows))
    ids = study.rankings[SHAPLEY].players
    score_rows = []
    for i, pid in enumerate(ids):
        row: dict[str, Any] = {"unit": pid}
        for name, res in study.rankings.items():
            row[name] = float(res.values[i])
        for r in study.seed_results:
            row[f"shapley_seed{r.seed}"] = float(r.values[i])
        score_rows.append(row)
    files["scores"] = out / "scores.csv"
    atomic_write_text(files["scores"], csv_text(score_rows))
    files["removal_plot"] = plot_text_removal(study, out / "removal.png")
    files["selection_plot"] = plot_feature_selection(study, out / "feature_selection.png")
    files["summary"] = out / "summary.json"
    summary = {"settings": study.settings, "facts": study.facts,
               "compare": study.compare.to_json(), "versions": library_versions()}
    atomic_write_text(files["summary"], json.dumps(json_safe(summary), indent=2) + "\n")
    study.files = files
    return files


def _caption(study: TextCNNStudy) -> str:
    s = study.settings
    sp = s["splits"]
    return (f"Kim CNN on Rotten Tomatoes (splits by film, seed {s['split_seed']}: train "
            f"{sp['train']}, selection {sp['selection']}, validation {sp['validation']}, test "
            f"{sp['test']}). Scores on validation; Shapley: auto, {s['max_evaluations_per_seed']:,}"
            f" evaluations x seeds {s['shapley_seeds']}; conductance {s['conductance_steps']} "
            f"steps; random: {s['random_draws']} draws")


def plot_text_removal(study: TextCNNStudy, path: str | os.PathLike[str],
                      plot_k: int = 60) -> Path:
    """Test accuracy against the number of top units removed, per ranking (two panels:
    k <= plot_k, and all k), each Shapley seed dotted."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    comp = study.compare
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, kmax in zip(axes, (min(plot_k, comp.max_k), comp.max_k), strict=True):
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
        for i in range(len(study.seed_results)):
            ax.plot(ks, study.seed_curves[i, : kmax + 1], color=COLOURS[SHAPLEY], lw=0.8,
                    ls=":", label="shapley, one seed" if i == 0 else None)
        ax.axhline(0.5, color="k", lw=0.8, ls=":")
        ax.set_xlabel("units removed (top-k of each ranking, mean replacement)")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower left", framealpha=0.85)
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
