"""The Pipeline health view.

Throughput, rejects, late ticks, reconnects, gaps, warm start, amendments, Redis
streams and table sizes.

Queries are in :mod:`dashboard.pipeline_health`, figures in :mod:`dashboard.health_charts`.
"""

from __future__ import annotations

import streamlit as st

from dashboard import health_charts, pair_view, pipeline_health
from dashboard.app_config import AppConfig
from dashboard.app_data import redis_lengths
from dashboard.ui import fmt_bytes, fmt_number, fmt_time, kpi, pd_time, plotly_chart, table_height


def render_revisions(health: pipeline_health.HealthData) -> None:
    """Amendments: how many numbers the flow revised after late data, and when."""
    st.markdown("**Revised after late data (amendments)**")
    by_symbol = health.amendments_by_symbol()
    by_key = health.recomputed_by_key()
    if by_symbol.empty and by_key.empty:
        st.caption(
            "No bar was amended: every number shown is as first computed. (The flow "
            "reports `amended_bars_total` when a late tick or a backfill changes a bar.)"
        )
        return
    last = health.last_revision()
    bars = int(by_symbol["bars_amended"].sum()) if not by_symbol.empty else 0
    rows = int(by_key["rows_recomputed"].sum()) if not by_key.empty else 0
    st.caption(
        f"{bars:,} bars amended (all timeframes, counted per symbol), {rows:,} analytics "
        f"rows recomputed; the last revision at {fmt_time(last)}. Analytics, signals, "
        "trades and equity from an amended interval on were recomputed from the final bars."
    )
    c1, c2 = st.columns(2)
    with c1:
        if not by_symbol.empty:
            st.dataframe(
                by_symbol, hide_index=True, width="stretch", height=table_height(by_symbol)
            )
    with c2:
        if not by_key.empty:
            st.dataframe(by_key, hide_index=True, width="stretch", height=table_height(by_key))


def render_warmup(health: pipeline_health.HealthData) -> None:
    """The live source's warm start: complete, or partial with how much is missing."""
    wu = health.warmup
    if wu.empty:
        return
    for row in wu.itertuples(index=False):
        if row.complete:
            st.success(
                f"Warm start of `{row.component}` complete: every analysed timeframe "
                f"started with full history (reported {fmt_time(pd_time(row.ts))})."
            )
        else:
            st.warning(
                f"**Warm start of `{row.component}` partial**: {row.missing_intervals:,} kline "
                f"intervals not fetched, {row.missing_symbols:,} symbols without trades since "
                "the 5m boundary (REST throttled or down). Windows fill from live bars; "
                "the first analytics rows of those timeframes come later."
            )


def render_health_tab(
    cfg: AppConfig, view: pair_view.ViewData, health: pipeline_health.HealthData
) -> None:
    """Pipeline health: throughput, rejects, late ticks, reconnects, gaps, Redis, DB."""
    cols = st.columns(6)
    rate_label = "Ticks/s" if health.rate_source == "pipeline_stats" else "Trades/s (bars)"
    kpi(cols[0], rate_label, fmt_number(health.latest_rate, ",.1f"))
    kpi(cols[1], "Rejected inputs", fmt_number(health.row_counts.get("rejects"), ",.0f"))
    kpi(cols[2], "Late ticks", fmt_number(health.late_ticks, ",.0f"))
    kpi(cols[3], "Reconnects", fmt_number(health.reconnects, ",.0f"))
    found = health.row_counts.get("gaps", 0)
    kpi(cols[4], "Gaps not filled", f"{health.open_gaps:,}", f"{found:,} found")
    kpi(cols[5], "DB size", fmt_bytes(health.db_bytes))
    render_warmup(health)

    figs = health_charts.health_figures(health)
    left, right = st.columns(2)
    with left:
        plotly_chart(figs["rate"], key="chart_rate")
    with right:
        plotly_chart(figs["rejects"], key="chart_rejects")

    c1, c2, c3 = st.columns([1, 1, 2])
    with c1:
        st.markdown("**Redis streams**")
        if not cfg.redis_url:
            st.caption("Redis tee is off (`PAIRFLOW_REDIS_URL` is empty).")
        else:
            legs = (view.request.y, view.request.x)
            lengths, error = redis_lengths(cfg.redis_url, legs, cfg.redis_prefix)
            if error:
                st.caption(f"⚠️ {error}")
            else:
                st.dataframe(
                    [{"stream": k, "entries": v} for k, v in lengths.items()],
                    hide_index=True,
                    width="stretch",
                )
    with c2:
        st.markdown("**Rows per table**")
        counts = [{"table": k, "rows": v} for k, v in health.row_counts.items()]
        st.dataframe(
            counts,
            hide_index=True,
            width="stretch",
            height=table_height(counts, max_rows=len(counts)),  # every table, no scrolling
        )
    with c3:
        st.markdown("**Gaps in trade ids (newest)**")
        if health.gaps_recent.empty:
            st.caption("No gaps detected.")
        else:
            st.dataframe(health.gaps_recent, hide_index=True, width="stretch")
    render_revisions(health)
    with st.expander("All pipeline stats (newest value per component and metric)"):
        if health.stats_latest.empty:
            st.caption("The flow has not reported any stats yet.")
        else:
            st.dataframe(health.stats_latest, hide_index=True, width="stretch")
