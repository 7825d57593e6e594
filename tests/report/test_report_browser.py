"""Open the report in a real headless browser (Debian's chromium): every image decodes.

Skipped only when no chromium is installed and this is not CI (``CI`` set): CI installs it
with ``scripts/install_chromium.sh``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import neuronshapley as ns
from neuronshapley.report import write_report

torch.set_num_threads(1)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed in CI: run scripts/install_chromium.sh")
    pytest.skip("chromium not installed (bash scripts/install_chromium.sh)")


def _browser(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                          nn.Flatten(), nn.Linear(16, 3)).eval()
    g = torch.Generator().manual_seed(0)
    game = ns.ModelGame(model, torch.rand(24, 1, 6, 6, generator=g),
                        torch.randint(0, 3, (24,), generator=g), metric="log_prob")
    ns.estimate(game, method="permutation", n_permutations=3, progress=False).save(folder)
    return write_report(folder, game=game, units=1, steps=6)


def test_all_images_decode_in_chromium(report: Path, tmp_path: Path) -> None:
    binary = _chromium()
    n_images = len(re.findall(r"<img ", report.read_text()))
    proc = _browser(binary, tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom",
                    report.resolve().as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    body = re.search(r"<body[^>]*>", proc.stdout)
    assert body, proc.stdout[:500]
    assert 'data-images-ok="yes"' in body.group(0), body.group(0)
    assert f'data-images="{n_images}"' in body.group(0) and n_images == 7


def test_screenshot_is_not_blank(report: Path, tmp_path: Path) -> None:
    binary = _chromium()
    shot = tmp_path / "shot.png"
    proc = _browser(binary, tmp_path / "profile", f"--screenshot={shot}",
                    "--window-size=1000,1400", "--hide-scrollbars", report.resolve().as_uri())
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    with Image.open(shot) as im:
        assert im.size == (1000, 1400)
        pixels = np.asarray(im.convert("L"), dtype=np.float32)
    assert pixels.std() > 10  # text and figures, not an empty page


def test_the_check_catches_a_broken_image(tmp_path: Path) -> None:
    from neuronshapley.report.html import _IMAGE_CHECK

    binary = _chromium()
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><img alt="x" '
                    'src="data:image/png;base64,iVBORw0KGgoAAAA=">' + _IMAGE_CHECK
                    + "</body></html>")
    proc = _browser(binary, tmp_path / "profile", "--virtual-time-budget=5000", "--dump-dom",
                    page.as_uri())
    assert 'data-images-ok="no"' in proc.stdout
