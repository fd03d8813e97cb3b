# Shared set-up for scripts/demo.sh and scripts/test.sh. Sourced, not run.
# Creates .venv with the requested extras and installs system packages when missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MAMORI_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}

_as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "need root (or sudo) to run: $*" >&2; return 1; fi
}

_apt_updated=0
apt_install() {  # apt_install PACKAGE... (Debian/Ubuntu)
    command -v apt-get >/dev/null || { echo "no apt-get: install $* yourself" >&2; return 1; }
    if [ "$_apt_updated" = 0 ]; then _as_root apt-get update -qq; _apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive _as_root apt-get install -y -qq --no-install-recommends "$@"
}

check_python() {
    "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
        echo "Mamori needs Python 3.11 or newer ($PYTHON is $("$PYTHON" -V 2>&1))" >&2; exit 1; }
}

make_venv() {  # make_venv EXTRAS
    check_python
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV" 2>/dev/null || {
            apt_install python3-venv
            rm -rf "$VENV"; "$PYTHON" -m venv "$VENV"; }
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[$1]"
}
