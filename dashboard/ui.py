"""Display helpers shared by every dashboard view: number/time formatting, KPI cards.

Nothing here reads the database; the view modules (:mod:`dashboard.render_pair`,
:mod:`dashboard.render_strategy`, :mod:`dashboard.render_health`,
:mod:`dashboard.render_data`) draw with these.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import streamlit as st

from pairflow.timeutil import UTC

# The newest bar is stale (flow stopped?) when it ended longer ago than this.
STALE_AFTER_S = 30.0
PLOTLY_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


def fmt_price(value: float | None) -> str:
    """Price with a precision that suits its size (``61,837.63``, ``0.0001234``)."""
    if value is None:
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.2f}"
    if abs(value) >= 1:
        return f"{value:,.4f}"
    return f"{value:.6g}"


def fmt_number(value: object, spec: str) -> str:
    """Format ``value`` with ``spec``, or an em dash when it is missing."""
    if value is None:
        return "—"
    try:
        return format(float(value), spec)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "—"


def fmt_age(seconds: float, *, compact: bool = False) -> str:
    """Human age: ``4 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``, ``838 days``.

    ``compact`` keeps only the largest unit (``3 h``, ``838 d``).
    """
    s = max(0.0, seconds)
    if compact and s >= 3600:
        return f"{s / 86_400:,.0f} d" if s >= 86_400 * 2 else f"{s / 3600:.0f} h"
    if s < 90:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    if s < 86_400:
        h, rest = divmod(int(s), 3600)
        return f"{h} h {rest // 60} min"
    d, rest = divmod(int(s), 86_400)
    return f"{d} d {rest // 3600} h" if d < 3 else f"{d:,} days"


def fmt_bytes(n: int) -> str:
    """Bytes as ``12.3 MB``."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # pragma: no cover


WORD_JOINER = "\u2060"
"""An invisible character that keeps ``23:59:59`` from reading as an emoji shortcode."""


def fmt_clock(ts: datetime, fmt: str = "%H:%M:%S") -> str:
    """``ts`` in UTC as ``fmt``, safe to put in Streamlit markdown.

    Streamlit's markdown loads its emoji plugin (~260 kB of JavaScript that a new
    browser must fetch and compile before the block around it, charts included,
    is drawn) whenever the text matches ``:word:``, and ``23:59:59`` does. An
    invisible word joiner after each colon breaks the pattern; the text looks the
    same.
    """
    return ts.astimezone(UTC).strftime(fmt).replace(":", ":" + WORD_JOINER)


def fmt_time(ts: datetime | None) -> str:
    """``2024-08-08 23:59:59 UTC`` (markdown-safe, :func:`fmt_clock`)."""
    if ts is None:
        return "—"
    return fmt_clock(ts, "%Y-%m-%d %H:%M:%S UTC")


def pd_time(value: object) -> datetime | None:
    """A pandas/NumPy timestamp as an aware datetime (``None`` if missing)."""
    if value is None or pd.isna(value):
        return None
    ts = pd.Timestamp(value)
    return (ts if ts.tzinfo else ts.tz_localize("UTC")).to_pydatetime()


def table_height(frame: object, max_rows: int = 12) -> int:
    """Pixel height that shows every row of ``frame`` (up to ``max_rows``)."""
    n = len(frame)  # type: ignore[arg-type]
    return 38 + 35 * max(1, min(n, max_rows))


def kpi(
    col: st.delta_generator.DeltaGenerator,
    label: str,
    value: str,
    note: str | None = None,
    tone: str = "off",
) -> None:
    """One bordered KPI card; ``note`` is shown below the value in ``tone``.

    Args:
        col: Where to draw it.
        label: Card title.
        value: Main value.
        note: Short text under the value (no arrow), or ``None``.
        tone: ``off`` (grey), ``normal`` (green) or ``inverse`` (red).
    """
    col.metric(
        label,
        value,
        delta=note,
        delta_color=tone,  # type: ignore[arg-type]
        delta_arrow="off",
        border=True,
        height="stretch",
    )


def plotly_chart(fig: object, key: str) -> None:
    """Draw ``fig`` full width under the stable ``key`` (live refreshes update it in place)."""
    st.plotly_chart(fig, key=key, config=PLOTLY_CONFIG, width="stretch")


def missing_db_message(db_path: Path) -> str:
    """What to do when the database file does not exist yet."""
    return (
        f"**No database yet** at `{db_path}`.\n\n"
        "Start the flow to create it, for example a replay of the shared recording:\n\n"
        "```\nPAIRFLOW_SOURCE=replay:PATH.ndjson.gz PAIRFLOW_REPLAY_SPEED=max "
        "python -m bytewax.run dataflow\n```\n"
        "or point the dashboard at another file with `PAIRFLOW_DB`."
    )
