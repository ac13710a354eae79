"""Time to the first chart in Chromium: pairflow's dashboard against a one-chart Streamlit page.

    uv run --frozen python benchmarks/first_chart.py [--repeat 5] [--db FILE]

Both servers run side by side on loopback (started and warmed up first, so this is a
page opened on a *running* server). For each, alternating, ``--repeat`` times:

* **new browser**: a fresh browser context (empty cache) opens the page; seconds from
  ``goto`` to the first visible Plotly chart (``.js-plotly-plot``);
* **browser that was here before**: the same context opens the page again.

The **baseline** is the smallest Streamlit + Plotly page there is: ``st.plotly_chart``
of one 10-point line, no data access. What it takes is what Streamlit's front end
(its JavaScript, the WebSocket session, the Plotly bundle) costs in this browser on
this machine; pairflow's page cannot be faster than that. The DB is a replay of the
shipped recording by the real flow unless ``--db`` is given. Headless Debian Chromium
(``/usr/bin/chromium``), never a downloaded browser. Prints a Markdown table; never
asserts timings.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dashboard.launch import free_port, serve_dashboard, wait_until_up
from pairflow.testing import RECORDING, ROOT
from pairflow.testing.bench import flow_env, machine, md_table

CHROMIUM = "/usr/bin/chromium"
BASELINE_APP = """
import plotly.graph_objects as go
import streamlit as st

st.title("baseline")
st.plotly_chart(go.Figure(go.Scatter(x=list(range(10)), y=list(range(10)))))
"""


def replay_db(tmp: Path) -> Path:
    """The shipped recording replayed by the real flow at max speed (no Redis)."""
    db = tmp / "replay.db"
    env = flow_env(source=f"replay:{RECORDING}", replay_speed="max", redis_url="", db=str(db))
    subprocess.run(
        [sys.executable, "-m", "bytewax.run", "dataflow"], cwd=ROOT, env=env, check=True,
        capture_output=True,
    )  # fmt: skip
    return db


@contextlib.contextmanager
def serve_baseline(tmp: Path):  # noqa: ANN201 - a context manager
    """``streamlit run`` of :data:`BASELINE_APP` on a free loopback port."""
    app = tmp / "baseline_app.py"
    app.write_text(BASELINE_APP)
    port = free_port()
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(app), "--server.address", "127.0.0.1",
        "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    with (tmp / "baseline.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_up(port, proc, timeout_s=60)
            yield f"http://127.0.0.1:{port}/"
        finally:
            proc.terminate()
            proc.wait(15)


def first_chart_s(page, url: str) -> float:  # noqa: ANN001 - a Playwright page
    """Seconds from ``goto`` to the first visible Plotly chart."""
    t0 = time.monotonic()
    page.goto(url, wait_until="commit")
    page.locator(".js-plotly-plot").first.wait_for(state="visible", timeout=60_000)
    return time.monotonic() - t0


def main() -> None:
    """Serve both pages, time them alternately, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--db", type=Path, default=None)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="pairflow-first-chart-") as tmp_s:
        tmp = Path(tmp_s)
        db = args.db or replay_db(tmp)
        port = free_port()
        with (
            serve_dashboard(port, db, log_path=tmp / "dashboard.log"),
            serve_baseline(tmp) as baseline_url,
            sync_playwright() as pw,
        ):
            urls = {"pairflow dashboard": f"http://127.0.0.1:{port}/", "baseline": baseline_url}
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            times: dict[tuple[str, str], list[float]] = {}
            for k in range(-1, args.repeat):  # k = -1: each server's first session
                for name, url in urls.items():
                    ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
                    page = ctx.new_page()
                    new = first_chart_s(page, url)
                    again = first_chart_s(page, url)
                    ctx.close()
                    if k >= 0:
                        times.setdefault((name, "new"), []).append(new)
                        times.setdefault((name, "again"), []).append(again)
            browser.close()
    rows = []
    for name in urls:
        new, again = times[(name, "new")], times[(name, "again")]
        rows.append(
            [name, f"{statistics.median(new):.2f}", f"{min(new):.2f}–{max(new):.2f}",
             f"{statistics.median(again):.2f}", f"{min(again):.2f}–{max(again):.2f}"]
        )  # fmt: skip
    print(f"{machine()}; median of {args.repeat} alternating runs, running servers\n")
    print(
        md_table(
            ["page", "new browser s", "range", "browser that was here before s", "range"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
