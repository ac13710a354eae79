"""Start the dashboard as a subprocess (for the demo, the browser test and humans).

``start_dashboard(8501, "data/quant_data.db")`` runs ``streamlit run dashboard`` (via
:mod:`dashboard.serve`, which imports the page's modules first) from the repository
root (so ``.streamlit/config.toml`` applies), bound to 127.0.0.1 and headless, prints
the URL and returns the :class:`subprocess.Popen`; ``with serve_dashboard(...)`` also
waits until it is up and stops it afterwards.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def dashboard_command(port: int, address: str = "127.0.0.1") -> list[str]:
    """The command line of a dashboard server on ``address:port``.

    ``streamlit run dashboard`` through :mod:`dashboard.serve`, which imports what the
    page needs before the server starts, so that a new server's first page is as fast
    as the next ones.
    """
    return [
        sys.executable,
        "-m",
        "dashboard.serve",
        "--server.address",
        address,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]


def start_dashboard(
    port: int,
    db_path: str | os.PathLike[str],
    *,
    address: str = "127.0.0.1",
    env: Mapping[str, str] | None = None,
    quiet: bool = False,
    stdout: int | None = None,
    stderr: int | None = None,
) -> subprocess.Popen[bytes]:
    """Run the dashboard in a subprocess and print its URL.

    Args:
        port: TCP port to serve on.
        db_path: DuckDB file to read (``PAIRFLOW_DB`` of the child).
        address: Address to bind (loopback by default).
        env: Extra environment for the child (e.g. ``PAIRFLOW_REDIS_URL``).
        quiet: Do not print the URL.
        stdout: Passed to :class:`subprocess.Popen` (default: inherit).
        stderr: Passed to :class:`subprocess.Popen` (default: inherit).

    Returns:
        The running process; stop it with ``terminate()`` then ``wait()``.
    """
    child_env = dict(os.environ)
    child_env.update(env or {})
    child_env["PAIRFLOW_DB"] = str(Path(db_path).resolve())
    proc = subprocess.Popen(  # noqa: S603 - fixed command line
        dashboard_command(port, address),
        cwd=ROOT,
        env=child_env,
        stdout=stdout,
        stderr=stderr,
    )
    if not quiet:
        print(f"dashboard: http://{address}:{port}  (reading {child_env['PAIRFLOW_DB']})")
    return proc


def wait_until_up(
    port: int, proc: subprocess.Popen[bytes] | None = None, timeout_s: float = 30.0
) -> None:
    """Block until the dashboard answers its health endpoint.

    Raises:
        RuntimeError: if the process exits or the server is not up in time.
    """
    url = f"http://127.0.0.1:{port}/_stcore/health"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            msg = f"dashboard exited with code {proc.returncode} before it was up"
            raise RuntimeError(msg)
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:  # noqa: S310 - local URL
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    msg = f"dashboard on port {port} not up after {timeout_s:.0f} s"
    raise RuntimeError(msg)


def stop_dashboard(proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    """Terminate the dashboard process; kill it if it has not exited within ``timeout_s``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def serve_dashboard(
    port: int,
    db_path: str | os.PathLike[str],
    *,
    log_path: Path | None = None,
    up_timeout_s: float = 60.0,
    **kwargs: Any,
) -> Iterator[subprocess.Popen[bytes]]:
    """:func:`start_dashboard`, wait until it answers, and stop it on leaving.

    Args:
        port: TCP port to serve on.
        db_path: DuckDB file to read.
        log_path: Write the server's output to this file (and do not print the URL).
        up_timeout_s: How long it may take to answer.
        **kwargs: More arguments of :func:`start_dashboard` (``env``, ``address``...).

    Raises:
        RuntimeError: if it exits or is not up within ``up_timeout_s``.
    """
    with contextlib.ExitStack() as stack:
        if log_path is not None:
            log = stack.enter_context(log_path.open("wb"))
            kwargs.update(quiet=True, stdout=log.fileno(), stderr=subprocess.STDOUT)
        proc = start_dashboard(port, db_path, **kwargs)
        stack.callback(stop_dashboard, proc)
        wait_until_up(port, proc, timeout_s=up_timeout_s)
        yield proc
