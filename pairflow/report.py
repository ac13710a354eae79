"""Self-contained HTML report of a backtest: stats table, equity, drawdown, Sharpe heat map.

Reads the strategy tables of a finished run from DuckDB and writes one HTML file
with plotly.js inlined (opens offline, no CDN). Curves are thinned to at most
:data:`MAX_POINTS` points each (the last point is always kept) so a day of 1s rows
stays a small file; the numbers in the table are the exact ``strategy_stats``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pandas as pd

from pairflow.strategies.params import StrategyParams

if TYPE_CHECKING:
    from pairflow.backtest import Grid

MAX_POINTS = 2000
"""Most points drawn per equity/drawdown curve."""


def _thin(df: pd.DataFrame) -> pd.DataFrame:
    if len(df) <= MAX_POINTS:
        return df
    idx = np.unique(np.r_[np.linspace(0, len(df) - 1, MAX_POINTS).astype(int), len(df) - 1])
    return df.iloc[idx]


def _read(db: Path, names: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    with duckdb.connect(str(db), read_only=True) as con:
        stats = con.execute(
            "SELECT * FROM strategy_stats WHERE list_contains(?, strategy) "
            "ORDER BY strategy, pair, tf",
            [list(names)],
        ).df()
        equity = con.execute(
            "SELECT strategy, pair, tf, ts, position, equity FROM strategy_equity "
            "WHERE list_contains(?, strategy) ORDER BY strategy, pair, tf, ts",
            [list(names)],
        ).df()
        trades = con.execute(
            "SELECT strategy, pair, tf, count(*) AS n FROM strategy_trades "
            "WHERE list_contains(?, strategy) GROUP BY ALL",
            [list(names)],
        ).df()
    return stats, equity, trades


def _stats_table(stats: pd.DataFrame) -> str:
    cols = [
        ("strategy", "strategy", "{}"),
        ("pair", "pair", "{}"),
        ("tf", "tf", "{}"),
        ("trades", "trades", "{:d}"),
        ("win_rate", "win %", "{:.1%}"),
        ("pnl", "PnL", "{:,.2f}"),
        ("return_pct", "return %", "{:.3f}"),
        ("sharpe", "Sharpe", "{:.2f}"),
        ("max_drawdown", "max DD", "{:,.2f}"),
        ("exposure", "exposure", "{:.1%}"),
        ("mean_bars_held", "mean bars held", "{:.1f}"),
    ]
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label, _ in cols)
    body = []
    for r in stats.to_dict("records"):
        cells = []
        for key, _, fmt in cols:
            v = r[key]
            text = "–" if v is None or (isinstance(v, float) and np.isnan(v)) else fmt.format(v)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figures(
    stats: pd.DataFrame,
    equity: pd.DataFrame,
    strategies: Sequence[StrategyParams],
    grid: Grid | None,
) -> list[tuple[str, object]]:
    import plotly.graph_objects as go

    figs: list[tuple[str, object]] = []
    for (pair, tf), group in equity.groupby(["pair", "tf"], sort=True):
        eq_fig = go.Figure()
        dd_fig = go.Figure()
        for name, g0 in group.groupby("strategy", sort=False):
            g = g0.sort_values("ts")
            e = g["equity"].to_numpy()
            dd = np.maximum.accumulate(np.maximum(e, 0.0)) - e
            thin = _thin(g.assign(drawdown=dd))
            eq_fig.add_trace(go.Scatter(x=thin["ts"], y=thin["equity"], mode="lines", name=name))
            dd_fig.add_trace(go.Scatter(x=thin["ts"], y=-thin["drawdown"], mode="lines", name=name))
        eq_fig.update_layout(
            title=f"Equity (quote currency) — {pair} {tf}", height=420, legend_title="strategy"
        )
        dd_fig.update_layout(
            title=f"Drawdown (below the running peak) — {pair} {tf}",
            height=340,
            legend_title="strategy",
        )
        figs.append((f"equity {pair} {tf}", eq_fig))
        figs.append((f"drawdown {pair} {tf}", dd_fig))
    if grid is not None and grid.axes:
        by_name = {p.name: p for p in strategies}
        gs = stats[stats["strategy"].isin([n for n in by_name if n.startswith("g_")])]
        x_key = grid.keys[0]
        y_keys = grid.keys[1:]
        for (pair, tf), group in gs.groupby(["pair", "tf"], sort=True):
            cells = []
            for r in group.itertuples(index=False):
                p = by_name[r.strategy]
                x = getattr(p, x_key)
                y = ", ".join(f"{k}={getattr(p, k)}" for k in y_keys) or "all"
                cells.append((x, y, r.sharpe, r.strategy))
            df = pd.DataFrame(cells, columns=["x", "y", "sharpe", "name"])
            piv = df.pivot_table(index="y", columns="x", values="sharpe", aggfunc="first")
            names = df.pivot_table(index="y", columns="x", values="name", aggfunc="first")
            hm = go.Figure(
                go.Heatmap(
                    z=piv.to_numpy(dtype=float),
                    x=[str(c) for c in piv.columns],
                    y=list(piv.index),
                    text=names.reindex_like(piv).to_numpy(),
                    texttemplate="%{z:.2f}",
                    hovertemplate="%{text}<br>Sharpe %{z:.3f}<extra></extra>",
                    colorscale="RdBu",
                    zmid=0.0,
                    colorbar={"title": "Sharpe"},
                )
            )
            hm.update_layout(
                title=f"Annualised Sharpe over the grid — {pair} {tf}",
                xaxis_title=x_key,
                yaxis_title=", ".join(y_keys) or "",
                height=120 + 60 * max(1, len(piv.index)),
            )
            figs.append((f"sharpe heat map {pair} {tf}", hm))
    return figs


def write_report(
    db: Path,
    out: Path,
    strategies: Sequence[StrategyParams],
    *,
    grid: Grid | None = None,
    seconds: float | None = None,
) -> Path:
    """Write the HTML report of the run in ``db`` for ``strategies`` to ``out``.

    Args:
        db: The run's DuckDB file.
        out: HTML file to write.
        strategies: The strategies of the run (table order; grid axes read from them).
        grid: The ``--grid`` (for the Sharpe heat map), if any.
        seconds: Wall time of the run (shown in the header).

    Returns:
        ``out``.
    """
    names = [p.name for p in strategies]
    stats, equity, _ = _read(db, names)
    figs = _figures(stats, equity, strategies, grid)
    parts = []
    for i, (label, fig) in enumerate(figs):
        parts.append(
            f'<section class="plot" data-plot="{html.escape(label)}">'
            + fig.to_html(full_html=False, include_plotlyjs="inline" if i == 0 else False)  # type: ignore[attr-defined]
            + "</section>"
        )
    params = "".join(
        f"<tr><td>{html.escape(p.name)}</td><td><code>{html.escape(p.params_json())}</code></td></tr>"
        for p in strategies
    )
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    took = f", run took {seconds:.1f} s" if seconds is not None else ""
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pairflow backtest</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
code {{ font-size: 0.85em; }}
</style></head><body>
<h1>pairflow backtest</h1>
<p>{len(strategies)} strategies, {len(stats)} strategy × pair × timeframe results;
made {made}{took}.
Paper fills at the next grid close, fees in bps of traded notional; no order book,
funding or borrow costs.</p>
<h2>Results (strategy_stats)</h2>
{_stats_table(stats)}
<h2>Plots</h2>
{"".join(parts) or "<p>No strategy rows (no analytics rows: is the window too long?)</p>"}
<h2>Strategies</h2>
<table><thead><tr><th>name</th><th>params</th></tr></thead><tbody>{params}</tbody></table>
</body></html>
"""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc, encoding="utf-8")
    return out
