"""The task vocabulary, defined once: task states, attempt states and why attempts end.

Everything else (models, services, policy, metrics, the CLI) imports these; the agent's side
of the vocabulary (attempt phases, the agent's end reasons) is ``unidesk.protocol``.
"""

from __future__ import annotations

from typing import Literal, get_args

from unidesk.protocol import EndReason

__all__ = [
    "ATTEMPT_ACTIVE_STATES",
    "ATTEMPT_FINAL_STATES",
    "ATTEMPT_STATES",
    "TASK_ACTIVE_STATES",
    "TASK_FINAL_STATES",
    "TASK_ON_NODE_STATES",
    "TASK_STATES",
    "AttemptEndReason",
    "AttemptStateName",
    "TaskState",
]

TaskState = Literal[
    "pending", "assigned", "preparing", "running", "cancelling", "succeeded", "failed", "cancelled"
]
TASK_STATES: tuple[TaskState, ...] = get_args(TaskState)
TASK_FINAL_STATES: tuple[TaskState, ...] = ("succeeded", "failed", "cancelled")
TASK_ON_NODE_STATES: tuple[TaskState, ...] = ("assigned", "preparing", "running")
"""An attempt of the task is live on a node and the task is not being cancelled."""
TASK_ACTIVE_STATES: tuple[TaskState, ...] = (*TASK_ON_NODE_STATES, "cancelling")
"""An attempt of the task is live on a node (cancelling included)."""

AttemptStateName = Literal[
    "assigned", "preparing", "running", "succeeded", "failed", "cancelled", "lost"
]
ATTEMPT_STATES: tuple[AttemptStateName, ...] = get_args(AttemptStateName)
ATTEMPT_FINAL_STATES: tuple[AttemptStateName, ...] = ("succeeded", "failed", "cancelled", "lost")
ATTEMPT_ACTIVE_STATES: tuple[AttemptStateName, ...] = ("assigned", "preparing", "running")

AttemptEndReason = EndReason | Literal["node_lost"]
"""Why an attempt ended, as the server records it: the agent's reasons plus ``node_lost``
(the node went away, or its agent stopped the attempt on its own: ``killed``)."""
