# Shared set-up for bin/* (sourced, not run): installs what pairflow needs on a fresh
# machine with Python 3.10-3.12, and starts Redis if nothing answers on its port.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Some images set PYTHONDONTWRITEBYTECODE=1: then every process (each flow, each
# dashboard, each test subprocess) recompiles ~400 modules, about 1 s per start here.
unset PYTHONDONTWRITEBYTECODE
# uv installs itself into ~/.local/bin: make sure this shell (and its children) find it.
export PATH="$HOME/.local/bin:$PATH"

say() { printf '\033[1m[pairflow]\033[0m %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

apt_install() {  # apt_install PACKAGE... (Debian/Ubuntu only)
    command -v apt-get >/dev/null || return 1
    if [ -z "${PAIRFLOW_APT_UPDATED:-}" ]; then
        as_root apt-get update -qq >/dev/null || return 1
        export PAIRFLOW_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

ensure_uv() {
    if ! command -v uv >/dev/null; then
        say "installing uv (the Python package manager) with pip"
        python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
        export PATH="$HOME/.local/bin:$PATH"
    fi
}

ensure_python_env() {  # ensure_python_env [--extra dev]
    ensure_uv
    say "installing Python dependencies from uv.lock into .venv"
    uv sync --frozen --inexact --quiet "$@"
}

redis_answers() {
    python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"PING\r\n")
sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
PY
}

ensure_redis() {  # starts a non-persistent redis-server on 127.0.0.1:6379 if none answers
    if redis_answers 6379; then return 0; fi
    if ! command -v redis-server >/dev/null; then
        say "installing redis-server from the Debian packages"
        apt_install redis-server || { say "could not install redis-server; the Redis tee stays off"; return 1; }
    fi
    say "starting redis-server on 127.0.0.1:6379 (no persistence)"
    mkdir -p .cache
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir "$PWD/.cache" --logfile "$PWD/.cache/redis.log"
    for _ in $(seq 50); do redis_answers 6379 && return 0; sleep 0.1; done
    say "redis-server did not answer; see .cache/redis.log"
    return 1
}

ensure_chromium() {
    if [ -x /usr/bin/chromium ]; then return 0; fi
    say "installing Chromium from the Debian packages (for the browser test)"
    apt_install chromium || { say "could not install chromium"; return 1; }
}
