#!/usr/bin/env bash
# Static checks: ruff lint, ruff format check, mypy (config in pyproject.toml). Non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
rc=0
"$bin/ruff" check . || { echo "lint: ruff check failed" >&2; rc=1; }
"$bin/ruff" format --check . || { echo "lint: ruff format --check failed (run: $bin/ruff format .)" >&2; rc=1; }
"$bin/mypy" || { echo "lint: mypy failed" >&2; rc=1; }
exit $rc
