#!/usr/bin/env bash
# Set up (idempotently), run the static checks (scripts/lint.sh), then the whole test suite
# against real PostgreSQL, Docker and Chromium.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh all || exit 1
scripts/lint.sh || { echo "static checks failed (scripts/lint.sh)" >&2; exit 1; }
if [ -f web/package.json ]; then
  (cd web && npm run --silent test) || { echo "web unit tests failed" >&2; exit 1; }
fi
.venv/bin/python -m pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
exit $rc
