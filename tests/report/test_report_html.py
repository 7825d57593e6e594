"""The HTML report: self-contained, rebuilt from saved files, with or without the model."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

import neuronshapley as ns
from neuronshapley.report import write_report
from neuronshapley.report.figures import load_removal_curves, removal_sizes

torch.set_num_threads(1)
PNG = b"\x89PNG\r\n\x1a\n"


def _result(players: list[str], seed: int = 0, method: str = "tmab") -> ns.ShapleyResult:
    rng = np.random.default_rng(seed)
    v = rng.normal(0, 0.02, len(players))
    return ns.ShapleyResult(v, v - 0.01, v + 0.01, rng.integers(5, 50, len(players)), 900,
                            players, method, seed, {"k": 3}, 1.5, 0.95,
                            info={"metric": "accuracy", "walks": 30})


def _images(page: str) -> list[bytes]:
    srcs = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    return [base64.b64decode(s.split(",", 1)[1]) for s in srcs]


def _self_contained(page: str) -> None:
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<link" not in page and "<script src" not in page
    assert all(img.startswith(PNG) for img in _images(page))


def test_report_from_saved_values_only(tmp_path: Path) -> None:
    players = [f"conv1:{i}" for i in range(6)] + [f"fc:{i}" for i in range(4)]
    _result(players).save(tmp_path)
    path = write_report(tmp_path)
    page = path.read_text()
    _self_contained(page)
    assert len(_images(page)) == 4  # values, top units, layers, samples (no curves, no units)
    assert "No model was available" in page and 'data-images-ok' in page
    for name in ("values", "top_units", "layers", "samples"):
        assert (tmp_path / "figures" / f"{name}.png").is_file()
    assert "conv1:" in page and "accuracy" in page


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def _game() -> ns.ModelGame:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(30, 1, 6, 6, generator=g)
    return ns.ModelGame(TinyCNN().eval(), x, torch.randint(0, 3, (30,), generator=g),
                        metric="log_prob")


def test_report_with_the_model_then_without(tmp_path: Path) -> None:
    game = _game()
    result = ns.estimate(game, method="permutation", n_permutations=4, progress=False)
    result.info["metric"] = "log_prob"
    result.save(tmp_path)
    page = write_report(tmp_path, game=game, units=2, steps=8).read_text()
    _self_contained(page)
    assert len(_images(page)) == 5 + 2 * 2  # figures + (examples, feature vis) per unit
    assert (tmp_path / "removal.csv").is_file()
    index = json.loads((tmp_path / "figures" / "units" / "units.json").read_text())
    assert [u["rank"] for u in index] == [1, 2] and index[0]["featvis"] == "unit01_featvis.png"
    rebuilt = write_report(tmp_path).read_text()  # no model: saved PNGs are reused
    assert len(_images(rebuilt)) == 9 and "earlier run with the model" in rebuilt


def test_compare_csv_is_preferred(tmp_path: Path) -> None:
    players = [f"l:{i}" for i in range(5)]
    _result(players).save(tmp_path)
    rows = ["ranking,removed,heldout,value_data,unit"]
    for name, slope in (("shapley", 0.2), ("random", 0.05), ("loo", 0.1)):
        rows += [f"{name},{k},{0.9 - slope * k},{0.9 - slope * k},l:{k}" for k in range(4)]
    (tmp_path / "compare.csv").write_text("\n".join(rows) + "\n")
    curves, caption = load_removal_curves(tmp_path)
    assert [c.name for c in curves] == ["shapley", "random", "loo"] and "compare.csv" in caption
    page = write_report(tmp_path, game=None).read_text()
    assert "compare.csv" in page and not (tmp_path / "removal.csv").exists()


def test_demo_files_are_read(tmp_path: Path) -> None:
    players = [f"features.0:{i}" for i in range(8)]
    r = _result(players)
    r.info.pop("metric")
    r.save(tmp_path)
    (tmp_path / "summary.json").write_text(json.dumps({"settings": {"metric": "accuracy"}}))
    lines = ["split,removed,top_accuracy,random_mean,random_min,random_max,random_draws,"
             "top_removed"]
    for split in ("test", "train"):
        lines += [f"{split},{k},{0.9 - 0.1 * k},{0.9 - 0.02 * k},{0.8 - 0.02 * k},"
                  f"{0.95 - 0.02 * k},20," for k in (0, 1, 2, 3)]
    (tmp_path / "ablation.csv").write_text("\n".join(lines) + "\n")
    page = write_report(tmp_path).read_text()
    assert "From ablation.csv" in page and "contribution to the accuracy" in page
    assert len(_images(page)) == 5


def test_other_runs_and_vector_results(tmp_path: Path) -> None:
    players = [f"l:{i}" for i in range(5)]
    _result(players).save(tmp_path)
    _result(players, seed=1, method="permutation").save(tmp_path / "mc")
    assert "Other runs found: mc" in write_report(tmp_path).read_text()
    v = np.random.default_rng(0).normal(size=(5, 2))
    vec = ns.ShapleyResult(v, v - 0.1, v + 0.1, np.full(5, 9), 100, players, "tmab", 0,
                           {"output": 1}, output_names=["class0", "class1"],
                           info={"metric": "class_recall"})
    vec.save(tmp_path / "vec")
    assert "class_recall [class1]" in write_report(tmp_path / "vec").read_text()


def test_removal_sizes() -> None:
    assert removal_sizes(5) == [0, 1, 2, 3, 4, 5]
    sizes = removal_sizes(400)
    assert sizes[0] == 0 and sizes[-1] == 400 and len(sizes) <= 16
