"""``python -m dashboard.serve [options]``: ``streamlit run dashboard``, imports done first.

A new server's first page otherwise waits while its session's script run imports
NumPy, pandas, PyArrow, DuckDB, Plotly and the dashboard's modules (seconds without a
byte-code cache). This entry imports them in the server process before Streamlit
starts, then runs Streamlit's own command line (``streamlit run dashboard`` plus the
given options, e.g. ``--server.port``): the script runner finds them in
``sys.modules``. Streamlit binds 127.0.0.1 unless told otherwise
(``.streamlit/config.toml``; :func:`dashboard.launch.dashboard_command` passes it too).
"""

from __future__ import annotations

import importlib
import logging
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


def main(argv: list[str] | None = None) -> None:
    """Warm up, then ``streamlit run dashboard`` with ``argv`` (default: the command line)."""
    warm_up()
    from streamlit.web import cli

    options = sys.argv[1:] if argv is None else argv
    cli.main(["run", str(APP_DIR), *options], prog_name="streamlit")


if __name__ == "__main__":
    main()
