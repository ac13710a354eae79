"""``python -m dashboard [--port N] [--db PATH]``: run the dashboard until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal

from dashboard.launch import start_dashboard


def main() -> int:
    """Start ``streamlit run dashboard`` and wait for it."""
    ap = argparse.ArgumentParser(prog="python -m dashboard", description=__doc__)
    ap.add_argument("--port", type=int, default=8501)
    ap.add_argument("--db", default=os.environ.get("PAIRFLOW_DB", "data/quant_data.db"))
    args = ap.parse_args()
    proc = start_dashboard(args.port, args.db)
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        return proc.wait()


if __name__ == "__main__":
    raise SystemExit(main())
