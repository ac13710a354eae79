"""Per-bar cost of the pair-analytics operator vs recomputing everything with statsmodels.

For each window ``W`` (100, 300, 1000) the script warms a pair state up with ``W``
grid points, then times the next bars through :class:`operators.analytics.
PairAnalyticsLogic` (both legs' bars of an interval in one batch, as bytewax
delivers them) and, separately, the statsmodels recomputation of the same
statistics on the same windows (OLS, spread z-score, return correlation,
``adfuller``, ``coint``, half-life OLS). It prints a Markdown table of µs per bar.

Data: the real BTCUSDT/ETHUSDT 1s closes from ``../shared/data`` (their log
returns repeated end to end to reach ``W`` + the timed bars: the file holds
~650 s), or a synthetic cointegrated pair with ``--data synthetic``.

Usage::

    uv run python benchmarks/analytics.py            # full run (~1-2 min)
    uv run python benchmarks/analytics.py --quick    # a few seconds
    uv run python benchmarks/analytics.py --amend --windows 100,300
        # a reconnect's 30 late 1s bars: rows recomputed, µs per recomputed row
    uv run python benchmarks/analytics.py --accuracy --windows 60,100,300
        # worst difference per column vs statsmodels on the real data instead

BLAS runs single-threaded (``OPENBLAS_NUM_THREADS=1`` etc. unless already set in
the environment), for both sides.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
import warnings
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# One BLAS thread unless told otherwise (set before numpy loads): a bytewax worker
# is one thread, and multi-threaded BLAS on small matrices mostly adds contention.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402 - after the BLAS thread settings above

from operators.analytics import PairAnalyticsLogic, new_state, pair_key  # noqa: E402
from pairflow.records import AnalyticsRow, Bar, Watermark  # noqa: E402
from pairflow.testing import RECORDING as TRADES  # noqa: E402

Y, X = "BTCUSDT", "ETHUSDT"
KEY = pair_key(Y, X, "1s")
T0 = 1_723_161_255_000


def real_log_returns() -> tuple[float, float, np.ndarray, np.ndarray]:
    """Start log prices and 1s log returns of the real data (last trade per second, ffilled)."""
    from pairflow.testing.oracle import one_second_closes

    grid = one_second_closes(TRADES)
    ly, lx = np.log(grid[Y].to_numpy()), np.log(grid[X].to_numpy())
    return float(ly[0]), float(lx[0]), np.diff(ly), np.diff(lx)


def closes(n: int, data: str, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """``n`` closes per leg: real returns repeated, or a synthetic cointegrated pair."""
    if data == "real" and TRADES.exists():
        y0, x0, ry, rx = real_log_returns()
        reps = math.ceil(n / len(ry))
        ry, rx = np.tile(ry, reps)[: n - 1], np.tile(rx, reps)[: n - 1]
        ly = y0 + np.concatenate([[0.0], np.cumsum(ry)])
        lx = x0 + np.concatenate([[0.0], np.cumsum(rx)])
        return np.exp(ly), np.exp(lx)
    rng = np.random.default_rng(seed)
    lx = math.log(2600.0) + np.cumsum(rng.normal(0, 2e-4, n))
    u = np.zeros(n)
    for t in range(1, n):
        u[t] = 0.95 * u[t - 1] + rng.normal(0, 1e-4)
    ly = math.log(61000.0) + 1.5 * (lx - math.log(2600.0)) + u
    return np.exp(ly), np.exp(lx)


def bar(symbol: str, i: int, close: float) -> Bar:
    return Bar(symbol, "1s", T0 + i * 1000, close, close, close, close, 1.0, close, 1, 0.5, i, i)


def time_ours(
    yc: np.ndarray,
    xc: np.ndarray,
    w: int,
    bars: int,
    pvalue_every: int,
    compiled: bool | None = None,
) -> float:
    """µs per bar through PairAnalyticsLogic.on_batch, after a W-point warm-up.

    ``compiled``: the compiled row kernel (``None``: what one key gets by default).
    """
    logic = PairAnalyticsLogic(
        None, lambda k: new_state(k, w, pvalue_every=pvalue_every, compiled=compiled)
    )
    batches: list[list[tuple[str, Bar | Watermark]]] = [
        [(KEY, bar(Y, i, yc[i])), (KEY, bar(X, i, xc[i]))] for i in range(len(yc))
    ]
    for b in batches[: w + 1]:
        logic.on_batch(b)
    timed = batches[w + 1 : w + 1 + bars]
    t0 = time.perf_counter()
    for b in timed:
        logic.on_batch(b)
    return (time.perf_counter() - t0) / len(timed) * 1e6


def statsmodels_row(y: np.ndarray, x: np.ndarray) -> tuple[float, ...]:
    """Every statistic of one window, recomputed from scratch with statsmodels."""
    import statsmodels.api as sm
    from statsmodels.tsa.stattools import adfuller, coint

    fit = sm.OLS(y, sm.add_constant(x)).fit()
    s = fit.resid
    z = (s[-1] - s.mean()) / s.std(ddof=1)
    corr = np.corrcoef(np.diff(y), np.diff(x))[0, 1]
    adf = adfuller(s, regression="c", autolag="AIC", result_object=True).pvalue
    eg = coint(y, x, trend="c", autolag="aic")[1]
    lam = sm.OLS(np.diff(s), sm.add_constant(s[:-1])).fit().params[1]
    return fit.params[0], fit.params[1], s[-1], z, corr, adf, eg, lam


def time_statsmodels(yc: np.ndarray, xc: np.ndarray, w: int, bars: int) -> float:
    """µs per bar recomputing each window with statsmodels."""
    ly, lx = np.log(yc), np.log(xc)
    ends = range(w + 2, w + 2 + bars)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        statsmodels_row(ly[:w], lx[:w])  # imports, caches
        t0 = time.perf_counter()
        for end in ends:
            statsmodels_row(ly[end - w : end], lx[end - w : end])
    return (time.perf_counter() - t0) / len(ends) * 1e6


COLUMNS = ("alpha", "beta", "spread", "zscore", "corr", "adf_pvalue", "eg_pvalue", "half_life")
EG_CENTRED = "eg_pvalue vs coint(y - mean, x - mean)"


def accuracy(windows: list[int]) -> None:
    """Worst |ours - statsmodels| per column over every row of the real 1s data."""
    import statsmodels.api as sm
    from statsmodels.tsa.stattools import adfuller, coint

    y0, x0, ry, rx = real_log_returns()
    ly = y0 + np.concatenate([[0.0], np.cumsum(ry)])
    lx = x0 + np.concatenate([[0.0], np.cumsum(rx)])
    yc, xc = np.exp(ly), np.exp(lx)
    print("accuracy on the real 1s closes (every row; oracle: statsmodels per window)\n")
    print("| W | rows | column | max abs diff | max rel diff |")
    print("|---:|---:|---|---:|---:|")
    for w in windows:
        if w >= len(yc):
            continue
        logic = PairAnalyticsLogic(None, partial(new_state, window=w))
        out: list[object] = []
        for i in range(len(yc)):
            batch: list[tuple[str, Bar | Watermark]] = [
                (KEY, bar(Y, i, yc[i])),
                (KEY, bar(X, i, xc[i])),
            ]
            out += logic.on_batch(batch)[0]
        out += logic.on_eof()[0]
        rows = [r for r in out if isinstance(r, AnalyticsRow)]
        worst = {c: [0.0, 0.0] for c in (*COLUMNS, EG_CENTRED)}
        for i, row in enumerate(rows):
            y, x = np.log(yc[i : i + w]), np.log(xc[i : i + w])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = sm.OLS(y, sm.add_constant(x)).fit()
                s = np.asarray(fit.resid)
                lam = sm.OLS(np.diff(s), sm.add_constant(s[:-1])).fit().params[1]
                ref = {
                    "alpha": fit.params[0],
                    "beta": fit.params[1],
                    "spread": s[-1],
                    "zscore": (s[-1] - s.mean()) / s.std(ddof=1),
                    "corr": np.corrcoef(np.diff(y), np.diff(x))[0, 1],
                    "adf_pvalue": adfuller(s, regression="c", autolag="AIC", result_object=True)[1],
                    "eg_pvalue": coint(y, x, trend="c", autolag="aic")[1],
                    "half_life": -math.log(2) / math.log1p(lam) if -1 < lam < 0 else None,
                    # Same test, shift-invariant; statsmodels is better conditioned here.
                    EG_CENTRED: coint(y - y.mean(), x - x.mean(), trend="c", autolag="aic")[1],
                }
            for c in (*COLUMNS, EG_CENTRED):
                got = getattr(row, c if c != EG_CENTRED else "eg_pvalue")
                want = ref[c]
                if got is None or want is None:
                    assert got is None and want is None, (c, got, want)
                    continue
                d = abs(got - want)
                worst[c][0] = max(worst[c][0], d)
                worst[c][1] = max(worst[c][1], d / abs(want) if want else 0.0)
        for c in (*COLUMNS, EG_CENTRED):
            print(f"| {w} | {len(rows)} | {c} | {worst[c][0]:.1e} | {worst[c][1]:.1e} |")


def amendment_cost(windows: list[int], late: int = 30, delay: int = 60, repeat: int = 3) -> None:
    """µs per recomputed row when a reconnect delivers ``late`` amended 1s bars at once.

    The pair runs ``W + 2 * delay`` grid points in order; then the X bars of the
    ``late`` intervals starting ``delay`` points back arrive with changed closes
    (what a REST backfill after a 30 s outage does), in one batch.
    """
    print(f"amendment cost: {late} late 1s bars of one leg, arriving {delay} s after the first\n")
    print("| W | rows recomputed | batch ms | µs per recomputed row | normal µs/bar |")
    print("|---:|---:|---:|---:|---:|")
    for w in windows:
        n = w + 2 * delay
        yc, xc = closes(n, "real")
        results = []
        for _ in range(repeat):
            logic = PairAnalyticsLogic(None, lambda k, w=w: new_state(k, w))
            t_norm = 0.0
            for i in range(n):
                batch: list[tuple[str, Bar | Watermark]] = [
                    (KEY, bar(Y, i, yc[i])), (KEY, bar(X, i, xc[i]))
                ]  # fmt: skip
                t0 = time.perf_counter()
                logic.on_batch(batch)
                if i >= w:
                    t_norm += time.perf_counter() - t0
            assert logic.state is not None
            before = logic.state.recomputed_rows
            first = n - delay
            amend: list[tuple[str, Bar | Watermark]] = [
                (KEY, bar(X, i, xc[i] * 1.0002)) for i in range(first, first + late)
            ]
            t0 = time.perf_counter()
            logic.on_batch(amend)
            dt = time.perf_counter() - t0
            rows = logic.state.recomputed_rows - before
            results.append((dt, rows, t_norm / (n - w)))
        dt, rows, norm = sorted(results)[len(results) // 2]
        print(f"| {w} | {rows} | {dt * 1e3:,.1f} | {dt / rows * 1e6:,.0f} | {norm * 1e6:,.0f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (a few seconds)")
    parser.add_argument("--data", choices=("real", "synthetic"), default="real")
    parser.add_argument("--windows", default="100,300,1000")
    parser.add_argument("--repeat", type=int, default=3, help="take the median of N runs")
    parser.add_argument(
        "--accuracy", action="store_true", help="print max differences vs statsmodels instead"
    )
    parser.add_argument(
        "--amend", action="store_true", help="print the cost of an amendment burst instead"
    )
    args = parser.parse_args(argv)
    if args.amend:
        amendment_cost([int(w) for w in args.windows.split(",")])
        return
    if args.accuracy:
        accuracy([int(w) for w in args.windows.split(",")])
        return
    windows = [int(w) for w in args.windows.split(",")]
    ours_bars, sm_bars, repeat = (300, 15, 1) if args.quick else (2000, 150, args.repeat)
    data = args.data if (args.data == "synthetic" or TRADES.exists()) else "synthetic"

    print(
        f"data: {data}; bars timed per W: ours {ours_bars}, statsmodels {sm_bars}; "
        f"median of {repeat} run(s)\n"
    )
    print("| W | ours µs/bar | ours, p-values every 10 µs/bar | statsmodels µs/bar | speed-up |")
    print("|---:|---:|---:|---:|---:|")
    warm_y, warm_x = closes(200, data)
    time_ours(warm_y, warm_x, 100, 50, 1)  # first-call costs (imports, scipy caches)
    for w in windows:
        yc, xc = closes(w + ours_bars + 2, data)
        ours = statistics.median(time_ours(yc, xc, w, ours_bars, 1) for _ in range(repeat))
        ours10 = statistics.median(time_ours(yc, xc, w, ours_bars, 10) for _ in range(repeat))
        theirs = statistics.median(time_statsmodels(yc, xc, w, sm_bars) for _ in range(repeat))
        print(f"| {w} | {ours:,.0f} | {ours10:,.0f} | {theirs:,.0f} | {theirs / ours:,.1f}x |")


if __name__ == "__main__":
    main()
