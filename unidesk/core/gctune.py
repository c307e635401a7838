"""Garbage-collector settings for the server process: fewer, not longer, collections."""

from __future__ import annotations

import gc

__all__ = ["GC_THRESHOLDS", "tune_gc"]

GC_THRESHOLDS = (50_000, 20, 100)
"""Python's default (700, 10, 10) made a server holding 1,000 agent sockets spend about 37 %
of its CPU in the collector during a dispatch burst (bench_scheduler, measured with
``gc.callbacks``): a full collection every few seconds, each ~300 ms of walking every live
object, which also stalls every request and frame for that long. Cyclic garbage is rare on
the hot paths (it is freed by reference counting), so collecting it less often costs little
memory."""


def tune_gc() -> None:
    """Move what exists at start (modules, classes, settings: never garbage) out of the
    collector's sight and collect the young generations less often. Called once by ``serve``
    before the app starts (and before ``--workers`` forks, so the children inherit it)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
