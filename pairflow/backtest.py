"""Backtest: run the whole flow at max speed over history and print the strategies' results.

::

    python -m pairflow.backtest replay:PATHS [--pairs Y/X,...] [--symbols A,B,...]
        [--strategies 'name:key=value,...;...'] [--grid entry=1.5,2,2.5 exit=0,0.5 model=ols,kalman]
        [--db PATH] [--windows 1s=300,...] [--html report.html]

The flow is the live one (bars, analytics, strategies), fed by the replay source at
``PAIRFLOW_REPLAY_SPEED=max`` into a DuckDB file (a temporary one unless ``--db``),
without the Redis tee. While it runs a progress line goes to stderr every few
seconds (the replay source shows its own bar on a terminal); at the end the
``strategy_stats`` table is printed per strategy x pair x timeframe.

``--grid`` adds one strategy per combination of the listed values (keys of
``PAIRFLOW_STRATEGIES``: ``model entry exit stop max_hold fee_bps notional``), named
``g_`` + ``key value`` parts with ``.`` written ``p`` (``g_entry2_exit0p5_ols``, since
strategy names allow ``A-Z a-z 0-9 _ -``); every combination runs in the same pass
(strategies are cheap next to analytics). Combinations that are not valid strategies
(``exit >= entry``, a stop below the entry) are skipped and listed. With ``--grid``
or ``--html`` a self-contained HTML report is written (:mod:`pairflow.report`).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import pandas as pd

from pairflow.config import ConfigError, Settings, load_settings
from pairflow.strategies.params import KEYS, NAME_RE, StrategyParams, validate

GRID_NAME_PREFIX = "g_"


@dataclass(frozen=True)
class Grid:
    """A parameter grid: the keys in the order given and their values (as typed)."""

    axes: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def keys(self) -> tuple[str, ...]:
        """The grid's keys in order."""
        return tuple(k for k, _ in self.axes)

    @property
    def size(self) -> int:
        """Number of combinations."""
        n = 1
        for _, values in self.axes:
            n *= len(values)
        return n


def parse_grid(items: Sequence[str]) -> Grid:
    """Parse ``key=v1,v2`` items (``entry=1.5,2 exit=0,0.5 model=ols,kalman``).

    Raises:
        ConfigError: on an unknown or repeated key or an empty value list.
    """
    axes: list[tuple[str, tuple[str, ...]]] = []
    for item in items:
        key, eq, values = item.partition("=")
        key = key.strip().lower()
        if not eq or key not in KEYS:
            msg = f"--grid {item!r}: write key=v1,v2,... with key one of {', '.join(KEYS)}"
            raise ConfigError(msg)
        if key in dict(axes):
            msg = f"--grid: {key} is given twice"
            raise ConfigError(msg)
        vals = tuple(v.strip() for v in values.split(",") if v.strip())
        if not vals:
            msg = f"--grid {item!r}: no values"
            raise ConfigError(msg)
        axes.append((key, vals))
    return Grid(tuple(axes))


def _name_part(key: str, value: str) -> str:
    text = value.replace(".", "p").replace("-", "m")
    return text if key == "model" else f"{key}{text}"


def grid_strategies(
    grid: Grid, base: StrategyParams
) -> tuple[list[StrategyParams], list[tuple[str, str]]]:
    """One strategy per grid combination, the other keys from ``base``.

    Returns:
        ``(strategies, skipped)``: valid strategies in grid order, and
        ``(name, reason)`` of the combinations that are not valid strategies.

    Raises:
        ConfigError: on a value that is not a number where one is needed.
    """
    out: list[StrategyParams] = []
    skipped: list[tuple[str, str]] = []
    keys = grid.keys
    for i, combo in enumerate(itertools.product(*(v for _, v in grid.axes))):
        name = GRID_NAME_PREFIX + "_".join(
            _name_part(k, v) for k, v in zip(keys, combo, strict=True)
        )
        if not NAME_RE.fullmatch(name):
            name = f"{GRID_NAME_PREFIX}{i:03d}"
        values: dict[str, object] = {}
        for k, v in zip(keys, combo, strict=True):
            try:
                if k == "model":
                    values[k] = v.lower()
                elif k == "max_hold":
                    values[k] = int(v)
                else:
                    values[k] = float(v)
            except ValueError:
                msg = f"--grid {k}={v!r}: not a number"
                raise ConfigError(msg) from None
        p = replace(base, name=name, **values)  # type: ignore[arg-type]
        try:
            out.append(validate(p))
        except ValueError as exc:
            skipped.append((name, str(exc).split(": ", 2)[-1]))
    return out, skipped


def strategies_text(strategies: Sequence[StrategyParams]) -> str:
    """``PAIRFLOW_STRATEGIES`` text for ``strategies`` (every key explicit)."""
    return ";".join(
        f"{p.name}:model={p.model},entry={p.entry!r},exit={p.exit!r},stop={p.stop!r},"
        f"max_hold={p.max_hold},fee_bps={p.fee_bps!r},notional={p.notional!r}"
        for p in strategies
    )


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m pairflow.backtest",
        description="Run the pairflow dataflow over history at max speed and report the "
        "paper strategies (per strategy x pair x timeframe).",
    )
    ap.add_argument("source", help="replay:PATHS (comma-separated paths or globs)")
    ap.add_argument("--pairs", help="Y/X,... (default: PAIRFLOW_PAIRS or the first symbol vs each)")
    ap.add_argument(
        "--symbols", help="A,B,... (default: the legs of --pairs, else PAIRFLOW_SYMBOLS)"
    )
    ap.add_argument("--strategies", help="PAIRFLOW_STRATEGIES text (default: PAIRFLOW_STRATEGIES)")
    ap.add_argument(
        "--grid",
        nargs="+",
        metavar="KEY=V1,V2",
        help="run one strategy per combination, e.g. --grid entry=1.5,2,2.5 exit=0,0.5",
    )
    ap.add_argument("--db", type=Path, help="DuckDB file to write (default: a temporary file)")
    ap.add_argument("--windows", help="PAIRFLOW_WINDOWS, e.g. 1s=300,1m=120,5m=60")
    ap.add_argument("--html", type=Path, help="write the HTML report here")
    ap.add_argument("--no-progress", action="store_true", help="no progress lines")
    return ap


def build_env(
    args: argparse.Namespace, db: Path, base_env: Mapping[str, str]
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The ``PAIRFLOW_*`` environment of the backtest run, and the skipped grid points."""
    env = dict(base_env)
    source = args.source if args.source.startswith("replay:") else f"replay:{args.source}"
    env.update(
        PAIRFLOW_SOURCE=source,
        PAIRFLOW_REPLAY_SPEED="max",
        PAIRFLOW_REPLAY_LOOP="0",
        PAIRFLOW_DB=str(db),
        PAIRFLOW_REDIS_URL="",
    )
    if args.pairs:
        env["PAIRFLOW_PAIRS"] = args.pairs
        if not args.symbols:
            legs: list[str] = []
            for pair in args.pairs.split(","):
                for leg in pair.split("/"):
                    if leg.strip() and leg.strip().upper() not in legs:
                        legs.append(leg.strip().upper())
            env["PAIRFLOW_SYMBOLS"] = ",".join(legs)
    if args.symbols:
        env["PAIRFLOW_SYMBOLS"] = args.symbols
    if args.windows:
        env["PAIRFLOW_WINDOWS"] = args.windows
    if args.strategies is not None:
        env["PAIRFLOW_STRATEGIES"] = args.strategies
    skipped: list[tuple[str, str]] = []
    if args.grid:
        grid = parse_grid(args.grid)
        settings = load_settings(env)  # entry/exit defaults and the named strategies
        base = replace(settings.strategies[0], name="base")
        grid_ps, skipped = grid_strategies(grid, base)
        if not grid_ps:
            msg = "--grid: no valid combination (see the skipped list)"
            raise ConfigError(msg)
        named = list(settings.strategies) if args.strategies else []
        env["PAIRFLOW_STRATEGIES"] = strategies_text([*named, *grid_ps])
    return env, skipped


class ProgressLine:
    """Prints ``backtest: N ticks in, rows ...`` to stderr every ``every_s`` seconds."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backtest-progress", daemon=True)
        self.started = time.monotonic()

    def _run(self) -> None:
        from pairflow.summary import COUNTS

        while not self._stop.wait(self.every_s):
            rows = ", ".join(
                f"{COUNTS[k]:,} {k.removeprefix('rows:')}"
                for k in ("rows:bars", "rows:analytics", "rows:strategy_equity")
                if COUNTS[k]
            )
            el = time.monotonic() - self.started
            print(
                f"backtest: {el:.0f} s, {COUNTS['ticks']:,} ticks in; "
                f"written: {rows or 'nothing yet'}",
                file=sys.stderr,
                flush=True,
            )

    def __enter__(self) -> ProgressLine:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)


def run(settings: Settings, *, progress: bool = True) -> float:
    """Run the flow to the end of the replay in this process; returns the wall seconds."""
    from bytewax.testing import run_main

    import dataflow

    t0 = time.perf_counter()
    flow = dataflow.build(settings, with_redis=False)
    if progress:
        with ProgressLine():
            run_main(flow)
    else:
        run_main(flow)
    return time.perf_counter() - t0


STATS_QUERY = """
SELECT s.strategy, s.pair, s.tf, s.trades, s.win_rate, s.pnl, s.return_pct, s.sharpe,
       s.max_drawdown, s.exposure, s.mean_bars_held, s.ts
FROM strategy_stats s
ORDER BY s.strategy, s.pair, s.tf
"""


def read_stats(db: Path) -> pd.DataFrame:
    """The ``strategy_stats`` table (one row per strategy x pair x tf), ordered."""
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(STATS_QUERY).df()


def format_stats(stats: pd.DataFrame) -> str:
    """A readable fixed-width table of the stats (what the command prints)."""
    head = (
        f"{'strategy':<26} {'pair':<17} {'tf':<3} {'trades':>6} {'win%':>6} {'pnl':>10} "
        f"{'return%':>8} {'sharpe':>8} {'max_dd':>9} {'exposure%':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in stats.itertuples(index=False):
        win = "-" if pd.isna(r.win_rate) else f"{100 * r.win_rate:.1f}"
        sharpe = "-" if pd.isna(r.sharpe) else f"{r.sharpe:.2f}"
        lines.append(
            f"{r.strategy:<26} {r.pair:<17} {r.tf:<3} {r.trades:>6} {win:>6} {r.pnl:>10.2f} "
            f"{r.return_pct:>8.3f} {sharpe:>8} {r.max_drawdown:>9.2f} {100 * r.exposure:>9.1f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m pairflow.backtest``; returns the exit status."""
    args = _parser().parse_args(argv)
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if args.db is None:
        tmp = tempfile.TemporaryDirectory(prefix="pairflow-backtest-")
        db = Path(tmp.name) / "backtest.db"
    else:
        db = args.db
    try:
        base_env = {k: v for k, v in os.environ.items() if k.startswith("PAIRFLOW_")}
        env, skipped = build_env(args, db, base_env)
        settings = load_settings(env)
    except ConfigError as exc:
        print(f"backtest: configuration error: {exc}", file=sys.stderr)
        return 2
    names = [p.name for p in settings.strategies]
    print(
        f"backtest: {settings.source.describe()} -> {db}; pairs "
        f"{','.join('/'.join(p) for p in settings.pairs)}; windows "
        f"{','.join(f'{k}={v}' for k, v in settings.windows.items())}; "
        f"{len(names)} strateg{'y' if len(names) == 1 else 'ies'}",
        file=sys.stderr,
    )
    for name, why in skipped:
        print(f"backtest: grid point {name} skipped: {why}", file=sys.stderr)
    try:
        seconds = run(settings, progress=not args.no_progress)
        stats = read_stats(db)
        stats = stats[stats["strategy"].isin(names)]
        print(format_stats(stats))
        print(
            f"\n{len(stats)} rows (strategy x pair x tf) in {seconds:.1f} s wall; db {db}"
            + ("" if args.db else " (temporary, removed)")
        )
        if len(stats) and stats["sharpe"].notna().any():
            ok = stats.dropna(subset=["sharpe"])
            best, worst = ok.loc[ok["sharpe"].idxmax()], ok.loc[ok["sharpe"].idxmin()]
            print(
                f"best Sharpe {best.sharpe:.2f} ({best.strategy} {best.pair} {best.tf}), "
                f"worst {worst.sharpe:.2f} ({worst.strategy} {worst.pair} {worst.tf})"
            )
        html = args.html
        if html is None and args.grid:
            html = Path("backtest_report.html")
        if html is not None:
            from pairflow.report import write_report

            grid = parse_grid(args.grid) if args.grid else None
            write_report(db, html, settings.strategies, grid=grid, seconds=seconds)
            print(f"report: {html}")
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
