#!/usr/bin/env bash
# Build UniDesk's images with no container registry: a Debian base image made from Debian
# packages (mmdebstrap -> docker import), then the server, agent and gateway images on it from
# compose/Dockerfile.{server,agent,gateway}. Python dependencies come from a local wheelhouse,
# so the image builds themselves need no network (the gateway's apt-get needs the Debian
# mirror the base was made from).
#
#   scripts/build-images.sh                 base (cached by content hash) + wheelhouse + 3 images
#   MIRROR=http://mirror.lab/debian scripts/build-images.sh     an air-gapped lab's Debian mirror
#   WHEELHOUSE=/srv/wheels scripts/build-images.sh              pre-filled wheels (no PyPI)
#
# Tags: unidesk/base:bookworm-<hash>, unidesk/server:<version>, unidesk/agent:<version>,
# unidesk/gateway:<version>. The base is rebuilt only when its recipe (suite, packages,
# mirror) changes; `docker save` the images to carry them to other machines.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
log() { printf '\033[1m[images]\033[0m %s\n' "$*" >&2; }

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
PACKAGES=${PACKAGES:-python3,python3-venv,ca-certificates,git,openssh-client}
WHEELHOUSE=${WHEELHOUSE:-$ROOT/build/wheels}
PY=${PY:-$ROOT/.venv/bin/python}
COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)

recipe="$SUITE|$PACKAGES|$MIRROR|minbase|v1"
hash=$(printf '%s' "$recipe" | sha256sum | cut -c1-12)
BASE="unidesk/base:$SUITE-$hash"

# 1. The base image (minutes the first time; then cached in the engine by its recipe hash).
if docker image inspect "$BASE" >/dev/null 2>&1; then
  log "base image $BASE present (cached)"
else
  command -v mmdebstrap >/dev/null || { log "mmdebstrap missing: apt-get install mmdebstrap"; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  log "building $BASE with mmdebstrap from $MIRROR (a few minutes)"
  start=$SECONDS
  mmdebstrap --quiet --variant=minbase --include="$PACKAGES" --components=main \
    --aptopt='Acquire::Retries "3"' \
    --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
    "$SUITE" "$tmp/rootfs.tar" "$MIRROR"
  docker import \
    --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    --message "mmdebstrap $recipe" "$tmp/rootfs.tar" "$BASE" >/dev/null
  log "base image $BASE built in $((SECONDS - start)) s"
fi
docker tag "$BASE" "unidesk/base:$SUITE"   # the name compose's Dockerfiles default to

# 2. The wheelhouse: every Python dependency as a wheel (from PyPI, or given pre-filled).
if [ ! -f "$WHEELHOUSE/.complete" ] || [ pyproject.toml -nt "$WHEELHOUSE/.complete" ]; then
  log "filling the wheelhouse $WHEELHOUSE"
  mkdir -p "$WHEELHOUSE"
  "$PY" -m pip wheel -q --wheel-dir "$WHEELHOUSE" .
  rm -f "$WHEELHOUSE"/unidesk-*.whl        # the package itself is copied as source
  touch "$WHEELHOUSE/.complete"
fi
# The build context gets the wheels under build/wheels whatever WHEELHOUSE is.
if [ "$WHEELHOUSE" != "$ROOT/build/wheels" ]; then
  rm -rf build/wheels && mkdir -p build && cp -r "$WHEELHOUSE" build/wheels
fi

# 3. The web UI (served by the server image).
if [ ! -f unidesk/web_dist/index.html ]; then
  log "building the web UI"
  (cd web && npm ci --no-audit --no-fund --silent && npm run --silent build)
fi

# 4. The images (host networking for the one build step that uses the Debian mirror).
build() {
  local name=$1
  log "building unidesk/$name:$VERSION"
  docker build --quiet --network host -f "compose/Dockerfile.$name" \
    --build-arg BASE="$BASE" --build-arg UNIDESK_VERSION="$VERSION" \
    --build-arg UNIDESK_GIT_COMMIT="$COMMIT" -t "unidesk/$name:$VERSION" . >/dev/null
}
for name in ${IMAGES:-server agent gateway}; do build "$name"; done
printf '%s\n' "$BASE" "unidesk/server:$VERSION" "unidesk/agent:$VERSION" "unidesk/gateway:$VERSION"
