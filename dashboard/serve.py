"""``python -m dashboard.serve [options]``: ``streamlit run dashboard``, imports done first.

A new server's first page otherwise waits while its session's script run imports
NumPy, pandas, PyArrow, DuckDB, Plotly and the dashboard's modules (seconds without a
byte-code cache). This entry imports them in the server process before Streamlit
starts, then runs Streamlit's own command line (``streamlit run dashboard`` plus the
given options, e.g. ``--server.port``): the script runner finds them in
``sys.modules``. Streamlit binds 127.0.0.1 unless told otherwise
(``.streamlit/config.toml``; :func:`dashboard.launch.dashboard_command` passes it too).

It also serves Streamlit's front end with an ``index.html`` that preloads the Plotly
chunk (:func:`preloading_static_dir`), so that a new browser has it compiled when
the first chart arrives.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
"""What ``streamlit run`` gets: this folder (Streamlit runs its ``streamlit_app.py``)."""

WARM_MODULES: tuple[str, ...] = (
    "numpy",
    "pandas",
    "pyarrow",
    "pyarrow.pandas_compat",
    "duckdb",
    "plotly.graph_objects",
    "plotly.io",
    "plotly.tools",
    "dashboard.app_config",
    "dashboard.db",
    "dashboard.pair_view",
    "dashboard.strategy_view",
    "dashboard.pipeline_health",
    "dashboard.snapshot",
    "dashboard.render_pair",
    "dashboard.render_strategy",
    "dashboard.render_health",
    "dashboard.render_data",
    "dashboard.scanner",
    "dashboard.app_data",
)
"""What the page script imports, heavy libraries first (not the script itself)."""

_CACHE_LOGGER = "streamlit.runtime.caching.cache_data_api"
"""Says "No runtime found" when an ``st.cache_data`` function is defined before the
server runs. Harmless here: each cache gets its storage at its first call, in the
running server; so it is quiet during the warm-up."""

SAMPLE_FIGURE = {
    "data": [{"type": kind} for kind in ("scatter", "candlestick", "bar", "heatmap")],
    "layout": {"xaxis": {"type": "date"}, "yaxis2": {"overlaying": "y"}},
}
"""One trace of each type the dashboard draws (Plotly loads their classes on first use)."""


def warm_up() -> None:
    """Import :data:`WARM_MODULES` and put one figure through ``st.plotly_chart``'s steps."""
    importlib.import_module("streamlit")  # which sets up its loggers (and their levels)
    logger = logging.getLogger(_CACHE_LOGGER)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        for name in WARM_MODULES:
            importlib.import_module(name)
    finally:
        logger.setLevel(level)
    import plotly.io
    import plotly.tools

    figure = plotly.tools.return_figure_from_figure_or_data(SAMPLE_FIGURE, validate_figure=True)
    plotly.io.to_json(figure, validate=False)


PRELOAD_ROOTS: tuple[str, ...] = ("PlotlyChart",)
"""Front-end chunks (file names before the hash) that ``index.html`` preloads."""

_IMPORT_RE = re.compile(r'(?:from|import)\s*"\./([\w.-]+\.js)"')
"""A static import of a sibling chunk in Streamlit's minified bundles."""

LOG = logging.getLogger("pairflow.dashboard")


def chunks_to_preload(js_dir: Path, roots: tuple[str, ...], have: set[str]) -> list[str]:
    """The chunks named ``roots`` and everything they import statically, minus ``have``.

    A root matches a file name's part before the first dot (``PlotlyChart`` ->
    ``PlotlyChart.D9Z0_fxz.js``); roots come first, then their imports, breadth first.
    """
    by_name = {f.name: f for f in js_dir.iterdir() if f.suffix == ".js"}
    queue = [n for r in roots for n in sorted(by_name) if n.split(".")[0] == r]
    found: list[str] = []
    while queue:
        name = queue.pop(0)
        if name in found or name in have or name not in by_name:
            continue
        found.append(name)
        queue.extend(_IMPORT_RE.findall(by_name[name].read_text("utf-8", errors="replace")))
    return found


def preloading_static_dir(dest: Path, static_dir: Path) -> Path | None:
    """Streamlit's static folder in ``dest`` with an ``index.html`` that preloads Plotly.

    Streamlit's front end fetches an element's code (a JavaScript chunk) when the
    first such element arrives over the session's WebSocket. The Plotly chunk is
    ~4.7 MB, and on this page it is requested after the sidebar's widgets have
    loaded theirs. A ``<link rel="modulepreload">`` of it (and of its static imports)
    in ``index.html`` lets the browser fetch and compile it while the page starts.
    ``dest`` gets symbolic links to every entry of ``static_dir`` but ``index.html``
    (Streamlit follows them). Returns ``None`` (serve ``static_dir`` as is) when the
    main script tag or the chunk is not found: another Streamlit version.
    """
    try:
        html = (static_dir / "index.html").read_text(encoding="utf-8")
        have = set(re.findall(r'(?:href|src)="\./static/js/([\w.-]+\.js)"', html))
        chunks = chunks_to_preload(static_dir / "static" / "js", PRELOAD_ROOTS, have)
    except OSError:
        return None
    anchor = re.search(r'<script type="module"[^>]*src="[^"]+"></script>', html)
    if anchor is None or not chunks:
        return None
    links = "".join(
        f'\n    <link rel="modulepreload" crossorigin href="./static/js/{name}">' for name in chunks
    )
    dest.mkdir(parents=True, exist_ok=True)
    for entry in static_dir.iterdir():
        if entry.name != "index.html":
            (dest / entry.name).symlink_to(entry)
    (dest / "index.html").write_text(
        html[: anchor.end()] + links + html[anchor.end() :], encoding="utf-8"
    )
    return dest


def install_preload(dest: Path) -> None:
    """Make Streamlit serve :func:`preloading_static_dir` (logs and skips on failure)."""
    from streamlit import file_util

    served = preloading_static_dir(dest, Path(file_util.get_static_dir()))
    if served is None:
        LOG.info("no Plotly preload: Streamlit's static files are not as this version expects")
        return
    file_util.get_static_dir = lambda: str(served)


def main(argv: list[str] | None = None) -> None:
    """Warm up, then ``streamlit run dashboard`` with ``argv`` (default: the command line)."""
    warm_up()
    import atexit
    import shutil
    import tempfile

    static = Path(tempfile.mkdtemp(prefix="pairflow-static-"))
    atexit.register(shutil.rmtree, static, ignore_errors=True)
    install_preload(static)
    from streamlit.web import cli

    options = sys.argv[1:] if argv is None else argv
    cli.main(["run", str(APP_DIR), *options], prog_name="streamlit")


if __name__ == "__main__":
    main()
