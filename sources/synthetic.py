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
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from pairflow.records import Tick
from pairflow.shutdown import stop_requested
from pairflow.timeutil import ms_to_dt, now_ms

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


class SyntheticPartition(StatefulSourcePartition[Tick, SyntheticState]):
    """Generates the trades of all symbols in time order."""

    def __init__(
        self,
        symbols: tuple[str, ...],
        params: SyntheticParams,
        seed: int,
        duration_s: float,
        batch_size: int,
        resume: SyntheticState | None,
    ) -> None:
        self.symbols = symbols
        self.p = params
        self.duration_ms = int(duration_s * 1000)
        self.batch_size = batch_size
        self.rng = random.Random(seed)
        if resume is None:
            start = SIM_START_MS if self.duration_ms else now_ms()
            self.start_ms = start
            self.t_ms = start
            self.x = params.x0
            self.u = 0.0
            self.others = [math.log(100.0 * (i + 1)) for i in range(max(0, len(symbols) - 2))]
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
                None if resume is None else resume.clusters,
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

    def next_batch(self) -> list[Tick]:
        """Trades due now (real time) or the next batch (simulated); StopIteration at the end."""
        if stop_requested():
            raise StopIteration
        out: list[Tick] = []
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


class SyntheticSource(FixedPartitionedSource[Tick, SyntheticState]):
    """Seeded trade generator with known cointegrated pairs (see module docstring).

    Args:
        symbols: ``pair`` universe: first is ``Y``, second ``X``; more are independent
            walks. ``clusters``: see :func:`cluster_layout`.
        seed: Random seed.
        duration_s: Simulated seconds to generate as fast as possible (0 = real time).
        params: Model parameters.
        batch_size: Most frames per batch.
    """

    def __init__(
        self,
        symbols: tuple[str, ...],
        seed: int = 7,
        duration_s: float = 0.0,
        params: SyntheticParams | None = None,
        batch_size: int = 4096,
    ) -> None:
        if len(symbols) < 2:
            msg = "the synthetic source needs at least two symbols (Y and X)"
            raise ValueError(msg)
        self.symbols = symbols
        self.seed = seed
        self.duration_s = duration_s
        self.params = params or SyntheticParams()
        self.batch_size = batch_size

    def list_parts(self) -> list[str]:
        """One partition: trades are generated in one time order."""
        return ["synthetic"]

    def build_part(
        self, step_id: str, for_part: str, resume_state: SyntheticState | None
    ) -> SyntheticPartition:
        """Start (or resume) the generator."""
        return SyntheticPartition(
            self.symbols, self.params, self.seed, self.duration_s, self.batch_size, resume_state
        )
