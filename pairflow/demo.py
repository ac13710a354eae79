"""The demo: real Binance trades replayed "live" through the whole flow, plus the dashboard.

``bin/demo`` (README command 1) runs ``python -m pairflow.demo``: the shipped
recording is replayed in loop mode at real time (times shifted to now), through
parse -> Redis tee -> bars -> analytics -> DuckDB, with Bytewax recovery on; the
dashboard is started beside it and its URL printed. Ctrl-C stops both (the flow
flushes first). Restarting resumes from the recovery snapshot; ``--fresh`` starts over.

``bin/demo --scan [--symbols N]``: the pair scanner on SYNTHETIC data instead — a
simulated universe of N (default 16) symbols ``SYN00..`` in clusters with planted
cointegrated pairs (``PAIRFLOW_SYNTHETIC_UNIVERSE=clusters``), every pair analysed
(``PAIRFLOW_PAIRS=all``), scanned on 1s (every 5 s), 1m and 5m bars; its own DB
``data/demo-scan.db``. A synthetic warm start (``PAIRFLOW_SYNTHETIC_HISTORY_S``,
110 simulated minutes before the current 5m interval) fills the 1s, 1m and 5m
windows at once, so every timeframe and the scanner show within seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
RECORDING = ROOT / "data/recordings/binance-spot-trades-btcusdt-ethusdt-2024-08-08.ndjson.gz"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def redis_answers(host: str = "127.0.0.1", port: int = 6379) -> bool:
    """True if a Redis server answers PING on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def port_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def bar_counts(db: Path) -> str:
    """A one-line summary of the bars table (read-only; empty string if locked/absent)."""
    if not db.exists():
        return ""
    for _ in range(20):
        try:
            con = duckdb.connect(str(db), read_only=True)
        except duckdb.Error:
            time.sleep(0.05)
            continue
        try:
            rows = con.execute(
                "SELECT tf, count(*), max(open_time) FROM bars GROUP BY tf ORDER BY tf"
            ).fetchall()
            n_analytics = con.execute("SELECT count(*) FROM analytics").fetchone()
        except duckdb.Error:
            return ""
        finally:
            con.close()
        parts = [f"{tf}: {n} bars" for tf, n, _ in rows]
        newest = max((r[2] for r in rows), default=None)
        if n_analytics:
            parts.append(f"analytics: {n_analytics[0]} rows")
        if newest is not None:
            parts.append(f"newest bar {newest:%H:%M:%S} UTC")
        return ", ".join(parts)
    return ""


SCAN_SYMBOLS_DEFAULT = 16
"""Symbols of the ``--scan`` demo's synthetic universe (120 pairs; 24 = 276 pairs take
the analytics minutes to get through the warm start's history)."""

SCAN_WINDOWS = {"1s": 90, "1m": 30, "5m": 20}
"""Windows of the ``--scan`` demo (bars per timeframe)."""

SCAN_HISTORY_S = (SCAN_WINDOWS["5m"] + 2) * 300
"""Simulated history of the ``--scan`` demo: the 5m window plus two intervals (110 min)."""


def scan_env(n_symbols: int) -> dict[str, str]:
    """Settings of the ``--scan`` demo: a synthetic clusters universe, all pairs scanned.

    Raises:
        ValueError: fewer than 3 symbols (a scan needs more than one pair).
    """
    if n_symbols < 3:  # noqa: PLR2004 - three symbols = three pairs
        msg = "--symbols: the scanner needs at least 3 symbols"
        raise ValueError(msg)
    return {
        "PAIRFLOW_SOURCE": "synthetic",
        "PAIRFLOW_SYNTHETIC_UNIVERSE": "clusters",
        "PAIRFLOW_SYNTHETIC_RATE": "4",
        "PAIRFLOW_SYMBOLS": ",".join(f"SYN{i:02d}" for i in range(n_symbols)),
        "PAIRFLOW_PAIRS": "all",
        "PAIRFLOW_WINDOWS": ",".join(f"{tf}={w}" for tf, w in SCAN_WINDOWS.items()),
        "PAIRFLOW_SYNTHETIC_HISTORY_S": str(SCAN_HISTORY_S),
        "PAIRFLOW_SCAN_EVERY": "1s=5,1m=1,5m=1",
        "PAIRFLOW_REDIS_PREFIX": "demo-scan:",
    }


def main(argv: list[str] | None = None) -> int:
    """Run the demo until Ctrl-C (or ``--seconds``)."""
    parser = argparse.ArgumentParser(prog="bin/demo", description=__doc__.split("\n")[0])
    parser.add_argument("--fresh", action="store_true", help="delete the demo DB and recovery")
    parser.add_argument("--port", type=int, default=8501, help="dashboard port (127.0.0.1)")
    parser.add_argument("--no-dashboard", action="store_true")
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long")
    parser.add_argument("--speed", default="1", help="replay speed (real time = 1)")
    parser.add_argument(
        "--live", action="store_true", help="live mode: the configured source (binance by default)"
    )
    parser.add_argument(
        "--scan",
        action="store_true",
        help="pair scanner on a SYNTHETIC universe (clusters with planted pairs)",
    )
    parser.add_argument(
        "--symbols", type=int, default=SCAN_SYMBOLS_DEFAULT, help="--scan: universe size"
    )
    args = parser.parse_args(argv)

    name = "live" if args.live else "demo"
    default_db = ROOT / ("data/quant_data.db" if args.live else "data/demo.db")
    if args.scan and not args.live:
        name = "demo-scan"
        default_db = ROOT / "data/demo-scan.db"
    db = Path(os.environ.get("PAIRFLOW_DB", default_db))
    recovery = ROOT / f"data/recovery/{name}"
    if args.fresh:
        for path in (db, Path(f"{db}.wal")):
            path.unlink(missing_ok=True)
        shutil.rmtree(recovery, ignore_errors=True)
    env = dict(os.environ)
    if args.scan and not args.live:
        for key, value in scan_env(args.symbols).items():
            env.setdefault(key, value)
    elif not args.live:
        env.setdefault("PAIRFLOW_SOURCE", f"replay:{RECORDING}")
        env.setdefault("PAIRFLOW_REPLAY_SPEED", args.speed)
        env.setdefault("PAIRFLOW_REPLAY_LOOP", "1")
        # The demo's streams are its own: its times are shifted to now, so sharing
        # ticks:{SYMBOL} with one-off runs would make Redis refuse their older IDs.
        env.setdefault("PAIRFLOW_REDIS_PREFIX", "demo:")
    env["PAIRFLOW_DB"] = str(db)
    if "PAIRFLOW_REDIS_URL" not in env:
        env["PAIRFLOW_REDIS_URL"] = DEFAULT_REDIS if redis_answers() else ""
        if not env["PAIRFLOW_REDIS_URL"]:
            print(f"{name}: no Redis on 127.0.0.1:6379, so the tick tee is off")

    if args.live:
        print(f"live: source {env.get('PAIRFLOW_SOURCE', 'binance')}")
    elif args.scan:
        n = len(env["PAIRFLOW_SYMBOLS"].split(","))
        print(
            f"demo-scan: SYNTHETIC data — a simulated universe of {n} symbols "
            f"({n * (n - 1) // 2} pairs, planted cointegrated clusters), not market prices; "
            f"warm start: {float(env.get('PAIRFLOW_SYNTHETIC_HISTORY_S', 0)) / 60:g} simulated "
            "minutes of history, so 1s, 1m "
            "and 5m analytics and scans show within seconds"
        )
    else:
        print(f"demo: replaying {RECORDING.name} in a loop at {args.speed}x real time")
    print(f"{name}: DuckDB file {db} (open it read-only while it runs)")
    # Own process groups: Ctrl-C reaches only this process, which then stops the
    # children once, in order (the flow gets one SIGTERM and flushes).
    flow = subprocess.Popen(
        [sys.executable, str(ROOT / "dataflow.py"), "-r", str(recovery)],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    dash = None
    if not args.no_dashboard:
        from dashboard.launch import start_dashboard

        port = args.port
        while not port_free(port):
            port += 1
        dash = start_dashboard(
            port,
            db,
            # the flow's own settings (windows, source, Redis prefix...), so the
            # dashboard describes what this flow does
            env={k: v for k, v in env.items() if k.startswith("PAIRFLOW_")},
        )
        print(f"{name}: open http://127.0.0.1:{port} in a browser")

    stop = {"now": False}

    def on_signal(signum: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    started = time.monotonic()
    next_report = started + 5
    rc = 0
    while not stop["now"]:
        if flow.poll() is not None:
            print(f"{name}: the flow exited with code {flow.returncode}", file=sys.stderr)
            rc = flow.returncode or 1
            break
        if args.seconds and time.monotonic() - started >= args.seconds:
            break
        if time.monotonic() >= next_report:
            summary = bar_counts(db)
            if summary:
                print(f"{name}: {summary}", flush=True)
            next_report += 5
        time.sleep(0.2)
    print(f"{name}: stopping (the flow flushes its last bars first)")
    if flow.poll() is None:
        flow.send_signal(signal.SIGTERM)
        try:
            flow.wait(60)
        except subprocess.TimeoutExpired:
            flow.kill()
    if dash is not None:
        dash.terminate()
        try:
            dash.wait(20)
        except subprocess.TimeoutExpired:
            dash.kill()
    summary = bar_counts(db)
    if summary:
        print(f"{name}: {summary}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
