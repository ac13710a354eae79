"""Synthetic trades of a cointegrated pair with a known hedge ratio (for tests and demos).

Model (log prices, time in seconds):

* ``x`` (the second symbol) is a random walk: ``dx = sigma_x * dW``.
* ``u`` is an Ornstein-Uhlenbeck spread: ``du = -theta * u dt + sigma_u dW'``.
* ``y`` (the first symbol) is ``alpha + beta * x + u`` — cointegrated with ``x``
  with hedge ratio ``beta``.
* Any further symbols are independent random walks.

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
from dataclasses import dataclass
from datetime import datetime

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
        self._step(dt_s)
        i = rng.randrange(len(self.symbols))
        price = round(math.exp(self._log_price(i)), 2)
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
        )


class SyntheticSource(FixedPartitionedSource[Tick, SyntheticState]):
    """Seeded cointegrated-pair trade generator (see module docstring).

    Args:
        symbols: First is ``Y``, second ``X``; more are independent walks.
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
