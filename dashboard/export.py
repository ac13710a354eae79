"""The current view as one table, for the Data tab and its CSV download (presentation)."""

from __future__ import annotations

import pandas as pd

from dashboard.pair_view import ViewData


def view_table(view: ViewData, last: int | None = None) -> pd.DataFrame:
    """The current view as one wide table (for CSV download): a row per bucket.

    Args:
        view: The view.
        last: Only the newest ``last`` buckets (a preview), or all.

    Returns:
        Columns ``time``, ``{Y}_open/high/low/close/volume/trades``, the same for X,
        then the analytics columns as shown.
    """
    frames: list[pd.DataFrame] = []
    for sym in (view.request.y, view.request.x):
        leg = view.leg(sym)
        if leg.empty:
            continue
        if last is not None:
            leg = leg.tail(last)
        cols = ["t", "open", "high", "low", "close", "volume", "trades"]
        frames.append(
            leg[cols].rename(columns={c: f"{sym}_{c}" for c in cols if c != "t"}).set_index("t")
        )
    if view.has_analytics:
        keep = [
            "t", "alpha", "beta", "spread", "zscore", "z_min", "z_max", "corr", "adf_pvalue",
            "eg_pvalue", "half_life", "window", "y_filled", "x_filled",
        ]  # fmt: skip
        ana = view.analytics if last is None else view.analytics.tail(last)
        frames.append(ana[keep].set_index("t"))
    if not frames:
        return pd.DataFrame(columns=["time"])
    table = pd.concat(frames, axis=1, join="outer", sort=True)
    if last is not None:
        table = table.tail(last)
    table.index.name = "time"
    return table.reset_index()
