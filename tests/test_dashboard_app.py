"""The Streamlit app under ``streamlit.testing.v1.AppTest``: every control, every empty state."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import app_config, launch, render_pair, serve, ui
from dashboard.pair_view import LOOKBACKS
from pairflow.testing.dbgen import GenSpec, generate_db
from pairflow.timeutil import UTC, now_utc
from tests.flowutil import empty_db

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "streamlit_app.py")
PAIR_CHARTS = 7
ALL_CHARTS = PAIR_CHARTS  # only the selected view is drawn (the pair view by default)
VIEWS = ["Pair analytics", "Strategy", "Scanner", "Pipeline health", "Data"]
TIMEOUT = 30

pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.fixture(scope="module")
def fresh_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three symbols (two pairs), 3 hours ending now: a live-looking database."""
    path = tmp_path_factory.mktemp("app") / "fresh.db"
    spec = GenSpec(seconds=3 * 3600, symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"))
    return generate_db(path, spec)


@pytest.fixture(scope="module")
def replay_like_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data from August 2024, like a replayed recording: old but complete."""
    path = tmp_path_factory.mktemp("app") / "old.db"
    end = datetime(2024, 8, 9, 0, 5, 6, tzinfo=UTC)
    return generate_db(path, GenSpec(seconds=1800, end=end))


PAIR_KPIS = (
    "BTCUSDT last",
    "ETHUSDT last",
    "Hedge ratio β",
    "Z-score",
    "Return corr.",
    "Engle-Granger p",
    "Half-life",
    "Newest bar age",
)
HEALTH_KPIS = (
    "Ticks/s",
    "Rejected inputs",
    "Late ticks",
    "Reconnects",
    "Gaps not filled",
    "DB size",
)


def _missing_metrics(at: AppTest, labels: tuple[str, ...]) -> list[str]:
    """The ``labels`` no metric of the page has."""
    shown = {m.label for m in at.metric}
    return [label for label in labels if label not in shown]


def run_app() -> AppTest:
    """A new session's first two refreshes (``PAIRFLOW_DB`` is set by the ``use_db`` fixture).

    The first live refresh draws only the first pair chart
    (``test_first_refresh_draws_the_first_chart_then_every_chart``), the second all.
    """
    return AppTest.from_file(APP, default_timeout=TIMEOUT).run().run()


def _texts(elements: object) -> list[str]:
    return [str(e.value) for e in elements]  # type: ignore[attr-defined]


def assert_clean(at: AppTest) -> None:
    """No exception element and no error box."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, _texts(at.error)


def chart_count(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


@pytest.fixture
def use_db(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path | str], None]]:
    def _use(path: Path | str) -> None:
        monkeypatch.setenv("PAIRFLOW_DB", str(path))

    yield _use


# --------------------------------------------------------------------------- happy path


def test_first_refresh_draws_the_first_chart_then_every_chart(use_db, fresh_db: Path) -> None:
    use_db(fresh_db)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert_clean(at)
    assert chart_count(at) == render_pair.FIRST_REFRESH_CHARTS
    assert not _missing_metrics(at, PAIR_KPIS)  # the KPIs are all there at once
    at.run()  # the next live refresh
    assert chart_count(at) == ALL_CHARTS


def test_paused_page_draws_every_chart_at_once(use_db, fresh_db: Path) -> None:
    use_db(fresh_db)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["live"] = False
    at.run()
    assert_clean(at)
    assert chart_count(at) == ALL_CHARTS  # no next refresh would come


def test_renders_every_chart_and_kpi(use_db, fresh_db: Path) -> None:
    use_db(fresh_db)
    at = run_app()
    assert_clean(at)
    assert chart_count(at) == ALL_CHARTS
    assert not _missing_metrics(at, PAIR_KPIS)
    values = {m.label: m.value for m in at.metric}
    assert values["Hedge ratio β"] != "—"
    assert values["BTCUSDT last"] != "—"
    assert not any("old" in w for w in _texts(at.warning))  # fresh: no stale warning
    assert at.segmented_control(key="view").options == VIEWS
    at.segmented_control(key="view").set_value("Pipeline health").run()
    assert_clean(at)
    assert chart_count(at) == 2
    assert not _missing_metrics(at, HEALTH_KPIS)
    at.segmented_control(key="view").set_value("Data").run()
    assert_clean(at)
    assert at.download_button[0].label.startswith("Download CSV")
    assert any("live, every 2 s" in c for c in _texts(at.caption))


def test_every_control(use_db, fresh_db: Path) -> None:
    use_db(fresh_db)
    at = run_app()
    assert_clean(at)
    assert at.selectbox(key="pair").options == ["BTCUSDT/ETHUSDT", "BTCUSDT/SOLUSDT"]

    at.selectbox(key="pair").set_value("BTCUSDT/SOLUSDT").run()
    assert_clean(at)
    assert "SOLUSDT last" in [m.label for m in at.metric]
    assert at.radio(key="candle_leg").options == ["BTCUSDT", "SOLUSDT"]

    at.radio(key="candle_leg").set_value("X").run()
    assert_clean(at)
    assert chart_count(at) == ALL_CHARTS

    for tf in ("1m", "5m", "1s"):
        at.segmented_control(key="tf").set_value(tf).run()
        assert_clean(at)
        assert chart_count(at) == ALL_CHARTS
        assert any(f"· {tf}" in m.value for m in at.markdown)

    for lookback in LOOKBACKS:
        at.select_slider(key="lookback").set_value(lookback).run()
        assert_clean(at)
        assert chart_count(at) == ALL_CHARTS

    at.number_input(key="entry").set_value(2.5).run()
    at.number_input(key="exit").set_value(0.3).run()
    assert_clean(at)
    assert at.number_input(key="entry").value == 2.5

    at.select_slider(key="refresh_s").set_value(5).run()
    assert_clean(at)
    assert any("live, every 5 s" in c for c in _texts(at.caption))

    at.toggle(key="live").set_value(False).run()
    assert_clean(at)
    assert any("paused" in c for c in _texts(at.caption))
    assert at.select_slider(key="refresh_s").disabled

    at.segmented_control(key="view").set_value("Data").run()
    at.download_button(key="download_csv").click().run()
    assert_clean(at)


def test_exit_above_entry_is_flagged(use_db, fresh_db: Path) -> None:
    use_db(fresh_db)
    at = run_app()
    at.number_input(key="exit").set_value(3.0).run()
    assert_clean(at)
    assert any("Exit |z| should be below entry" in w for w in _texts(at.warning))


def test_replayed_database_shows_data_with_a_stale_warning(use_db, replay_like_db: Path) -> None:
    use_db(replay_like_db)
    at = run_app()
    assert_clean(at)
    assert chart_count(at) == ALL_CHARTS
    warnings = _texts(at.warning)
    assert any("Newest bar is" in w and "old" in w for w in warnings), warnings
    age = {m.label: m for m in at.metric}["Newest bar age"]
    assert age.value.endswith(" d")
    assert "stale" in str(age.delta)


def test_bars_without_analytics(use_db, tmp_path: Path) -> None:
    path = generate_db(tmp_path / "bars_only.db", GenSpec(seconds=1200))
    con = duckdb.connect(str(path))
    con.execute("DELETE FROM analytics")
    con.execute("DELETE FROM signals")
    con.close()
    use_db(path)
    at = run_app()
    assert_clean(at)
    assert at.selectbox(key="pair").options == ["BTCUSDT/ETHUSDT"]
    assert any("No analytics" in i for i in _texts(at.info))
    assert chart_count(at) == ALL_CHARTS  # empty charts say why
    assert {m.label: m.value for m in at.metric}["Hedge ratio β"] == "—"


# --------------------------------------------------------------------------- empty states


def test_no_database_yet(use_db, tmp_path: Path) -> None:
    use_db(tmp_path / "not_yet.db")
    at = run_app()
    assert_clean(at)
    assert any("No database yet" in i for i in _texts(at.info))
    assert chart_count(at) == 0
    # The controls still work without a database.
    at.segmented_control(key="tf").set_value("5m").run()
    at.select_slider(key="lookback").set_value("7 days").run()
    assert_clean(at)


@pytest.mark.parametrize("tables", [False, True], ids=["without_tables", "with_empty_tables"])
def test_database_without_bars(use_db, tmp_path: Path, tables: bool) -> None:
    use_db(empty_db(tmp_path / "empty.db", tables=tables))
    at = run_app()
    assert_clean(at)
    assert any("No bars" in i for i in _texts(at.info))


def test_not_a_database(use_db, tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"\x00garbage" * 4096)
    use_db(path)
    at = run_app()
    assert not at.exception
    assert any("Cannot read the database" in e for e in _texts(at.error))


def test_bad_settings_fall_back(use_db, monkeypatch: pytest.MonkeyPatch, fresh_db: Path) -> None:
    use_db(fresh_db)
    monkeypatch.setenv("PAIRFLOW_SOURCE", "replay:/nonexistent/ticks.ndjson.gz")
    at = run_app()
    assert_clean(at)
    assert any("Settings problem" in w for w in _texts(at.warning))
    assert chart_count(at) == ALL_CHARTS


def test_redis_unreachable(use_db, monkeypatch: pytest.MonkeyPatch, fresh_db: Path) -> None:
    use_db(fresh_db)
    monkeypatch.setenv("PAIRFLOW_REDIS_URL", "redis://127.0.0.1:1/0")
    at = run_app()
    at.segmented_control(key="view").set_value("Pipeline health").run()
    assert_clean(at)
    assert any("unreachable" in c for c in _texts(at.caption))


# --------------------------------------------------------------------------- lock

HOLD_SCRIPT = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def hold_lock() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Hold the DuckDB read-write lock from another process, like the flow's writer."""
    procs: list[subprocess.Popen[str]] = []

    def _hold(path: Path, seconds: float = 30.0) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLD_SCRIPT, str(path), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield _hold
    for proc in procs:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_locked_database(use_db, hold_lock, tmp_path: Path) -> None:
    path = generate_db(tmp_path / "locked.db", GenSpec(seconds=900))
    use_db(path)
    hold_lock(path)
    t0 = time.monotonic()
    at = run_app()
    took = time.monotonic() - t0
    assert_clean(at)
    assert any("database is busy" in w for w in _texts(at.warning)), _texts(at.warning)
    assert took < 10
    # Controls keep working while the lock is held.
    at.segmented_control(key="tf").set_value("1m").run()
    assert_clean(at)


def test_lock_after_a_good_read_keeps_the_last_data(use_db, hold_lock, tmp_path: Path) -> None:
    path = generate_db(tmp_path / "later.db", GenSpec(seconds=900))
    use_db(path)
    at = run_app()
    assert_clean(at)
    assert chart_count(at) == ALL_CHARTS
    holder = hold_lock(path)
    time.sleep(1.2)  # past the 1 s shared-read cache
    at.run()
    assert_clean(at)
    assert any("showing data read at" in w for w in _texts(at.warning)), _texts(at.warning)
    assert chart_count(at) == ALL_CHARTS
    holder.kill()
    holder.wait()
    time.sleep(1.2)
    at.run()
    assert_clean(at)
    assert not any("busy" in w for w in _texts(at.warning))


# --------------------------------------------------------------------------- helpers


def test_load_app_config_never_raises() -> None:
    cfg = app_config.load_app_config({"PAIRFLOW_DB": "x.db", "PAIRFLOW_ENTRY_Z": "oops"})
    assert cfg.db_path == Path("x.db")
    assert cfg.warning is not None
    assert "ENTRY_Z" in cfg.warning
    assert cfg.entry_z == 2.0
    good = app_config.load_app_config(
        {"PAIRFLOW_DB": "y.db", "PAIRFLOW_REDIS_URL": "", "PAIRFLOW_ENTRY_Z": "2.5"}
    )
    assert good.warning is None
    assert good.redis_url is None
    assert good.entry_z == 2.5
    assert good.pairs == ("BTCUSDT/ETHUSDT",)


@pytest.mark.parametrize(
    ("seconds", "text", "compact"),
    [(4.2, "4 s", "4 s"), (600, "10 min", "10 min"), (3 * 3600 + 300, "3 h 5 min", "3 h"),
     (86_400 + 7200, "1 d 2 h", "26 h"), (838 * 86_400, "838 days", "838 d")],
)  # fmt: skip
def test_fmt_age(seconds: float, text: str, compact: str) -> None:
    assert ui.fmt_age(seconds) == text
    assert ui.fmt_age(seconds, compact=True) == compact


def test_formatters() -> None:
    assert ui.fmt_price(61837.634) == "61,837.63"
    assert ui.fmt_price(2.5) == "2.5000"
    assert ui.fmt_price(None) == "—"
    assert ui.fmt_number(None, ".2f") == "—"
    assert ui.fmt_number(0.12345, ".3f") == "0.123"
    assert ui.fmt_bytes(5_300_000) == "5.3 MB"
    assert render_pair.z_zone(2.5, 2.0, 0.5) == "short zone"
    assert render_pair.z_zone(-2.5, 2.0, 0.5) == "long zone"
    assert render_pair.z_zone(0.1, 2.0, 0.5) == "exit band"
    assert render_pair.z_zone(1.0, 2.0, 0.5) is None
    assert ui.fmt_time(now_utc() - timedelta(0)).endswith("UTC")


STREAMLIT_EMOJI_SHORTCODE = re.compile(r":(?!material/|streamlit:)[\w+-][\w_+-]*:", re.ASCII)
"""The test Streamlit's markdown makes before it loads its emoji plugin (1.67 bundle)."""


def test_times_in_markdown_do_not_load_the_emoji_plugin() -> None:
    ts = datetime(2024, 8, 8, 23, 59, 59, tzinfo=UTC)
    assert STREAMLIT_EMOJI_SHORTCODE.search(ts.strftime("%H:%M:%S"))  # why it is needed
    for text in (ui.fmt_clock(ts), ui.fmt_time(ts)):
        assert not STREAMLIT_EMOJI_SHORTCODE.search(text), text
    assert ui.fmt_clock(ts).replace(ui.WORD_JOINER, "") == "23:59:59"
    assert ui.fmt_time(ts).replace(ui.WORD_JOINER, "") == "2024-08-08 23:59:59 UTC"


def test_served_index_preloads_the_plotly_chunk(tmp_path: Path) -> None:
    from streamlit import file_util

    static = Path(file_util.get_static_dir())
    served = serve.preloading_static_dir(tmp_path / "static", static)
    assert served is not None
    html = (served / "index.html").read_text()
    preloads = re.findall(r'rel="modulepreload" crossorigin href="\./static/js/([^"]+)"', html)
    plotly = [p for p in preloads if p.startswith("PlotlyChart.")]
    assert len(plotly) == 1 and (static / "static" / "js" / plotly[0]).is_file()
    assert html.index(plotly[0]) > html.index('<script type="module"')
    assert (served / "static" / "js" / plotly[0]).resolve() == static / "static" / "js" / plotly[0]
    original = (static / "index.html").read_text()
    assert (
        html.replace(
            "".join(
                f'\n    <link rel="modulepreload" crossorigin href="./static/js/{p}">'
                for p in preloads
                if p not in original
            ),
            "",
        )
        == original
    )


def test_served_index_is_left_alone_for_an_unknown_streamlit_layout(tmp_path: Path) -> None:
    static = tmp_path / "streamlit_static"
    (static / "static" / "js").mkdir(parents=True)
    (static / "index.html").write_text("<html><head></head></html>")
    assert serve.preloading_static_dir(tmp_path / "out", static) is None


def test_streamlit_config_binds_loopback() -> None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    cfg = tomllib.loads((Path(APP).parents[1] / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["browser"]["gatherUsageStats"] is False


def test_launcher_binds_loopback_through_the_warm_entry() -> None:
    cmd = launch.dashboard_command(8599)
    assert cmd[1:3] == ["-m", "dashboard.serve"]
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.port") + 1] == "8599"


WARM_CHECK = """
import sys
from dashboard import serve
serve.warm_up()
before = set(sys.modules)
import dashboard.streamlit_app
print(sorted(set(sys.modules) - before - {"dashboard.streamlit_app"}))
"""


def test_warm_up_imports_everything_the_page_imports() -> None:
    """A new server's first session must find the page's modules already imported."""
    run = subprocess.run(
        [sys.executable, "-c", WARM_CHECK],
        cwd=Path(APP).parents[1],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert run.stdout.strip() == "[]", f"imported by the page, not warmed up: {run.stdout}"
    assert "No runtime found" not in run.stderr  # the warm-up keeps Streamlit's log clean
