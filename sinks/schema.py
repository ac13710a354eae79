"""The DuckDB tables: one declarative spec that everything else is derived from.

Each table is a :class:`Table` (columns with DuckDB types and nullability, primary
key, time column, upsert or append-only). From :data:`TABLES` come:

- the DDL and the migrations of older files (:func:`create_all`),
- the sink's row mapping (:func:`record_map`: record dataclass -> table row, read
  from :func:`dataclasses.fields`, so a record and its table are declared once),
- the dashboard's table and column lists, and the tests' expectations.

Timeframes come only from :data:`pairflow.timeutil.TF_MS`. The tables are the
contract of docs/design.md ("DuckDB tables", "Pair scanner", "Strategies and paper PnL").

Record types are mapped by field name: column ``c`` is filled from the record's
field (or property) ``c``, else from ``c_ms`` (epoch milliseconds; written as
``TIMESTAMPTZ``); a NULL-able column the record does not have is written NULL, and a
record field that matches no column is an error (nothing is dropped silently). The
records of :mod:`pairflow.records` are registered here; other modules register
theirs with :func:`register_record`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Protocol

from pairflow import records
from pairflow.timeutil import TIMEFRAMES


class _Connection(Protocol):
    def execute(self, query: str, parameters: Any = ...) -> Any: ...  # noqa: D102


@dataclass(frozen=True, slots=True)
class Column:
    """One column.

    Attributes:
        name: Column name.
        type: DuckDB type (``VARCHAR``, ``DOUBLE``, ``BIGINT``, ``INTEGER``, ``BOOLEAN``,
            ``TIMESTAMPTZ``).
        nullable: Whether NULL is allowed.
        values: The allowed values of a categorical column (documentation for readers
            and tests; not enforced by the database).
        backfill: SQL literal that fills this column when an older table without it is
            rebuilt (only for NOT NULL key columns added later, e.g. ``signals.strategy``).
    """

    name: str
    type: str
    nullable: bool = False
    values: tuple[str, ...] = ()
    backfill: str | None = None

    @property
    def is_time(self) -> bool:
        """True for ``TIMESTAMPTZ`` columns (epoch ms in records)."""
        return self.type == "TIMESTAMPTZ"

    def ddl(self) -> str:
        """``"name" TYPE [NOT NULL]``."""
        return f'"{self.name}" {self.type}' + ("" if self.nullable else " NOT NULL")


@dataclass(frozen=True, slots=True)
class Table:
    """One table.

    Attributes:
        name: Table name.
        columns: Columns in table order.
        key: Primary-key columns; empty = append-only (plain ``INSERT``), otherwise
            rows are idempotent upserts (``INSERT OR REPLACE``).
        time_column: The column rows are ordered and range-retracted by (``None``:
            the table has no time, e.g. ``strategies``).
    """

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    time_column: str | None = None

    def __post_init__(self) -> None:
        """Check that the key and time column are columns."""
        names = self.names
        missing = [c for c in (*self.key, self.time_column) if c is not None and c not in names]
        if missing or len(set(names)) != len(names):
            msg = f"table {self.name}: bad spec (unknown or duplicate columns {missing})"
            raise ValueError(msg)

    @property
    def names(self) -> tuple[str, ...]:
        """Column names in table order."""
        return tuple(c.name for c in self.columns)

    @property
    def upsert(self) -> bool:
        """True for keyed tables (idempotent upserts), False for append-only ones."""
        return bool(self.key)

    @property
    def key_index(self) -> tuple[int, ...]:
        """Positions of the key columns in :attr:`names`."""
        return tuple(self.names.index(k) for k in self.key)

    @property
    def time_columns(self) -> tuple[str, ...]:
        """Every ``TIMESTAMPTZ`` column."""
        return tuple(c.name for c in self.columns if c.is_time)

    def column(self, name: str) -> Column:
        """The column called ``name`` (KeyError if none)."""
        for col in self.columns:
            if col.name == name:
                return col
        msg = f"{self.name}.{name}"
        raise KeyError(msg)

    def quoted(self, names: tuple[str, ...] | None = None) -> str:
        """``"a", "b", ...`` for SQL (column names are fixed identifiers, never input)."""
        return ", ".join(f'"{c}"' for c in (self.names if names is None else names))

    def ddl(self, name: str | None = None) -> str:
        """``CREATE TABLE IF NOT EXISTS`` for this table (optionally under another name)."""
        parts = [c.ddl() for c in self.columns]
        if self.key:
            parts.append(f"PRIMARY KEY ({self.quoted(self.key)})")
        body = ",\n    ".join(parts)
        return f"CREATE TABLE IF NOT EXISTS {name or self.name} (\n    {body}\n)"


def _req(name: str, type_: str = "DOUBLE", **kw: Any) -> Column:
    return Column(name, type_, nullable=False, **kw)


def _opt(name: str, type_: str = "DOUBLE", **kw: Any) -> Column:
    return Column(name, type_, nullable=True, **kw)


_TF = _req("tf", "VARCHAR", values=TIMEFRAMES)
_PAIR = _req("pair", "VARCHAR")
_STRATEGY = _req("strategy", "VARCHAR", backfill="'default'")

SIGNAL_KINDS: tuple[str, ...] = ("short_spread", "long_spread", "exit", "stop", "time")
"""``signals.kind`` values (decision kinds; docs/design.md "Strategies and paper PnL")."""

EXIT_REASONS: tuple[str, ...] = ("exit", "stop", "time")
"""``strategy_trades.reason`` values."""

BARS = Table(
    "bars",
    (
        _req("symbol", "VARCHAR"), _TF, _req("open_time", "TIMESTAMPTZ"),
        _req("open"), _req("high"), _req("low"), _req("close"), _req("volume"),
        _req("quote_volume"), _req("vwap"), _req("trades", "BIGINT"),
        _req("taker_buy_volume"),
        # NULL for bars from klines (no trade ids)
        _opt("first_trade_id", "BIGINT"), _opt("last_trade_id", "BIGINT"),
    ),
    key=("symbol", "tf", "open_time"),
    time_column="open_time",
)  # fmt: skip

ANALYTICS = Table(
    "analytics",
    (
        _PAIR, _TF, _req("ts", "TIMESTAMPTZ"), _req("window", "INTEGER"),
        _req("y_close"), _req("x_close"),
        _opt("alpha"), _opt("beta"), _opt("spread"), _opt("zscore"), _opt("corr"),
        _opt("adf_pvalue"), _opt("eg_pvalue"), _opt("half_life"),
        _req("y_filled", "BOOLEAN"), _req("x_filled", "BOOLEAN"),
        _opt("spread_std"),
        _opt("kalman_alpha"), _opt("kalman_beta"), _opt("kalman_spread"), _opt("kalman_zscore"),
    ),
    key=("pair", "tf", "ts"),
    time_column="ts",
)  # fmt: skip

SIGNALS = Table(
    "signals",
    (
        _STRATEGY, _PAIR, _TF, _req("ts", "TIMESTAMPTZ"),
        _req("kind", "VARCHAR", values=SIGNAL_KINDS), _req("zscore"),
    ),
    key=("strategy", "pair", "tf", "ts", "kind"),
    time_column="ts",
)  # fmt: skip

REJECTS = Table(
    "rejects",
    (
        _req("received_at", "TIMESTAMPTZ"), _req("source", "VARCHAR"),
        _req("reason", "VARCHAR"), _opt("raw", "VARCHAR"),
    ),
    time_column="received_at",
)  # fmt: skip

PIPELINE_STATS = Table(
    "pipeline_stats",
    (
        _req("ts", "TIMESTAMPTZ"), _req("component", "VARCHAR"), _req("metric", "VARCHAR"),
        _req("value"),
    ),
    key=("ts", "component", "metric"),
    time_column="ts",
)  # fmt: skip

GAPS = Table(
    "gaps",
    (
        _req("symbol", "VARCHAR"), _req("from_trade_id", "BIGINT"),
        _req("to_trade_id", "BIGINT"), _req("detected_at", "TIMESTAMPTZ"),
        _req("status", "VARCHAR", values=("open", "filled", "unfilled")),
        _req("filled", "BIGINT"),
    ),
    key=("symbol", "from_trade_id"),
    time_column="detected_at",
)  # fmt: skip

SCAN = Table(
    "scan",
    (
        _TF, _req("ts", "TIMESTAMPTZ"), _PAIR,
        _opt("eg_pvalue"), _opt("eg_qvalue"), _opt("adf_pvalue"), _opt("half_life"),
        _opt("beta"), _opt("corr"), _opt("zscore"), _req("rank", "INTEGER"),
    ),
    key=("tf", "ts", "pair"),
    time_column="ts",
)  # fmt: skip

STRATEGIES = Table(
    "strategies",
    (_req("name", "VARCHAR"), _req("params", "VARCHAR")),  # params: JSON text
    key=("name",),
)

STRATEGY_TRADES = Table(
    "strategy_trades",
    (
        _STRATEGY, _PAIR, _TF, _req("entry_ts", "TIMESTAMPTZ"), _req("exit_ts", "TIMESTAMPTZ"),
        _req("side", "INTEGER"), _req("entry_z"), _req("exit_z"), _req("beta"),
        _req("q_y"), _req("q_x"), _req("entry_y"), _req("entry_x"), _req("exit_y"),
        _req("exit_x"), _req("fees"), _req("pnl"), _req("bars_held", "INTEGER"),
        _req("reason", "VARCHAR", values=EXIT_REASONS),
    ),
    key=("strategy", "pair", "tf", "entry_ts"),
    time_column="entry_ts",
)  # fmt: skip

STRATEGY_EQUITY = Table(
    "strategy_equity",
    (
        _STRATEGY, _PAIR, _TF, _req("ts", "TIMESTAMPTZ"), _req("position", "INTEGER"),
        _req("equity"),
    ),
    key=("strategy", "pair", "tf", "ts"),
    time_column="ts",
)  # fmt: skip

STRATEGY_STATS = Table(
    "strategy_stats",
    (
        _STRATEGY, _PAIR, _TF, _req("ts", "TIMESTAMPTZ"), _req("trades", "BIGINT"),
        _opt("win_rate"), _req("pnl"), _req("return_pct"), _opt("sharpe"),
        _req("max_drawdown"), _req("exposure"), _opt("mean_bars_held"),
    ),
    key=("strategy", "pair", "tf"),
    time_column="ts",
)  # fmt: skip

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        BARS, ANALYTICS, SIGNALS, REJECTS, PIPELINE_STATS, GAPS, SCAN, STRATEGIES,
        STRATEGY_TRADES, STRATEGY_EQUITY, STRATEGY_STATS,
    )
}  # fmt: skip
"""Every pairflow table by name (the one definition)."""

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {name: t.names for name, t in TABLES.items()}
"""Column order of every table (derived from :data:`TABLES`)."""

UPSERT_TABLES: frozenset[str] = frozenset(n for n, t in TABLES.items() if t.upsert)
"""Keyed tables (``INSERT OR REPLACE``); the others are append-only."""


# --------------------------------------------------------------------------- DDL, migrations


@dataclass(frozen=True, slots=True)
class _Existing:
    """What a file holds already: per table, ``column -> is_nullable`` and the key."""

    columns: dict[str, dict[str, bool]]
    keys: dict[str, tuple[str, ...]]


def _existing(con: _Connection) -> _Existing:
    """Every table's columns and primary key, in two catalogue queries (not two a table)."""
    columns: dict[str, dict[str, bool]] = {}
    for table, name, nullable in con.execute(
        "SELECT table_name, column_name, is_nullable FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = 'main' "
        "ORDER BY table_name, column_index"
    ).fetchall():
        columns.setdefault(table, {})[name] = bool(nullable)
    keys = {
        table: tuple(cols)
        for table, cols in con.execute(
            "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
            "WHERE database_name = current_database() AND schema_name = 'main' "
            "AND constraint_type = 'PRIMARY KEY'"
        ).fetchall()
    }
    return _Existing(columns, keys)


def _rebuild(con: _Connection, table: Table, have: dict[str, bool]) -> None:
    """Recreate ``table`` in the current spec, copying the old rows across.

    Columns the old table lacks get their :attr:`Column.backfill` (or NULL).
    """
    tmp = f"{table.name}__migrating"
    select = []
    for col in table.columns:
        if col.name in have:
            select.append(f'"{col.name}"')
        elif col.backfill is not None:
            select.append(col.backfill)
        elif col.nullable:
            select.append("NULL")
        else:
            msg = f"cannot migrate {table.name}: new NOT NULL column {col.name} has no backfill"
            raise ValueError(msg)
    con.execute(f"DROP TABLE IF EXISTS {tmp}")
    con.execute(table.ddl(tmp))
    con.execute(
        f"INSERT INTO {tmp} ({table.quoted()}) SELECT {', '.join(select)} FROM {table.name}"  # noqa: S608
    )
    con.execute(f"DROP TABLE {table.name}")
    con.execute(f"ALTER TABLE {tmp} RENAME TO {table.name}")


def migrate(con: _Connection, table: Table, existing: _Existing | None = None) -> list[str]:
    """Bring an existing table up to its spec; returns what was done (for logs/tests).

    - a NULL-able column that is missing: ``ALTER TABLE ... ADD COLUMN IF NOT EXISTS``;
    - a column that became NULL-able: ``ALTER TABLE ... ALTER COLUMN ... DROP NOT NULL``;
    - a different primary key or a missing NOT NULL column (``signals`` before
      strategies): the table is rebuilt, old rows copied with the column's backfill.

    ``existing`` is the file's catalogue (read here if not given); a table that does
    not exist is left alone (:func:`create_all` creates it).
    """
    if existing is None:
        existing = _existing(con)
    have = existing.columns.get(table.name)
    if have is None:
        return []
    done: list[str] = []
    missing_required = [c for c in table.columns if c.name not in have and not c.nullable]
    if missing_required or existing.keys.get(table.name, ()) != table.key:
        _rebuild(con, table, have)
        return [f"rebuilt {table.name}"]
    for col in table.columns:
        if col.name not in have:
            con.execute(f"ALTER TABLE {table.name} ADD COLUMN IF NOT EXISTS {col.ddl()}")
            done.append(f"added {table.name}.{col.name}")
        elif col.nullable and not have[col.name]:
            con.execute(f'ALTER TABLE {table.name} ALTER COLUMN "{col.name}" DROP NOT NULL')
            done.append(f"{table.name}.{col.name} NULL-able")
    return done


def create_all(con: _Connection, *, new_file: bool = False) -> list[str]:
    """Create every pairflow table that is missing and migrate older ones.

    One catalogue read, then the missing tables' DDL in one statement: a current file
    costs two queries, a new one one (start-up of every flow and test).

    Args:
        con: A connection to the database.
        new_file: The caller just created the file (nothing to read or migrate).

    Returns:
        The migrations applied (empty for a current or new file).
    """
    existing = _Existing({}, {}) if new_file else _existing(con)
    done: list[str] = []
    for table in TABLES.values():
        done += migrate(con, table, existing)
    missing = [t.ddl() for name, t in TABLES.items() if name not in existing.columns]
    if missing:
        con.execute(";\n".join(missing))
    return done


# --------------------------------------------------------------------------- records -> rows


@dataclass(frozen=True, slots=True)
class RecordMap:
    """How one record type becomes a row of one table.

    Attributes:
        table: The table.
        fields: Per column, the record attribute it is read from (None = NULL).
        row: ``record -> tuple`` in column order (times still epoch ms).
    """

    table: Table
    fields: tuple[str | None, ...]
    row: Callable[[Any], tuple[Any, ...]]


def _field_names(cls: type) -> tuple[str, ...]:
    if dataclasses.is_dataclass(cls):
        return tuple(f.name for f in dataclasses.fields(cls))
    fields = getattr(cls, "_fields", None)  # NamedTuple
    if fields is None:
        msg = f"{cls.__name__} is neither a dataclass nor a NamedTuple"
        raise TypeError(msg)
    return tuple(fields)


def derive_map(cls: type, table: Table) -> RecordMap:
    """Derive the field -> column mapping of ``cls`` for ``table`` (see module doc).

    Raises:
        TypeError: a NOT NULL column has no field, or a field matches no column.
    """
    names = _field_names(cls)
    used: list[str | None] = []
    for col in table.columns:
        if col.name in names or isinstance(getattr(cls, col.name, None), property):
            used.append(col.name)
        elif f"{col.name}_ms" in names and col.is_time:
            used.append(f"{col.name}_ms")
        elif col.nullable:
            used.append(None)
        else:
            msg = f"{cls.__name__} has no field for NOT NULL column {table.name}.{col.name}"
            raise TypeError(msg)
    unused = [n for n in names if n not in used]
    if unused:
        msg = f"{cls.__name__} fields {unused} match no column of {table.name}"
        raise TypeError(msg)
    present = [f for f in used if f is not None]
    get = attrgetter(*present)
    if len(present) == len(used):
        row: Callable[[Any], tuple[Any, ...]] = get if len(present) > 1 else (lambda r: (get(r),))
    else:
        slots = [i for i, f in enumerate(used) if f is not None]
        width = len(used)

        def row(r: Any) -> tuple[Any, ...]:
            out: list[Any] = [None] * width
            for i, v in zip(slots, get(r), strict=True):
                out[i] = v
            return tuple(out)

    return RecordMap(table, tuple(used), row)


_RECORD_MAPS: dict[type, RecordMap] = {}


def register_record(cls: type, table: str) -> RecordMap:
    """Declare that records of type ``cls`` are rows of ``table`` (checked at once).

    Call it where the record type is defined (at import), so every process that
    unpickles such a record knows it.
    """
    rmap = derive_map(cls, TABLES[table])
    _RECORD_MAPS[cls] = rmap
    return rmap


def record_map(cls: type) -> RecordMap:
    """The mapping of a registered record type.

    Raises:
        TypeError: ``cls`` is not registered.
    """
    try:
        return _RECORD_MAPS[cls]
    except KeyError:
        msg = f"DuckDB sink got an unsupported record: {cls.__name__}"
        raise TypeError(msg) from None


for _cls, _table in (
    (records.Bar, "bars"),
    (records.AnalyticsRow, "analytics"),
    (records.Signal, "signals"),
    (records.Reject, "rejects"),
    (records.Stat, "pipeline_stats"),
    (records.Gap, "gaps"),
    (records.ScanRow, "scan"),
):
    register_record(_cls, _table)
