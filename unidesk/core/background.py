"""The server's background tasks: the shared helpers of ``unidesk.background`` (the agent uses
the same ones)."""

from __future__ import annotations

from unidesk.background import TaskSet, cancel_and_wait

__all__ = ["TaskSet", "cancel_and_wait"]
