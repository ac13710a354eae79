"""DuckDB table definitions shared by the writer (the flow) and readers (dashboard).

The column lists are the contract in DESIGN.md; ``UPSERT_SQL`` holds the idempotent
statements the sink uses, so replaying the same ticks leaves the same rows.
"""

from __future__ import annotations

DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS bars (
        symbol VARCHAR NOT NULL,
        tf VARCHAR NOT NULL,
        open_time TIMESTAMPTZ NOT NULL,
        open DOUBLE NOT NULL,
        high DOUBLE NOT NULL,
        low DOUBLE NOT NULL,
        close DOUBLE NOT NULL,
        volume DOUBLE NOT NULL,
        quote_volume DOUBLE NOT NULL,
        vwap DOUBLE NOT NULL,
        trades BIGINT NOT NULL,
        taker_buy_volume DOUBLE NOT NULL,
        first_trade_id BIGINT NOT NULL,
        last_trade_id BIGINT NOT NULL,
        PRIMARY KEY (symbol, tf, open_time)
    )""",
    """CREATE TABLE IF NOT EXISTS analytics (
        pair VARCHAR NOT NULL,
        tf VARCHAR NOT NULL,
        ts TIMESTAMPTZ NOT NULL,
        "window" INTEGER NOT NULL,
        y_close DOUBLE NOT NULL,
        x_close DOUBLE NOT NULL,
        alpha DOUBLE,
        beta DOUBLE,
        spread DOUBLE,
        zscore DOUBLE,
        corr DOUBLE,
        adf_pvalue DOUBLE,
        eg_pvalue DOUBLE,
        half_life DOUBLE,
        y_filled BOOLEAN NOT NULL,
        x_filled BOOLEAN NOT NULL,
        spread_std DOUBLE,
        PRIMARY KEY (pair, tf, ts)
    )""",
    # files created before spread_std existed
    "ALTER TABLE analytics ADD COLUMN IF NOT EXISTS spread_std DOUBLE",
    """CREATE TABLE IF NOT EXISTS signals (
        pair VARCHAR NOT NULL,
        tf VARCHAR NOT NULL,
        ts TIMESTAMPTZ NOT NULL,
        kind VARCHAR NOT NULL,
        zscore DOUBLE NOT NULL,
        PRIMARY KEY (pair, tf, ts, kind)
    )""",
    # minimal scan mapping (pair scanner) until the table-spec rewrite lands
    """CREATE TABLE IF NOT EXISTS scan (
        tf VARCHAR NOT NULL,
        ts TIMESTAMPTZ NOT NULL,
        pair VARCHAR NOT NULL,
        eg_pvalue DOUBLE,
        eg_qvalue DOUBLE,
        adf_pvalue DOUBLE,
        half_life DOUBLE,
        beta DOUBLE,
        corr DOUBLE,
        zscore DOUBLE,
        rank INTEGER NOT NULL,
        PRIMARY KEY (tf, ts, pair)
    )""",
    """CREATE TABLE IF NOT EXISTS rejects (
        received_at TIMESTAMPTZ NOT NULL,
        source VARCHAR NOT NULL,
        reason VARCHAR NOT NULL,
        raw VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS pipeline_stats (
        ts TIMESTAMPTZ NOT NULL,
        component VARCHAR NOT NULL,
        metric VARCHAR NOT NULL,
        value DOUBLE NOT NULL,
        PRIMARY KEY (ts, component, metric)
    )""",
    """CREATE TABLE IF NOT EXISTS gaps (
        symbol VARCHAR NOT NULL,
        from_trade_id BIGINT NOT NULL,
        to_trade_id BIGINT NOT NULL,
        detected_at TIMESTAMPTZ NOT NULL,
        status VARCHAR NOT NULL,
        filled BIGINT NOT NULL,
        PRIMARY KEY (symbol, from_trade_id)
    )""",
)

BAR_COLUMNS: tuple[str, ...] = (
    "symbol", "tf", "open_time", "open", "high", "low", "close", "volume",
    "quote_volume", "vwap", "trades", "taker_buy_volume", "first_trade_id",
    "last_trade_id",
)  # fmt: skip

ANALYTICS_COLUMNS: tuple[str, ...] = (
    "pair", "tf", "ts", "window", "y_close", "x_close", "alpha", "beta", "spread",
    "zscore", "corr", "adf_pvalue", "eg_pvalue", "half_life", "y_filled", "x_filled",
    "spread_std",
)  # fmt: skip

SIGNAL_COLUMNS: tuple[str, ...] = ("pair", "tf", "ts", "kind", "zscore")
REJECT_COLUMNS: tuple[str, ...] = ("received_at", "source", "reason", "raw")
STAT_COLUMNS: tuple[str, ...] = ("ts", "component", "metric", "value")
GAP_COLUMNS: tuple[str, ...] = (
    "symbol", "from_trade_id", "to_trade_id", "detected_at", "status", "filled",
)  # fmt: skip

SCAN_COLUMNS: tuple[str, ...] = (
    "tf", "ts", "pair", "eg_pvalue", "eg_qvalue", "adf_pvalue", "half_life", "beta",
    "corr", "zscore", "rank",
)  # fmt: skip

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "bars": BAR_COLUMNS,
    "analytics": ANALYTICS_COLUMNS,
    "signals": SIGNAL_COLUMNS,
    "rejects": REJECT_COLUMNS,
    "pipeline_stats": STAT_COLUMNS,
    "gaps": GAP_COLUMNS,
    "scan": SCAN_COLUMNS,
}
"""Column order of every table, as created by :data:`DDL`."""

UPSERT_TABLES: frozenset[str] = frozenset(
    {"bars", "analytics", "signals", "pipeline_stats", "gaps", "scan"}
)
"""Tables written with ``INSERT OR REPLACE`` (keyed); ``rejects`` is append-only."""


def create_all(con: object) -> None:
    """Create every pairflow table on a DuckDB connection if it does not exist."""
    for stmt in DDL:
        con.execute(stmt)  # type: ignore[attr-defined]
