#!/usr/bin/env bash
# Set up (idempotently) and start UniDesk: server + embedded PostgreSQL + its own local node.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --server
exec .venv/bin/unidesk-server serve "$@"
