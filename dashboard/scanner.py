"""The "Scanner" tab: the latest pair scan per timeframe, as a heat map and a table.

Self-contained (the app mounts it with :func:`render_scanner_tab`). Reads only the
``scan`` table (docs/design.md "Pair scanner"), with parameterised SQL on a read-only
connection the caller provides; computes no statistic.

* :func:`scan_times` / :func:`latest_scan`: the newest scan of each timeframe.
* :class:`ScanFilter` / :func:`filter_scan`: q-value max, half-life range, |z| min.
* :func:`heatmap_figure`: symbol x symbol map of EG p (or q) on a log colour scale,
  readable at N = 30 (435 pairs): square cells, small labels, one invisible marker
  per cell so a click selects the pair.
* :func:`table_spec`: the columns and formats of the sortable table.
* :func:`render_scanner_tab`: Streamlit; a selected row or cell sets
  ``st.session_state["pair"]`` (the pair view's selectbox) and ``["tf"]``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import plotly.graph_objects as go

SCAN_COLUMNS: tuple[str, ...] = (
    "rank", "pair", "eg_pvalue", "eg_qvalue", "adf_pvalue", "half_life", "beta", "corr",
    "zscore",
)  # fmt: skip
"""Columns the tab reads from ``scan`` (besides ``tf`` and ``ts``)."""

P_FLOOR = 1e-6
"""p/q-values below this share the darkest colour of the heat map."""

ConFactory = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
"""Opens a read-only connection for one refresh, e.g. ``lambda: open_readonly(path)``."""


# --------------------------------------------------------------------------- queries


def scan_times(con: duckdb.DuckDBPyConnection) -> dict[str, datetime]:
    """Newest scan time per timeframe (empty if nothing was scanned yet)."""
    rows = con.execute("SELECT tf, max(ts) FROM scan GROUP BY tf").fetchall()
    return {tf: ts for tf, ts in rows}


def latest_scan(con: duckdb.DuckDBPyConnection, tf: str) -> pd.DataFrame:
    """The newest scan of ``tf``: one row per pair, ordered by rank.

    Returns:
        Columns ``ts`` and :data:`SCAN_COLUMNS`; empty if ``tf`` has no scan.
    """
    cols = ", ".join(f'"{c}"' for c in SCAN_COLUMNS)
    sql = (
        f"SELECT ts, {cols} FROM scan "
        "WHERE tf = ? AND ts = (SELECT max(ts) FROM scan WHERE tf = ?) ORDER BY rank, pair"
    )
    return con.execute(sql, [tf, tf]).df()


@dataclass(frozen=True)
class ScanFilter:
    """Table filters (``None`` = no bound).

    Attributes:
        q_max: Keep rows with ``eg_qvalue <= q_max``.
        half_life_min: Keep rows with ``half_life >= half_life_min`` (bars).
        half_life_max: Keep rows with ``half_life <= half_life_max`` (bars).
        abs_z_min: Keep rows with ``|zscore| >= abs_z_min``.
    """

    q_max: float | None = None
    half_life_min: float | None = None
    half_life_max: float | None = None
    abs_z_min: float | None = None


def filter_scan(df: pd.DataFrame, flt: ScanFilter) -> pd.DataFrame:
    """Rows of ``df`` that pass ``flt`` (a NULL value fails any bound on its column)."""
    keep = pd.Series(True, index=df.index)
    if flt.q_max is not None:
        keep &= df["eg_qvalue"] <= flt.q_max
    if flt.half_life_min is not None:
        keep &= df["half_life"] >= flt.half_life_min
    if flt.half_life_max is not None:
        keep &= df["half_life"] <= flt.half_life_max
    if flt.abs_z_min is not None:
        keep &= df["zscore"].abs() >= flt.abs_z_min
    return df[keep.fillna(False).astype(bool)]


def symbol_order(pairs: Sequence[str]) -> list[str]:
    """Symbols of ``pairs`` in configuration order for ``PAIRFLOW_PAIRS=all``.

    With all pairs, the k-th listed symbol is Y of ``N - 1 - k`` pairs, so sorting
    by the Y count (descending) restores the order; ties (other pair lists) by name.
    """
    as_y: Counter[str] = Counter()
    names: set[str] = set()
    for pair in pairs:
        y, _, x = pair.partition("/")
        as_y[y] += 1
        names.update((y, x))
    return sorted(names, key=lambda s: (-as_y[s], s))


# --------------------------------------------------------------------------- figures


def heatmap_matrix(
    df: pd.DataFrame, value: str = "eg_pvalue", symbols: Sequence[str] | None = None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Symmetric symbol x symbol matrix of ``value`` and of pair names.

    Returns:
        ``(symbols, values, pair_names)``: ``values[i, j]`` is NaN on the diagonal
        and for pairs without a value; ``pair_names[i, j]`` is ``"Y/X"`` or ``""``.
    """
    syms = list(symbols) if symbols is not None else symbol_order(df["pair"].tolist())
    pos = {s: i for i, s in enumerate(syms)}
    n = len(syms)
    values = np.full((n, n), np.nan)
    names = np.full((n, n), "", dtype=object)
    for pair, v in zip(df["pair"], df[value], strict=True):
        y, _, x = pair.partition("/")
        if y not in pos or x not in pos:
            continue
        i, j = pos[y], pos[x]
        fv = np.nan if v is None or pd.isna(v) else float(v)
        values[i, j] = values[j, i] = fv
        names[i, j] = names[j, i] = pair
    return syms, values, names


def heatmap_figure(
    df: pd.DataFrame, value: str = "eg_pvalue", symbols: Sequence[str] | None = None
) -> go.Figure:
    """Heat map of EG p (``value="eg_pvalue"``) or q (``"eg_qvalue"``) per pair.

    Colour is ``log10`` of the value clipped to ``[P_FLOOR, 1]`` (dark = small p); a
    transparent marker per cell carries the pair name (``customdata``) so that a
    click selects it. Cell size shrinks with N; at N = 30 the figure is ~760 px.
    """
    syms, values, names = heatmap_matrix(df, value, symbols)
    n = len(syms)
    label = "q" if value == "eg_qvalue" else "p"
    with np.errstate(divide="ignore", invalid="ignore"):
        logv = np.log10(np.clip(values, P_FLOOR, 1.0))
    text = np.where(np.isnan(values), "", np.vectorize(_fmt_p)(values))
    fig = go.Figure()
    fig.add_trace(
        go.Heatmap(
            z=logv,
            x=syms,
            y=syms,
            zmin=math.log10(P_FLOOR),
            zmax=0.0,
            colorscale="Viridis",
            colorbar={
                "title": {"text": f"EG {label}"},
                "tickvals": [-6, -4, -2, math.log10(0.05), 0],
                "ticktext": ["1e-6", "1e-4", "0.01", "0.05", "1"],
            },
            customdata=names,
            text=text,
            hovertemplate="%{customdata}<br>EG " + label + " = %{text}<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    ii, jj = np.nonzero(names != "")
    fig.add_trace(
        go.Scatter(
            x=[syms[j] for j in jj],
            y=[syms[i] for i in ii],
            mode="markers",
            marker={"size": max(6, min(28, 600 // max(n, 1))), "opacity": 0.01, "symbol": "square"},
            customdata=[names[i, j] for i, j in zip(ii, jj, strict=True)],
            text=[text[i, j] for i, j in zip(ii, jj, strict=True)],
            hovertemplate="%{customdata}<br>EG " + label + " = %{text}<extra></extra>",
            showlegend=False,
        )
    )
    side = max(360, min(900, 22 * n + 160))
    font = 11 if n <= 20 else 9
    fig.update_layout(
        height=side,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis={"tickangle": -60, "tickfont": {"size": font}, "side": "bottom", "type": "category"},
        yaxis={
            "autorange": "reversed",
            "tickfont": {"size": font},
            "type": "category",
            "scaleanchor": "x",
        },
        plot_bgcolor="rgba(0,0,0,0)",
        clickmode="event+select",
        dragmode="select",
    )
    return fig


def _fmt_p(v: float) -> str:
    if math.isnan(v):
        return ""
    return f"{v:.2e}" if v < 1e-3 else f"{v:.4f}"


def table_spec(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """The table's data (in :data:`SCAN_COLUMNS` order, ``|z|`` added) and column specs.

    The spec is plain data (``{column: {"label", "format", "help"}}``) so it can be
    tested without Streamlit; :func:`render_scanner_tab` turns it into
    ``st.column_config.NumberColumn``s.
    """
    out = df[list(SCAN_COLUMNS)].copy()
    out.insert(out.columns.get_loc("zscore") + 1, "abs_z", out["zscore"].abs())
    spec: dict[str, dict[str, Any]] = {
        "rank": {"label": "Rank", "format": "%d", "help": "1 = smallest EG p-value"},
        "pair": {"label": "Pair (Y/X)", "format": None, "help": "Tick a row to open it"},
        "eg_pvalue": {"label": "EG p", "format": "%.2e", "help": "Engle-Granger p-value"},
        "eg_qvalue": {"label": "EG q (BH)", "format": "%.2e", "help": "Benjamini-Hochberg"},
        "adf_pvalue": {"label": "ADF p", "format": "%.2e", "help": "ADF p of the spread"},
        "half_life": {"label": "Half-life (bars)", "format": "%.1f", "help": None},
        "beta": {"label": "β", "format": "%.3f", "help": "OLS hedge ratio"},
        "corr": {"label": "Corr", "format": "%.2f", "help": "of log returns"},
        "zscore": {"label": "z", "format": "%.2f", "help": "Spread z-score"},
        "abs_z": {"label": "|z|", "format": "%.2f", "help": None},
    }
    return out.reset_index(drop=True), spec


# --------------------------------------------------------------------------- streamlit


OnOpen = Callable[[str, str], None]
"""Called with ``(pair, tf)`` after a selection (inside the widget's callback)."""


def _open_pair(
    pair: str, tf: str, pair_key: str, tf_key: str, on_open: OnOpen | None = None
) -> None:
    import streamlit as st

    st.session_state[pair_key] = pair
    st.session_state[tf_key] = tf
    st.session_state["scanner_opened"] = pair
    if on_open is not None:
        on_open(pair, tf)


def _on_pick(key: str, tf: str, pair_key: str, tf_key: str, on_open: OnOpen | None = None) -> None:
    import streamlit as st

    pair = st.session_state.get(key)
    if pair:
        _open_pair(str(pair), tf, pair_key, tf_key, on_open)


def _on_table_select(
    key: str,
    pairs: list[str],
    tf: str,
    pair_key: str,
    tf_key: str,
    on_open: OnOpen | None = None,
) -> None:
    import streamlit as st

    rows = st.session_state[key].selection.rows
    if rows:
        _open_pair(pairs[rows[0]], tf, pair_key, tf_key, on_open)


def _on_map_select(
    key: str, tf: str, pair_key: str, tf_key: str, on_open: OnOpen | None = None
) -> None:
    import streamlit as st

    points = st.session_state[key].selection.points
    for point in points:
        pair = point.get("customdata")
        if isinstance(pair, list):
            pair = pair[0] if pair else None
        if pair:
            _open_pair(str(pair), tf, pair_key, tf_key, on_open)
            return


def render_scanner_tab(
    con_factory: ConFactory,
    *,
    timeframes: Sequence[str] = ("1s", "1m", "5m"),
    pair_key: str = "pair",
    tf_key: str = "tf",
    key_prefix: str = "scanner",
    on_open: OnOpen | None = None,
) -> None:
    """Draw the Scanner tab: controls, heat map and table of the latest scan.

    Args:
        con_factory: Opens a read-only DuckDB connection (a context manager).
        timeframes: Timeframes offered.
        pair_key: ``st.session_state`` key of the pair view's pair (set on selection).
        tf_key: ``st.session_state`` key of the pair view's timeframe.
        key_prefix: Prefix of this tab's widget keys.
        on_open: Called with ``(pair, tf)`` when the user opens a pair (a heat-map
            cell, a table row, or the "Open" button), from the widget's callback —
            e.g. to switch the app to its pair view.
    """
    import streamlit as st

    from dashboard.ui import fmt_clock

    with con_factory() as con:
        try:
            times = scan_times(con)
        except duckdb.CatalogException:
            times = {}
        offered = [tf for tf in timeframes if tf in times]
        if not offered:
            st.info(
                "No scan yet. The scanner runs when more than one pair is analysed, e.g. "
                "`PAIRFLOW_PAIRS=all`; try `bin/demo --scan` (synthetic universe)."
            )
            return
        c1, c2, c3 = st.columns([1, 1, 2])
        tf = c1.segmented_control(
            "Scan timeframe", offered, default=offered[0], required=True, key=f"{key_prefix}_tf"
        )
        tf = tf or offered[0]
        value = c2.radio(
            "Heat map of",
            ("eg_pvalue", "eg_qvalue"),
            format_func=lambda v: "EG p" if v == "eg_pvalue" else "EG q (BH)",
            horizontal=True,
            key=f"{key_prefix}_value",
        )
        df = latest_scan(con, tf)
    ts = times[tf]
    n_q = int((df["eg_qvalue"] < 0.05).sum())
    c3.caption(
        f"Scan at {fmt_clock(ts, '%Y-%m-%d %H:%M:%S')} UTC · {len(df)} pairs · "
        f"{n_q} with q < 0.05 (Benjamini-Hochberg, EG p-values)"
    )
    if st.session_state.get("scanner_opened"):
        st.success(
            f"Opened {st.session_state['scanner_opened']} in the pair view.",
        )
    map_key = f"{key_prefix}_map"
    st.plotly_chart(
        heatmap_figure(df, value),
        width="stretch",
        key=map_key,
        on_select=lambda: _on_map_select(map_key, tf, pair_key, tf_key, on_open),
        selection_mode=("points", "box"),
    )
    f1, f2, f3 = st.columns(3)
    q_max = f1.number_input(
        "q-value max", 0.0, 1.0, 1.0, step=0.01, format="%.3f", key=f"{key_prefix}_qmax"
    )
    hl_top = float(math.ceil(np.nanmax(df["half_life"]))) if df["half_life"].notna().any() else 1.0
    hl_top = max(1.0, hl_top)
    hl = f2.slider("Half-life (bars)", 0.0, hl_top, (0.0, hl_top), key=f"{key_prefix}_hl")
    z_min = f3.number_input("|z| min", 0.0, 20.0, 0.0, step=0.1, key=f"{key_prefix}_zmin")
    flt = ScanFilter(
        q_max=None if q_max >= 1.0 else float(q_max),
        half_life_min=None if hl[0] <= 0 else float(hl[0]),
        half_life_max=None if hl[1] >= hl_top else float(hl[1]),
        abs_z_min=None if z_min <= 0 else float(z_min),
    )
    data, spec = table_spec(filter_scan(df, flt))
    config = {
        col: (
            st.column_config.NumberColumn(s["label"], format=s["format"], help=s["help"])
            if s["format"]
            else st.column_config.TextColumn(s["label"], help=s["help"])
        )
        for col, s in spec.items()
    }
    table_key = f"{key_prefix}_table"
    pairs = data["pair"].tolist()
    st.dataframe(
        data,
        column_config=config,
        hide_index=True,
        width="stretch",
        height=min(600, 36 + 35 * max(len(data), 1)),
        key=table_key,
        on_select=lambda: _on_table_select(table_key, pairs, tf, pair_key, tf_key, on_open),
        selection_mode="single-row",
    )
    st.caption(
        f"{len(data)} of {len(df)} pairs pass the filters. Tick a row (or pick a pair "
        "below) to open it in the pair view; hover a heat-map cell for its pair."
    )
    if pairs:  # the keyboard-friendly way, and a fallback for the clicks above
        p1, p2 = st.columns([3, 1], vertical_alignment="bottom")
        pick_key = f"{key_prefix}_pick"
        p1.selectbox("Pair to open (by rank)", pairs, key=pick_key)
        p2.button(
            "Open in pair view",
            key=f"{key_prefix}_open",
            on_click=_on_pick,
            args=(pick_key, tf, pair_key, tf_key, on_open),
            icon=":material/open_in_new:",
        )
