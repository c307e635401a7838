#!/usr/bin/env bash
# Set up (idempotently), run the static checks (scripts/lint.sh), then the whole test suite
# against real PostgreSQL, Docker and Chromium.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh all || exit 1
scripts/lint.sh || { echo "static checks failed (scripts/lint.sh)" >&2; exit 1; }
if [ -f web/package.json ]; then
  scripts/gen-api-types.sh --check || exit 1
  (cd web && npm run --silent lint) || { echo "web lint failed (cd web && npm run lint)" >&2; exit 1; }
  (cd web && npm run --silent test) || { echo "web unit tests failed" >&2; exit 1; }
fi
.venv/bin/python -m pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
[ $rc -eq 0 ] || exit $rc
[ $# -eq 0 ] || exit 0   # a chosen subset: no extra steps

# 2. The core with no plugin loaded (about 2 minutes): every core route and the scheduler, plus
#    the node and scheduling API tests, with UNIDESK_PLUGINS=none (tests marked `plugins` skip).
echo "[test] the core's tests again with UNIDESK_PLUGINS=none" >&2
UNIDESK_PLUGINS=none .venv/bin/python -m pytest -q -m "not plugins" \
  tests/core/test_plugins_off.py tests/core/test_nodes.py tests/core/test_scheduling_api.py \
  tests/core/test_health.py || { echo "the core fails with plugins off" >&2; exit 1; }

# 3. The deployment's images built without a registry and started (marker `images`): the first
#    run on a machine debootstraps the base image (about 3 minutes here; cached by its recipe
#    hash afterwards). UNIDESK_SKIP_IMAGES=1 skips this step.
if [ -z "${UNIDESK_SKIP_IMAGES:-}" ]; then
  echo "[test] building and starting the images (scripts/build-images.sh)" >&2
  UNIDESK_IMAGE_TESTS=1 .venv/bin/python -m pytest -q -m images tests/compose/test_images.py \
    || { echo "the image build/run test failed" >&2; exit 1; }
fi
exit 0
