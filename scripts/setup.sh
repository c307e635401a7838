#!/usr/bin/env bash
# Idempotent setup for a fresh Debian 12 machine: system packages, a virtualenv with
# UniDesk and its test tools, the Docker engine, and the web build.
#   scripts/setup.sh            everything the tests need
#   scripts/setup.sh --server   only what `unidesk-server` needs to start
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MODE=${1:-all}

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

need_pkgs=()
want() { dpkg -s "$1" >/dev/null 2>&1 || need_pkgs+=("$1"); }
want git
want docker.io
want busybox-static
want iproute2
if [ "$MODE" = "all" ]; then
  want chromium
  want chromium-driver
  want nginx
  want openssh-server
  want openssh-client
  want docker-compose
  want wrk
  want mmdebstrap   # scripts/build-images.sh: the Debian base image without a registry
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian packages: ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || true
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  else
    log "missing Debian packages (install them as root): ${need_pkgs[*]}"; exit 1
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.unidesk-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  log "installing Python dependencies"
  .venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/pip install -q -e ".[test]"
  touch "$stamp"
fi

# Docker engine (no bridge networks on these machines: containers use --network none or host).
if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v dockerd >/dev/null; then
    log "starting dockerd"
    mkdir -p /var/log
    nohup dockerd --iptables=false --ip6tables=false --bridge=none >/var/log/unidesk-dockerd.log 2>&1 &
    for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/unidesk-dockerd.log"; exit 1; }
  else
    log "no Docker engine reachable and cannot start one"; exit 1
  fi
fi

# Web UI: build when sources are newer than the bundle.
if [ -f web/package.json ]; then
  dist=unidesk/web_dist/index.html
  if [ ! -f web/node_modules/.package-lock.json ] || [ web/package.json -nt web/node_modules/.package-lock.json ]; then
    log "installing web dependencies"
    (cd web && npm ci --no-audit --no-fund --loglevel=error)
  fi
  newest=$(find web/src web/index.html web/package.json web/vite.config.ts -newer "$dist" 2>/dev/null | head -1 || true)
  if [ ! -f "$dist" ] || [ -n "$newest" ]; then
    log "building web UI"
    (cd web && npm run --silent build)
  fi
fi
log "ready"
