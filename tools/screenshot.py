"""Take the README screenshots from the running demo (flow + dashboard, real browser).

    uv run python tools/screenshot.py [--seconds 40]

Starts the demo's flow (the shipped recording in loop mode at real time) into a temp
DuckDB file, starts the dashboard beside it, waits, and saves full-page screenshots
of the pair view and the health view to ``docs/`` with headless Debian Chromium
(``/usr/bin/chromium``; never a downloaded browser).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dashboard.launch import free_port, start_dashboard, wait_until_up
from pairflow.demo import RECORDING

ROOT = Path(__file__).resolve().parent.parent

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
CHART = '[data-testid="stPlotlyChart"]'


def _settled(page: object, charts: int) -> None:
    """Wait until a refresh has finished drawing (status says "drawn in") with ``charts``."""
    page.wait_for_function(  # type: ignore[attr-defined]
        """n => document.body.innerText.includes('drawn in') &&
            [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
              .filter(e => e.offsetParent !== null && e.querySelector('.main-svg')).length >= n""",
        arg=charts,
        timeout=60_000,
    )


def _shot(page: object, path: Path, charts: int = 0) -> None:
    height = page.evaluate(  # type: ignore[attr-defined]
        "document.querySelector('[data-testid=\"stMainBlockContainer\"]').scrollHeight"
    )
    page.set_viewport_size({"width": 1600, "height": int(height) + 40})  # type: ignore[attr-defined]
    page.wait_for_timeout(2000)  # type: ignore[attr-defined]
    _settled(page, charts)
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    print(f"saved {path}")


def main() -> None:
    """Run the demo, wait, and save both screenshots."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=40.0, help="let the demo run this long")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "demo.db"
        env = dict(os.environ)
        env.update(
            PAIRFLOW_SOURCE=f"replay:{RECORDING}", PAIRFLOW_REPLAY_SPEED="1",
            PAIRFLOW_REPLAY_LOOP="1", PAIRFLOW_DB=str(db),
        )  # fmt: skip
        flow = subprocess.Popen([sys.executable, str(ROOT / "dataflow.py")], cwd=ROOT, env=env)
        port = free_port()
        dash = start_dashboard(
            port,
            db,
            env={"PAIRFLOW_REDIS_URL": env.get("PAIRFLOW_REDIS_URL", "redis://127.0.0.1:6379/0")},
        )
        try:
            wait_until_up(port, dash)
            time.sleep(args.seconds)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
                page.wait_for_selector(CHART, timeout=60_000)
                page.wait_for_timeout(5000)
                _shot(page, ROOT / "docs" / "screenshot.png", charts=7)
                # the views are a segmented control (radio buttons), not st.tabs
                page.get_by_role("radio", name="Pipeline health", exact=True).click()
                page.wait_for_timeout(4000)
                _shot(page, ROOT / "docs" / "screenshot-health.png", charts=2)
                browser.close()
        finally:
            flow.send_signal(signal.SIGTERM)
            dash.terminate()
            flow.wait(60)
            dash.wait(30)


if __name__ == "__main__":
    main()
