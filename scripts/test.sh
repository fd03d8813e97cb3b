#!/usr/bin/env bash
# One command from a fresh clone to a full check: sets up .venv with the dev extras,
# installs the system packages the tests need (mosquitto, chromium), finds or embeds
# PostgreSQL, then runs ruff, mypy --strict, import-linter and pytest.
# Any skipped test fails the run; so does a run that collected no tests.
source "$(dirname "$0")/_setup.sh"
cd "$ROOT"

need=()
command -v mosquitto >/dev/null || need+=(mosquitto)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi
make_venv "dev"
export PATH="$VENV/bin:$PATH"

# The machine's PostgreSQL when it answers (CI has one), else the tests embed one.
if [ -z "${MAMORI_TEST_DATABASE_URL:-}" ]; then
    candidate="postgresql://postgres@127.0.0.1:5432/postgres"
    if python -c "import psycopg,sys; psycopg.connect(sys.argv[1], connect_timeout=3).close()" \
        "$candidate" 2>/dev/null; then
        export MAMORI_TEST_DATABASE_URL=$candidate
    fi
fi
echo "PostgreSQL for tests: ${MAMORI_TEST_DATABASE_URL:-embedded}"

echo "== ruff check";        ruff check .
echo "== ruff format";       ruff format --check .
echo "== mypy --strict";     mypy
echo "== import contracts";  lint-imports
echo "== pytest"
export MAMORI_FAIL_ON_SKIP=1
set +e
pytest "$@"
status=$?
set -e
if [ "$status" = 5 ]; then echo "pytest collected no tests: that is a failure" >&2; exit 1; fi
exit "$status"
