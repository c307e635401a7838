"""Following a task until it is final: state changes on stderr, its output on stdout, live.

Polls ``GET /api/tasks/{id}`` and ``GET /api/tasks/{id}/logs?after=`` every ``poll_s``
(bounded pages), so it survives server restarts and proxies that cut long streams.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import Any, TextIO

from unidesk.core.tasks.states import TASK_FINAL_STATES

from .api import ApiClient, ApiError
from .render import BEIJING

__all__ = ["FINAL_STATES", "Follower", "exit_code_for"]

FINAL_STATES = frozenset(TASK_FINAL_STATES)
EXIT_FAILED = 1
EXIT_CANCELLED = 3
_LOG_PAGE = 1000


def exit_code_for(task: dict[str, Any]) -> int:
    """0 succeeded; the command's own exit code when it exited non-zero; 3 cancelled; else 1."""
    if task["state"] == "succeeded":
        return 0
    if task["state"] == "cancelled":
        return EXIT_CANCELLED
    attempts = task.get("attempts") or []
    code = attempts[-1].get("exit_code") if attempts else None
    if task.get("reason") == "exit_nonzero" and isinstance(code, int) and 1 <= code <= 255:
        return code
    return EXIT_FAILED


class Follower:
    def __init__(
        self,
        api: ApiClient,
        task_id: str,
        *,
        show_states: bool = True,
        show_logs: bool = True,
        poll_s: float = 0.5,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.api = api
        self.task_id = task_id
        self.show_states = show_states
        self.show_logs = show_logs
        self.poll_s = poll_s
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._seen: tuple[Any, ...] | None = None
        self._attempt = 0
        self._after = 0

    def run(self) -> dict[str, Any]:
        """Follow until the task is final; returns the final task."""
        while True:
            task = self.api.get(f"/api/tasks/{self.task_id}")
            final = task["state"] in FINAL_STATES
            if not final:
                self._report_state(task)
            if self.show_logs:
                self._pull_logs(task)
            if final:  # the last output first, then the outcome line
                self._report_state(task)
                return task
            time.sleep(self.poll_s)

    def _say(self, text: str) -> None:
        stamp = datetime.now(BEIJING).strftime("%H:%M:%S")
        print(f"[{stamp}] {text}", file=self.err, flush=True)

    def _report_state(self, task: dict[str, Any]) -> None:
        attempts = task.get("attempts") or []
        last = attempts[-1] if attempts else {}
        key = (
            task["state"],
            task.get("reason"),
            task.get("unschedulable_reason"),
            len(attempts),
            last.get("state"),
            last.get("stage"),
            last.get("node_name"),
        )
        if key == self._seen or not self.show_states:
            self._seen = key
            return
        self._seen = key
        text = f"task {task['id']} {task['state']}"
        if last:
            stage = (
                f", {last['stage']}" if last.get("stage") and task["state"] == "preparing" else ""
            )
            text += f" (attempt {last['attempt_no']} on {last.get('node_name') or '?'}{stage})"
        if task.get("reason"):
            text += f": {task['reason']}"
        if task.get("message"):
            text += f" - {task['message']}"
        elif task.get("unschedulable_reason") and task["state"] == "pending":
            text += f": waiting, {task['unschedulable_reason']}"
        self._say(text)

    def _pull_logs(self, task: dict[str, Any]) -> None:
        latest = max([a["attempt_no"] for a in task.get("attempts") or []], default=0)
        while self._attempt < latest:
            if self._attempt:
                self._drain(self._attempt)
            self._attempt += 1
            self._after = 0
            if self._attempt > 1 and self.show_states:
                self._say(f"--- output of attempt {self._attempt} ---")
        if self._attempt:
            self._drain(self._attempt)

    def _drain(self, attempt_no: int) -> None:
        while True:
            try:
                page = self.api.get(
                    f"/api/tasks/{self.task_id}/logs",
                    attempt=attempt_no,
                    after=self._after,
                    limit=_LOG_PAGE,
                )
            except ApiError as exc:
                if exc.status == 404:  # the attempt has no output yet
                    return
                raise
            for line in page.get("items", []):
                target = self.out if line.get("stream") == "stdout" else self.err
                target.write(line.get("data", ""))
            self.out.flush()
            self.err.flush()
            self._after = page.get("next_after", self._after)
            if len(page.get("items", [])) < _LOG_PAGE:
                return
