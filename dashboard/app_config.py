"""Dashboard settings (:class:`AppConfig`) and the sidebar's choices (:class:`Controls`).

No drawing here; :mod:`dashboard.streamlit_app` draws the sidebar.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dashboard import pair_view
from dashboard import strategy_view as sv
from pairflow.config import DEFAULTS, ConfigError, load_settings, parse_windows


@dataclass(frozen=True)
class AppConfig:
    """What the dashboard needs from the pairflow settings.

    Attributes:
        db_path: DuckDB file to read.
        redis_url: Redis URL for stream lengths, or ``None``. May hold a password:
            show it only through :func:`pairflow.config.redact_url`.
        redis_prefix: ``PAIRFLOW_REDIS_PREFIX`` (the tee's key prefix).
        pairs: Configured pairs (``Y/X``), offered even before they have data.
        entry_z: Default entry threshold.
        exit_z: Default exit threshold.
        windows: ``PAIRFLOW_WINDOWS`` (W per analysed timeframe), for "N of W bars".
        source_kind: ``binance``, ``replay`` or ``synthetic`` (``PAIRFLOW_SOURCE``).
        warmup: ``PAIRFLOW_WARMUP`` of the live source (``None`` for other sources).
        warning: Why the settings could not be loaded (defaults used), if so.
    """

    db_path: Path
    redis_url: str | None
    redis_prefix: str
    pairs: tuple[str, ...]
    entry_z: float
    exit_z: float
    windows: dict[str, int] = field(default_factory=dict)
    source_kind: str = "binance"
    warmup: str | None = None
    warning: str | None = None


def load_app_config(env: Mapping[str, str] | None = None) -> AppConfig:
    """Load the settings the dashboard needs; never raises on a bad setting.

    A :class:`~pairflow.config.ConfigError` (say, a replay file that is gone) is
    turned into ``warning`` and the dashboard falls back to ``PAIRFLOW_DB`` /
    ``PAIRFLOW_REDIS_URL`` read directly, and defaults for the rest.
    """
    env = os.environ if env is None else env
    try:
        s = load_settings(env)
    except ConfigError as exc:
        redis_url = env.get("PAIRFLOW_REDIS_URL", DEFAULTS["REDIS_URL"]).strip() or None
        try:
            windows = parse_windows(env.get("PAIRFLOW_WINDOWS", "").strip() or DEFAULTS["WINDOWS"])
        except (ConfigError, ValueError):
            windows = {}
        source = env.get("PAIRFLOW_SOURCE", "").strip().lower()
        return AppConfig(
            windows=windows,
            source_kind=source.split(":", 1)[0] if source else "binance",
            db_path=Path(env.get("PAIRFLOW_DB", "").strip() or DEFAULTS["DB"]),
            redis_url=redis_url,
            redis_prefix=env.get("PAIRFLOW_REDIS_PREFIX", "").strip(),
            pairs=("BTCUSDT/ETHUSDT",),
            entry_z=float(DEFAULTS["ENTRY_Z"]),
            exit_z=float(DEFAULTS["EXIT_Z"]),
            warning=str(exc),
        )
    return AppConfig(
        db_path=s.db_path,
        redis_url=s.redis_url,
        redis_prefix=s.redis_prefix,
        pairs=tuple(f"{y}/{x}" for y, x in s.pairs),
        entry_z=s.entry_z,
        exit_z=s.exit_z,
        windows=dict(s.windows),
        source_kind=s.source_kind,
        warmup=getattr(s.source, "warmup", None),
    )


@dataclass(frozen=True)
class Controls:
    """The sidebar's choices."""

    pair: str
    tf: str
    lookback: str
    entry: float
    exit: float
    candle_leg: str
    live: bool
    refresh_s: int
    strategy: str = sv.DEFAULT_STRATEGY
    strategy_params: dict[str, Any] = field(default_factory=dict)

    def request(self) -> pair_view.ViewRequest:
        """The query request for these controls (validates the pair)."""
        y, x = pair_view.parse_pair(self.pair)
        return pair_view.ViewRequest(
            y=y,
            x=x,
            tf=self.tf,
            lookback=pair_view.LOOKBACKS[self.lookback],
            strategy=self.strategy,
        )

    @property
    def kalman(self) -> bool:
        """The selected strategy trades the Kalman z."""
        return self.strategy_params.get("model") == "kalman"
