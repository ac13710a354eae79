"""The Strategy view: one paper strategy's KPIs, equity, drawdown and closed trades.

Queries are in :mod:`dashboard.strategy_view`, figures in :mod:`dashboard.strategy_charts`.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import pair_view, strategy_charts
from dashboard import strategy_view as sv
from dashboard.app_config import Controls
from dashboard.ui import fmt_number, kpi, plotly_chart

TRADE_ROWS = 200


def _params_text(params: dict[str, Any]) -> str:
    """The strategy's parameters as ``k=v, ...`` (or why they are unknown)."""
    if not params:
        return "parameters not in the `strategies` table"
    return ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def render_strategy_tab(view: pair_view.ViewData, data: sv.StrategyData, ctl: Controls) -> None:
    """One paper strategy on the pair: KPIs, equity, drawdown and the trade list.

    Every number is the flow's (``strategy_stats``, ``strategy_equity``,
    ``strategy_trades``); only the drawdown curve is drawn from the stored equity.
    """
    st.caption(
        f"Strategy **{data.strategy}** on {data.pair} at {data.tf}: "
        f"{_params_text(data.params)}. Paper fills at the next bar's closes; no order "
        "book, funding or borrow costs. Entry/exit markers are on the Pair analytics z chart."
    )
    stats = data.stats
    cols = st.columns(7)
    pnl = stats.get("pnl")
    tone = "off" if pnl is None else ("normal" if pnl >= 0 else "inverse")
    kpi(
        cols[0],
        "PnL",
        fmt_number(pnl, ",.2f"),
        fmt_number(stats.get("return_pct"), "+.2f") + " %",
        tone,
    )
    kpi(cols[1], "Sharpe (annualised)", fmt_number(stats.get("sharpe"), ".2f"))
    kpi(cols[2], "Max drawdown", fmt_number(stats.get("max_drawdown"), ",.2f"))
    win = stats.get("win_rate")
    kpi(cols[3], "Win rate", "—" if win is None else f"{100 * float(win):.0f} %")
    kpi(cols[4], "Trades", fmt_number(stats.get("trades"), ",.0f"))
    exposure = stats.get("exposure")
    kpi(cols[5], "Exposure", "—" if exposure is None else f"{100 * float(exposure):.0f} %")
    kpi(cols[6], "Mean bars held", fmt_number(stats.get("mean_bars_held"), ".1f"))
    if not stats:
        st.info(
            f"No results of strategy '{data.strategy}' for {data.pair} at {data.tf} yet: "
            "strategies run on the analytics rows, so they start when the window is full."
        )
    figs = strategy_charts.strategy_figures(view, data)
    left, right = st.columns(2)
    with left:
        plotly_chart(figs["equity"], key="chart_equity")
    with right:
        plotly_chart(figs["drawdown"], key="chart_drawdown")
    st.markdown("**Closed trades** (newest first)")
    if data.trades.empty:
        st.caption("No closed trade yet.")
        return
    shown = data.trades.head(TRADE_ROWS)
    st.caption(
        f"{data.trade_count:,} closed trades; the newest {len(shown):,} below. "
        "Times are fills (UTC); side +1 = long spread (long Y, short β·X)."
    )
    num = st.column_config.NumberColumn
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        height=min(420, 38 + 35 * len(shown)),
        column_config={
            "entry_ts": st.column_config.DatetimeColumn("entry", format="YYYY-MM-DD HH:mm:ss"),
            "exit_ts": st.column_config.DatetimeColumn("exit", format="YYYY-MM-DD HH:mm:ss"),
            "side": num("side", format="%+d"),
            "entry_z": num("entry z", format="%.2f"),
            "exit_z": num("exit z", format="%.2f"),
            "beta": num("β", format="%.4f"),
            "q_y": num("q Y", format="%.6g"),
            "q_x": num("q X", format="%.6g"),
            "entry_y": num("Y in", format="%.6g"),
            "entry_x": num("X in", format="%.6g"),
            "exit_y": num("Y out", format="%.6g"),
            "exit_x": num("X out", format="%.6g"),
            "fees": num("fees", format="%.2f"),
            "pnl": num("PnL", format="%.2f"),
            "bars_held": num("bars", format="%d"),
        },
    )
