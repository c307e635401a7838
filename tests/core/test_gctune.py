"""The server's collector settings: what exists at start is frozen, young generations are
collected less often (in a child process: the test process keeps its own settings)."""

from __future__ import annotations

import subprocess
import sys


def test_tune_gc_freezes_what_exists_and_sets_the_thresholds() -> None:
    code = (
        "import gc; from unidesk.core.gctune import GC_THRESHOLDS, tune_gc; tune_gc(); "
        "assert gc.get_threshold() == GC_THRESHOLDS, gc.get_threshold(); "
        "assert gc.get_freeze_count() > 1000, gc.get_freeze_count(); print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
