"""Regenerate ``docs/report-screenshot.png``: run the demo, render its report in Chromium.

    python scripts/make_screenshot.py            # needs Chromium (scripts/install_chromium.sh)

The report shown is the demo's (seed 0, its default budget): the digits CNN trained on its
train split, values on the valuation split, removal check on the test split.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "report-screenshot.png"


def main() -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("Chromium not found: run scripts/install_chromium.sh first")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "demo"
        subprocess.run([sys.executable, "-m", "neuronshapley", "demo", "--out", str(folder),
                        "--no-progress"], check=True)
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                        "--hide-scrollbars", f"--screenshot={OUT}", "--window-size=1100,1500",
                        (folder / "report.html").as_uri()], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
