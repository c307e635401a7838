"""Following a pipeline until it is final: its steps in DAG order, redrawn in place on a terminal,
one line per change otherwise.

Polls ``GET /api/pipelines/{id}`` every ``poll_s`` (like ``unidesk submit --wait`` polls its
task), so it survives server restarts and proxies that cut long streams.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import Any, TextIO

from unidesk.client.render import BEIJING

__all__ = [
    "EXIT_CANCELLED",
    "EXIT_FAILED",
    "FINAL_STATES",
    "PipelineWatcher",
    "counts_text",
    "step_layers",
    "step_lines",
]

FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
EXIT_FAILED = 1
EXIT_CANCELLED = 3
STEP_ORDER = ("waiting", "ready", "running", "succeeded", "failed", "skipped", "cancelled")
ICONS = {
    "waiting": "◌",
    "ready": "◎",
    "running": "▶",
    "succeeded": "✓",
    "failed": "✗",
    "skipped": "↷",
    "cancelled": "⊘",
}
_DONE_TASK = frozenset({"succeeded", "failed", "cancelled"})


def counts_text(counts: dict[str, int]) -> str:
    """Step counts in state order: ``2 succeeded, 1 running``."""
    known = [s for s in STEP_ORDER if counts.get(s)] + sorted(
        s for s in counts if s not in STEP_ORDER and counts[s]
    )
    return ", ".join(f"{counts[s]} {s}" for s in known)


def step_layers(steps: list[dict[str, Any]]) -> dict[str, int]:
    """Longest-path layer of each step (0: depends on nothing); unknown names and cycles ignored."""
    deps = {s["name"]: list(s.get("depends_on") or []) for s in steps}
    layer: dict[str, int] = {}
    visiting: set[str] = set()

    def visit(name: str) -> int:
        if name in layer:
            return layer[name]
        visiting.add(name)
        depth = 0
        for d in deps.get(name, []):
            if d in deps and d not in visiting:
                depth = max(depth, visit(d) + 1)
        visiting.discard(name)
        layer[name] = depth
        return depth

    for s in steps:
        visit(s["name"])
    return layer


def _points_text(step: dict[str, Any]) -> str:
    points = step.get("points") or []
    if not step.get("matrix"):
        return ""
    done = sum(1 for p in points if p.get("task_state") in _DONE_TASK)
    return f"  {done}/{len(points)} points done"


def step_lines(pipeline: dict[str, Any], *, icons: bool) -> list[str]:
    """One line per step, in DAG order (by layer, then the spec's order), indented by layer."""
    steps = pipeline["steps"]
    layers = step_layers(steps)
    ordered = sorted(enumerate(steps), key=lambda item: (layers[item[1]["name"]], item[0]))
    width = max((len(s["name"]) + 2 * layers[s["name"]] for s in steps), default=0)
    lines = []
    for _, s in ordered:
        depth = layers[s["name"]]
        name = ("  " * depth + s["name"]).ljust(width)
        mark = f"{ICONS.get(s['state'], '?')} " if icons else ""
        when = "" if s.get("when", "on_success") == "on_success" else f"  ({s['when']})"
        needs = f"  after {', '.join(s['depends_on'])}" if s.get("depends_on") else ""
        lines.append(f"  {mark}{name}  {s['state']:<9}{_points_text(s)}{when}{needs}".rstrip())
    return lines


class PipelineWatcher:
    """Polls one pipeline until it is final and shows its steps as they change."""

    def __init__(
        self,
        api: Any,
        pipeline_id: str,
        *,
        live: bool,
        poll_s: float = 0.5,
        err: TextIO | None = None,
    ) -> None:
        self.api = api
        self.pipeline_id = pipeline_id
        self.live = live
        self.poll_s = poll_s
        self.err = err or sys.stderr
        self._drawn = 0
        self._last_block: list[str] | None = None
        self._seen: dict[str, tuple[Any, ...]] = {}

    def run(self) -> dict[str, Any]:
        """Follow until the pipeline is final; returns the final pipeline."""
        while True:
            pipeline = self.api.get(f"/api/pipelines/{self.pipeline_id}")
            (self._redraw if self.live else self._report)(pipeline)
            if pipeline["state"] in FINAL_STATES:
                return pipeline
            time.sleep(self.poll_s)

    def _stamp(self) -> str:
        return datetime.now(BEIJING).strftime("%H:%M:%S")

    def _redraw(self, pipeline: dict[str, Any]) -> None:
        block = [
            f"pipeline {pipeline['name']} {pipeline['state']}",
            *step_lines(pipeline, icons=True),
        ]
        if block == self._last_block:
            return
        self._last_block = block
        # Back to the first line drawn last time, clear below, draw again.
        prefix = f"\x1b[{self._drawn}F\x1b[J" if self._drawn else ""
        self.err.write(prefix + "\n".join([f"[{self._stamp()}] {block[0]}", *block[1:]]) + "\n")
        self.err.flush()
        self._drawn = len(block)

    def _report(self, pipeline: dict[str, Any]) -> None:
        lines = []
        for s in pipeline["steps"]:
            points = tuple((p.get("task_id"), p.get("task_state")) for p in s.get("points") or [])
            step_key = (s["state"], points)
            if self._seen.get(s["name"]) == step_key:
                continue
            self._seen[s["name"]] = step_key
            tasks = [p[0] for p in points if p[0]]
            on = ""
            if len(tasks) == 1 and not s.get("matrix"):
                on = f" (task {tasks[0]})"
            lines.append(f"step {s['name']} {s['state']}{_points_text(s)}{on}")
        key = ("pipeline", pipeline["state"])
        if self._seen.get("") != key:  # the outcome after the steps that led to it
            self._seen[""] = key
            line = f"pipeline {pipeline['name']} {pipeline['state']}"
            lines.insert(len(lines) if pipeline["state"] in FINAL_STATES else 0, line)
        for line in lines:
            print(f"[{self._stamp()}] {line}", file=self.err, flush=True)
