"""Synthetic trades with known cointegrated pairs (for tests and demos).

Two universes (``SyntheticParams.universe``, ``PAIRFLOW_SYNTHETIC_UNIVERSE``):

``pair`` (default) — one cointegrated pair with a known hedge ratio.
Model (log prices, time in seconds):

* ``x`` (the second symbol) is a random walk: ``dx = sigma_x * dW``.
* ``u`` is an Ornstein-Uhlenbeck spread: ``du = -theta * u dt + sigma_u dW'``.
* ``y`` (the first symbol) is ``alpha + beta * x + u`` — cointegrated with ``x``
  with hedge ratio ``beta``.
* Any further symbols are independent random walks.

``clusters`` — N symbols in clusters of 2-4 (:func:`cluster_layout`) plus
independent walks (about a quarter of the symbols, listed last). Cluster ``c`` has
a common random-walk factor ``f_c`` (``df = sigma_factor * dW``); member ``j`` is
``ln p_j = a_j + b_j * f_c + u_j`` with its own OU spread ``u_j`` (rate
``theta_cluster``, stationary sd ``sigma_cluster_u / sqrt(2 theta)``) and loading
``b_j`` in [0.6, 1.6]. So every two members of a cluster are cointegrated
(``y_i - (b_i/b_j) y_j`` is stationary) and no other pair is:
:func:`planted_pairs` returns them. Each component is advanced exactly (Gaussian
increments over the elapsed time) only when one of its symbols trades, so a trade
costs O(1) whatever N.

Trades arrive as a Poisson process at ``rate`` per second per symbol; prices are
rounded to 0.01, quantities are log-normal rounded to 1e-5 (never 0). The source
emits :class:`~pairflow.records.Tick` records directly (there is no wire format).

``duration_s > 0``: simulated time starts at a fixed instant and runs as fast as
possible for that long, then the source ends (deterministic for a seed). Otherwise
trades are generated in real time (``T`` = now) forever. Resumable: the snapshot
holds the generator state.

Warm start (real time only, ``history_s > 0``, ``PAIRFLOW_SYNTHETIC_HISTORY_S``),
like the live source's: on a fresh start (no snapshot) :func:`simulate_history`
runs the same model over ``history_s`` (rounded up to whole 5-minute intervals)
ending at ``t5``, the start of the current 5-minute interval, vectorised on a
:data:`HISTORY_STEP_MS` grid. The source emits it first as
:class:`~pairflow.records.Bar` records without trade ids (per timeframe the last
``history_spans_s[tf]`` seconds; from the registry: ``W + 1`` bars of each analysed
timeframe like the live warm-up, else the whole history for 1m/5m and no 1s), then
``Watermark(symbol, tf, t5)`` for every symbol and emitted timeframe, then trades
from ``t5`` on (those up to now at once), continuing from the history's final
state. A resumed source does not emit history again.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations

import numpy as np
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from pairflow.records import Bar, Tick, Watermark
from pairflow.shutdown import stop_requested
from pairflow.timeutil import TF_MS, ms_to_dt, now_ms

SIM_START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
"""Simulated start time when running as fast as possible."""


@dataclass(frozen=True)
class SyntheticParams:
    """Model parameters; defaults look like BTC against ETH on a calm day."""

    beta: float = 1.5
    alpha: float = -1.1
    x0: float = math.log(2_700.0)
    sigma_x: float = 2e-4
    theta: float = 1 / 30.0
    sigma_u: float = 1.5e-4
    sigma_other: float = 3e-4
    rate: float = 50.0
    universe: str = "pair"
    sigma_factor: float = 3e-4
    theta_cluster: float = 1 / 3.0
    sigma_cluster_u: float = 2e-4


UNIVERSES: tuple[str, ...] = ("pair", "clusters")
"""The synthetic universes (see the module docstring)."""

CLUSTER_SIZES: tuple[int, ...] = (2, 3, 4)
"""Cluster sizes of the ``clusters`` universe, used in turn."""


def cluster_layout(n_symbols: int) -> tuple[tuple[tuple[int, ...], ...], tuple[int, ...]]:
    """Which symbol indices form clusters, and which are independent walks.

    About a quarter of the symbols (``n // 4``) are independent walks, listed last;
    the others form consecutive clusters of sizes 2, 3, 4, 2, 3, 4... (a remainder
    too small for a cluster is independent too). Depends only on ``n_symbols``.

    Returns:
        ``(clusters, independent)``: each cluster a tuple of symbol indices.
    """
    n_clustered = n_symbols - n_symbols // 4
    clusters: list[tuple[int, ...]] = []
    i = 0
    k = 0
    while True:
        size = CLUSTER_SIZES[k % len(CLUSTER_SIZES)]
        if i + size > n_clustered:
            size = n_clustered - i
            if size >= 2:
                clusters.append(tuple(range(i, i + size)))
                i += size
            break
        clusters.append(tuple(range(i, i + size)))
        i += size
        k += 1
    return tuple(clusters), tuple(range(i, n_symbols))


def planted_pairs(symbols: Sequence[str], universe: str = "clusters") -> frozenset[tuple[str, str]]:
    """The truly cointegrated pairs ``(Y, X)`` of a universe (Y = the symbol listed first).

    Same orientation as ``PAIRFLOW_PAIRS=all``. ``pair``: the first two symbols.

    Raises:
        ValueError: on an unknown universe.
    """
    if universe == "pair":
        return frozenset({(symbols[0], symbols[1])})
    if universe != "clusters":
        msg = f"unknown synthetic universe {universe!r}; use one of {', '.join(UNIVERSES)}"
        raise ValueError(msg)
    clusters, _ = cluster_layout(len(symbols))
    return frozenset(
        (symbols[i], symbols[j]) for members in clusters for i, j in combinations(members, 2)
    )


@dataclass(frozen=True)
class ClusterState:
    """State of the ``clusters`` universe (part of the recovery snapshot).

    Attributes:
        factor: Log level of each cluster's common factor.
        factor_t_ms: Simulated time each factor was last advanced to.
        level: Per symbol: OU spread ``u_j`` (clustered) or log price (independent).
        level_t_ms: Simulated time each symbol's level was last advanced to.
    """

    factor: tuple[float, ...]
    factor_t_ms: tuple[float, ...]
    level: tuple[float, ...]
    level_t_ms: tuple[float, ...]


class ClusterUniverse:
    """Log prices of the ``clusters`` universe, advanced lazily and exactly.

    Args:
        n_symbols: Number of symbols.
        params: Model parameters.
        seed: Seed of the fixed structure (loadings, levels); the path uses the
            partition's generator.
        t_ms: Simulated start time.
        resume: State to resume from.
    """

    def __init__(
        self,
        n_symbols: int,
        params: SyntheticParams,
        seed: int,
        t_ms: float,
        resume: ClusterState | None,
    ) -> None:
        self.p = params
        clusters, _ = cluster_layout(n_symbols)
        self.cluster_of: list[int | None] = [None] * n_symbols
        for c, members in enumerate(clusters):
            for i in members:
                self.cluster_of[i] = c
        fixed = random.Random(seed * 7919 + 17)
        self.loading = [fixed.uniform(0.6, 1.6) for _ in range(n_symbols)]
        self.intercept = [math.log(fixed.uniform(500.0, 5000.0)) for _ in range(n_symbols)]
        if resume is None:
            self.factor = [0.0] * len(clusters)
            self.factor_t = [t_ms] * len(clusters)
            self.level = [
                0.0 if self.cluster_of[i] is not None else self.intercept[i]
                for i in range(n_symbols)
            ]
            self.level_t = [t_ms] * n_symbols
        else:
            self.factor = list(resume.factor)
            self.factor_t = list(resume.factor_t_ms)
            self.level = list(resume.level)
            self.level_t = list(resume.level_t_ms)

    def log_price(self, i: int, t_ms: float, rng: random.Random) -> float:
        """Advance symbol ``i``'s components to ``t_ms`` and return its log price."""
        p = self.p
        dt = max(0.0, (t_ms - self.level_t[i]) / 1000.0)
        self.level_t[i] = t_ms
        c = self.cluster_of[i]
        if c is None:
            self.level[i] += p.sigma_other * math.sqrt(dt) * rng.gauss(0.0, 1.0)
            return self.level[i]
        fdt = max(0.0, (t_ms - self.factor_t[c]) / 1000.0)
        self.factor_t[c] = t_ms
        self.factor[c] += p.sigma_factor * math.sqrt(fdt) * rng.gauss(0.0, 1.0)
        decay = math.exp(-p.theta_cluster * dt)
        sd = p.sigma_cluster_u * math.sqrt((1 - decay * decay) / (2 * p.theta_cluster))
        self.level[i] = self.level[i] * decay + sd * rng.gauss(0.0, 1.0)
        return self.intercept[i] + self.loading[i] * self.factor[c] + self.level[i]

    def snapshot(self) -> ClusterState:
        """The state to resume from."""
        return ClusterState(
            tuple(self.factor), tuple(self.factor_t), tuple(self.level), tuple(self.level_t)
        )


HISTORY_STEP_MS = 250
"""Grid step of the simulated history: trades in a step share the price at its end."""

FIVE_MIN_MS = TF_MS["5m"]


@dataclass(frozen=True)
class History:
    """A simulated history ending at ``t5_ms`` and the model state there.

    Attributes:
        t5_ms: End of the history (exclusive): where the live trades start.
        start_ms: Start of the history (a 5-minute boundary).
        bars: 5m, 1m and then 1s bars, each timeframe in time order (symbols
            interleaved); only intervals with trades.
        marks: ``Watermark(symbol, tf, t5_ms)`` per symbol and emitted timeframe.
        x: ``pair`` universe: log price of ``X`` at ``t5_ms``.
        u: ``pair`` universe: OU spread at ``t5_ms``.
        others: ``pair`` universe: log prices of the further symbols.
        clusters: ``clusters`` universe: its state at ``t5_ms``.
    """

    t5_ms: int
    start_ms: int
    bars: list[Bar]
    marks: list[Watermark]
    x: float
    u: float
    others: tuple[float, ...]
    clusters: ClusterState | None


def _ou(noise: np.ndarray, decay: float, sd: float, u0: np.ndarray) -> np.ndarray:
    """Exact OU path on a grid: ``u_k = decay * u_{k-1} + sd * noise_k`` from ``u0``.

    A loop over steps on whole rows (all symbols at once): ~30 ms for 26,400 steps,
    and no ``scipy.signal`` import (seconds on a cold start).
    """
    out = sd * noise
    prev = u0
    for k in range(out.shape[0]):
        prev = out[k] = decay * prev + out[k]
    return out


def _log_paths(
    n_symbols: int, params: SyntheticParams, seed: int, n_steps: int, rng: np.random.Generator
) -> tuple[np.ndarray, History]:
    """Log prices ``(n_steps, n_symbols)`` at the end of each grid step, and the final state.

    The returned ``History`` has only the state fields set (bars empty).
    """
    p = params
    dt = HISTORY_STEP_MS / 1000.0
    sq = math.sqrt(dt)
    if p.universe == "clusters":
        model = ClusterUniverse(n_symbols, p, seed, 0.0, None)
        n_clusters = max((c for c in model.cluster_of if c is not None), default=-1) + 1
        factor = np.cumsum(p.sigma_factor * sq * rng.standard_normal((n_steps, n_clusters)), 0)
        decay = math.exp(-p.theta_cluster * dt)
        sd = p.sigma_cluster_u * math.sqrt((1 - decay * decay) / (2 * p.theta_cluster))
        spread = _ou(rng.standard_normal((n_steps, n_symbols)), decay, sd, np.zeros(n_symbols))
        walk = np.cumsum(p.sigma_other * sq * rng.standard_normal((n_steps, n_symbols)), 0)
        logp = np.empty((n_steps, n_symbols))
        level = np.empty((n_steps, n_symbols))
        for i, c in enumerate(model.cluster_of):
            if c is None:
                level[:, i] = model.intercept[i] + walk[:, i]
                logp[:, i] = level[:, i]
            else:
                level[:, i] = spread[:, i]
                logp[:, i] = model.intercept[i] + model.loading[i] * factor[:, c] + spread[:, i]
        state = ClusterState(
            tuple(factor[-1].tolist()) if n_clusters else (),
            (0.0,) * n_clusters,
            tuple(level[-1].tolist()),
            (0.0,) * n_symbols,
        )
        return logp, History(0, 0, [], [], p.x0, 0.0, (), state)
    x = p.x0 + np.cumsum(p.sigma_x * sq * rng.standard_normal(n_steps))
    decay = math.exp(-p.theta * dt)
    sd = p.sigma_u * math.sqrt((1 - decay * decay) / (2 * p.theta))
    u = _ou(rng.standard_normal((n_steps, 1)), decay, sd, np.zeros(1))[:, 0]
    n_other = max(0, n_symbols - 2)
    start = np.log(100.0 * (np.arange(n_other) + 1))
    others = start + np.cumsum(p.sigma_other * sq * rng.standard_normal((n_steps, n_other)), 0)
    logp = np.column_stack([p.alpha + p.beta * x + u, x, others])
    last = tuple(others[-1].tolist()) if n_other else ()
    return logp, History(0, 0, [], [], float(x[-1]), float(u[-1]), last, None)


def _tf_bars(
    symbols: Sequence[str],
    tf: str,
    n_bars: int,
    end_ms: int,
    price: np.ndarray,
    count: np.ndarray,
    vol: np.ndarray,
    buy: np.ndarray,
) -> list[Bar]:
    """The last ``n_bars`` bars of ``tf`` before ``end_ms`` from the step arrays (no empty ones)."""
    spb = TF_MS[tf] // HISTORY_STEP_MS
    span = n_bars * spb
    shape = (n_bars, spb, len(symbols))
    pr = price[-span:].reshape(shape)
    cnt = count[-span:].reshape(shape)
    has = cnt > 0
    high = np.where(has, pr, -np.inf).max(axis=1)
    low = np.where(has, pr, np.inf).min(axis=1)
    first = has.argmax(axis=1)[:, np.newaxis, :]
    last = (spb - 1 - has[:, ::-1].argmax(axis=1))[:, np.newaxis, :]
    opens = np.take_along_axis(pr, first, axis=1)[:, 0]
    closes = np.take_along_axis(pr, last, axis=1)[:, 0]
    trades = cnt.sum(axis=1)
    v = vol[-span:].reshape(shape)
    volume = v.sum(axis=1)
    quote = (v * pr).sum(axis=1)
    taker = buy[-span:].reshape(shape).sum(axis=1)
    t0 = end_ms - n_bars * TF_MS[tf]
    cols = [a.tolist() for a in (opens, high, low, closes, volume, quote, trades, taker)]
    o_, h_, l_, c_, v_, q_, n_, b_ = cols
    out: list[Bar] = []
    for k in range(n_bars):
        open_ms = t0 + k * TF_MS[tf]
        for i, sym in enumerate(symbols):
            if n_[k][i]:
                out.append(
                    Bar(
                        sym,
                        tf,
                        open_ms,
                        o_[k][i],
                        h_[k][i],
                        l_[k][i],
                        c_[k][i],
                        v_[k][i],
                        q_[k][i],
                        int(n_[k][i]),
                        b_[k][i],
                        None,
                        None,
                    )
                )
    return out


def simulate_history(
    symbols: Sequence[str],
    params: SyntheticParams,
    seed: int,
    t5_ms: int,
    history_s: float,
    tf_spans_s: Mapping[str, float] | None = None,
) -> History:
    """Simulate ``history_s`` seconds of the model ending at ``t5_ms``, as bars.

    Vectorised: the log prices advance exactly on a :data:`HISTORY_STEP_MS` grid
    from the model's initial state; per step and symbol the number of trades is
    Poisson(``rate * step``), all priced at the step's end (rounded to 0.01), with
    the live path's log-normal quantities (rounded to 1e-5) and a fair coin for
    the taker side. Bars aggregate the steps (open/close: first/last step with a
    trade; high/low over those steps), so they are internally consistent; intervals
    without a trade are not emitted (a ``Watermark`` covers them).

    Args:
        symbols: The universe (same order as the live source).
        params: Model parameters.
        seed: Seed (the fixed structure matches the live path's).
        t5_ms: End of the history, a 5-minute boundary.
        history_s: Seconds of history, rounded up to whole 5-minute intervals.
        tf_spans_s: Seconds of bars to emit per timeframe, at the end of the history
            (rounded up to whole bars, at most the history; a timeframe not listed
            gets none). Default: 1m and 5m bars for the whole history, no 1s bars.

    Returns:
        The bars, the watermarks and the model state at ``t5_ms``.

    Raises:
        ValueError: ``t5_ms`` not on a 5-minute boundary, or ``history_s <= 0``.
    """
    if t5_ms % FIVE_MIN_MS or history_s <= 0:
        msg = f"history must end on a 5-minute boundary and be > 0 s (t5={t5_ms}, {history_s} s)"
        raise ValueError(msg)
    n_5m = math.ceil(history_s * 1000 / FIVE_MIN_MS)
    start_ms = t5_ms - n_5m * FIVE_MIN_MS
    n_steps = n_5m * FIVE_MIN_MS // HISTORY_STEP_MS
    n = len(symbols)
    rng = np.random.default_rng([seed, 0x5717])
    logp, end = _log_paths(n, params, seed, n_steps, rng)
    price = np.round(np.exp(logp), 2)
    count = rng.poisson(params.rate * HISTORY_STEP_MS / 1000.0, size=(n_steps, n))
    total = int(count.sum())
    qty = np.maximum(np.round(np.exp(rng.normal(-4.0, 1.2, total)), 5), 1e-5)
    taker_buy = rng.random(total) >= 0.5  # noqa: PLR2004 - maker with probability 1/2
    cell = np.repeat(np.arange(n_steps * n), count.ravel())
    vol = np.bincount(cell, qty, minlength=n_steps * n).reshape(n_steps, n)
    buy = np.bincount(cell, qty * taker_buy, minlength=n_steps * n).reshape(n_steps, n)
    if tf_spans_s is None:
        tf_spans_s = {"5m": history_s, "1m": history_s}
    spans: list[tuple[str, int]] = []
    for tf in ("5m", "1m", "1s"):
        span_ms = min(tf_spans_s.get(tf, 0.0) * 1000, n_5m * FIVE_MIN_MS)
        if span_ms > 0:
            spans.append((tf, math.ceil(span_ms / TF_MS[tf])))
    bars: list[Bar] = []
    for tf, n_bars in spans:
        bars += _tf_bars(symbols, tf, n_bars, t5_ms, price, count, vol, buy)
    marks = [Watermark(sym, tf, t5_ms) for sym in symbols for tf, _ in spans]
    clusters = end.clusters
    if clusters is not None:
        clusters = ClusterState(
            clusters.factor,
            (float(t5_ms),) * len(clusters.factor),
            clusters.level,
            (float(t5_ms),) * n,
        )
    return History(t5_ms, start_ms, bars, marks, end.x, end.u, end.others, clusters)


@dataclass(frozen=True)
class SyntheticState:
    """Generator state (the partition's recovery snapshot)."""

    rng_state: object
    t_ms: int
    x: float
    u: float
    others: tuple[float, ...]
    next_ids: tuple[int, ...]
    emitted: int
    t_frac: float = 0.0
    clusters: ClusterState | None = None


class SyntheticPartition(StatefulSourcePartition[Tick | Bar | Watermark, SyntheticState]):
    """Generates the trades of all symbols in time order."""

    def __init__(
        self,
        symbols: tuple[str, ...],
        params: SyntheticParams,
        seed: int,
        duration_s: float,
        batch_size: int,
        resume: SyntheticState | None,
        history_s: float = 0.0,
        history_spans_s: Mapping[str, float] | None = None,
    ) -> None:
        self.symbols = symbols
        self.p = params
        self.duration_ms = int(duration_s * 1000)
        self.batch_size = batch_size
        self.rng = random.Random(seed)
        self.pending: list[Bar | Watermark] = []
        history: History | None = None
        if resume is None:
            start = SIM_START_MS if self.duration_ms else now_ms()
            if history_s > 0 and not self.duration_ms:
                start -= start % FIVE_MIN_MS
                history = simulate_history(symbols, params, seed, start, history_s, history_spans_s)
                self.pending = [*history.bars, *history.marks]
            self.start_ms = start
            self.t_ms = start
            self.x = params.x0 if history is None else history.x
            self.u = 0.0 if history is None else history.u
            self.others = [math.log(100.0 * (i + 1)) for i in range(max(0, len(symbols) - 2))]
            if history is not None:
                self.others = list(history.others)
            self.next_ids = [1_000_000 * (i + 1) for i in range(len(symbols))]
            self.emitted = 0
        else:
            self.rng.setstate(resume.rng_state)  # type: ignore[arg-type]
            self.start_ms = SIM_START_MS if self.duration_ms else resume.t_ms
            self.t_ms = resume.t_ms
            self.x = resume.x
            self.u = resume.u
            self.others = list(resume.others)
            self.next_ids = list(resume.next_ids)
            self.emitted = resume.emitted
        self.t_frac = 0.0 if resume is None else resume.t_frac
        self.awake_ms: int | None = None
        self.universe: ClusterUniverse | None = None
        if params.universe == "clusters":
            self.universe = ClusterUniverse(
                len(symbols),
                params,
                seed,
                self.t_ms + self.t_frac,
                resume.clusters if resume is not None else (history.clusters if history else None),
            )
        elif params.universe != "pair":
            msg = f"unknown synthetic universe {params.universe!r}; use one of {UNIVERSES}"
            raise ValueError(msg)

    def _log_price(self, i: int) -> float:
        if i == 0:
            return self.p.alpha + self.p.beta * self.x + self.u
        if i == 1:
            return self.x
        return self.others[i - 2]

    def _step(self, dt_s: float) -> None:
        rng = self.rng
        sq = math.sqrt(dt_s)
        self.x += self.p.sigma_x * sq * rng.gauss(0.0, 1.0)
        decay = math.exp(-self.p.theta * dt_s)
        sd = self.p.sigma_u * math.sqrt((1 - decay * decay) / (2 * self.p.theta))
        self.u = self.u * decay + sd * rng.gauss(0.0, 1.0)
        for k in range(len(self.others)):
            self.others[k] += self.p.sigma_other * sq * rng.gauss(0.0, 1.0)

    def _trade(self) -> Tick:
        rng = self.rng
        total_rate = self.p.rate * len(self.symbols)
        dt_s = rng.expovariate(total_rate)
        self.t_frac += dt_s * 1000.0
        whole = int(self.t_frac)
        self.t_frac -= whole
        self.t_ms += whole
        if self.universe is None:
            self._step(dt_s)
            i = rng.randrange(len(self.symbols))
            log_price = self._log_price(i)
        else:
            i = rng.randrange(len(self.symbols))
            log_price = self.universe.log_price(i, self.t_ms + self.t_frac, rng)
        price = round(math.exp(log_price), 2)
        qty = max(round(math.exp(rng.gauss(-4.0, 1.2)), 5), 1e-5)
        tid = self.next_ids[i]
        self.next_ids[i] += 1
        self.emitted += 1
        sym = self.symbols[i]
        p = f"{price:.8f}"
        q = f"{qty:.8f}"
        maker = rng.random() < 0.5
        return Tick(sym, tid, float(p), float(q), self.t_ms, self.t_ms, maker, p, q)

    def next_batch(self) -> list[Tick | Bar | Watermark]:
        """Trades due now (real time) or the next batch (simulated); StopIteration at the end.

        A warm start's history (bars, then watermarks) comes first, in one batch
        (before any snapshot, so a resumed source never repeats or loses part of it).
        """
        if stop_requested():
            raise StopIteration
        if self.pending:
            history: list[Tick | Bar | Watermark] = [*self.pending]
            self.pending = []
            self.awake_ms = None
            return history
        out: list[Tick | Bar | Watermark] = []
        if self.duration_ms:
            end = self.start_ms + self.duration_ms
            while len(out) < self.batch_size:
                if self.t_ms >= end:
                    if out:
                        return out
                    raise StopIteration
                out.append(self._trade())
            return out
        now = now_ms()
        while self.t_ms <= now and len(out) < self.batch_size:
            out.append(self._trade())
        self.awake_ms = None if len(out) >= self.batch_size else max(self.t_ms, now + 50)
        return out

    def next_awake(self) -> datetime | None:
        """Real-time mode: sleep until the next trade is due."""
        return None if self.awake_ms is None else ms_to_dt(self.awake_ms)

    def snapshot(self) -> SyntheticState:
        """Generator state to resume from."""
        return SyntheticState(
            self.rng.getstate(),
            self.t_ms,
            self.x,
            self.u,
            tuple(self.others),
            tuple(self.next_ids),
            self.emitted,
            self.t_frac,
            None if self.universe is None else self.universe.snapshot(),
        )


class SyntheticSource(FixedPartitionedSource[Tick | Bar | Watermark, SyntheticState]):
    """Seeded trade generator with known cointegrated pairs (see module docstring).

    Args:
        symbols: ``pair`` universe: first is ``Y``, second ``X``; more are independent
            walks. ``clusters``: see :func:`cluster_layout`.
        seed: Random seed.
        duration_s: Simulated seconds to generate as fast as possible (0 = real time).
        params: Model parameters.
        batch_size: Most frames per batch.
        history_s: Real time only: seconds of warm-start history ending at ``t5``
            (0 = none; see :func:`simulate_history`).
        history_spans_s: Seconds of bars per timeframe at the end of that history
            (see :func:`simulate_history`).
    """

    def __init__(
        self,
        symbols: tuple[str, ...],
        seed: int = 7,
        duration_s: float = 0.0,
        params: SyntheticParams | None = None,
        batch_size: int = 4096,
        history_s: float = 0.0,
        history_spans_s: Mapping[str, float] | None = None,
    ) -> None:
        if len(symbols) < 2:
            msg = "the synthetic source needs at least two symbols (Y and X)"
            raise ValueError(msg)
        self.symbols = symbols
        self.seed = seed
        self.duration_s = duration_s
        self.params = params or SyntheticParams()
        self.batch_size = batch_size
        self.history_s = history_s
        self.history_spans_s = history_spans_s

    def list_parts(self) -> list[str]:
        """One partition: trades are generated in one time order."""
        return ["synthetic"]

    def build_part(
        self, step_id: str, for_part: str, resume_state: SyntheticState | None
    ) -> SyntheticPartition:
        """Start (or resume) the generator."""
        return SyntheticPartition(
            self.symbols,
            self.params,
            self.seed,
            self.duration_s,
            self.batch_size,
            resume_state,
            self.history_s,
            self.history_spans_s,
        )
