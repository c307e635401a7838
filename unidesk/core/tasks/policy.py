"""Retry policy: the one place that decides what an ended attempt means for its task.

Facts (an attempt exited, a node was lost) are recorded by whoever observed them; this
module turns them into decisions (retry, fail, succeed, cancel), each its own event.

    attempt ended by …        task becomes
    succeeded                 succeeded
    exit_nonzero / timed_out  failed, or pending again if retry_on_failure and attempts remain
    infra_error               pending again while attempts remain (another node may work),
                              else failed
    node_lost                 pending again while attempts remain, else failed
    (a retry waits ``retry_backoff`` and avoids the node the attempt ended on: scheduler/)
    anything, while the task is cancelling   cancelled
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.events.writer import NewEvent
from unidesk.core.tasks.models import AttemptRow, TaskRow
from unidesk.core.tasks.states import TASK_ACTIVE_STATES, TASK_ON_NODE_STATES
from unidesk.core.tasks.transitions import move_task, task_event

__all__ = ["POLICY_COLUMNS", "Decision", "PolicyTask", "apply_attempt_end", "decide", "needs_node"]


class PolicyTask(msgspec.Struct, kw_only=True):
    """The task columns the decision reads (not the row with its JSONB spec and env)."""

    state: str
    attempt_count: int
    max_attempts: int
    retry_on_failure: bool
    avoid_node_ids: list[str]
    timeout_s: int


POLICY_COLUMNS = (
    TaskRow.state,
    TaskRow.attempt_count,
    TaskRow.max_attempts,
    TaskRow.retry_on_failure,
    TaskRow.avoid_node_ids,
    TaskRow.timeout_s,
)


class Decision(msgspec.Struct, kw_only=True):
    """What an ended attempt means for its task: move it from ``from_states`` to ``to`` with
    ``values`` (the task columns besides state), explained by ``event``."""

    to: str
    from_states: tuple[str, ...]
    values: dict[str, Any]
    event: NewEvent


def _retryable(task: PolicyTask, reason: str) -> bool:
    return reason in ("node_lost", "infra_error") or (
        reason in ("exit_nonzero", "timed_out") and task.retry_on_failure
    )


def needs_node(task: PolicyTask, attempt_no: int, reason: str) -> bool:
    """Whether ``decide`` will retry, and so wants the node the attempt ended on."""
    return (
        task.state in TASK_ON_NODE_STATES
        and task.attempt_count == attempt_no
        and reason != "succeeded"
        and _retryable(task, reason)
        and attempt_no < task.max_attempts
    )


def decide(
    task: PolicyTask,
    task_id: uuid.UUID,
    attempt_no: int,
    *,
    reason: str,
    exit_code: int | None = None,
    message: str | None = None,
    node: tuple[uuid.UUID | None, str] | None = None,
    actor: str = "system:policy",
) -> Decision | None:
    """The task's next state after attempt ``attempt_no`` ended for ``reason`` (``node``: the
    ``(node_id, node_name)`` it ran on, read when ``needs_node``). None when the attempt is not
    the task's current one or the task is no longer active (a stale report: recorded elsewhere
    as a fact, changes nothing here)."""
    if task.attempt_count != attempt_no or task.state not in TASK_ACTIVE_STATES:
        return None
    detail = {
        "attempt_no": attempt_no,
        "reason": reason,
        "exit_code": exit_code,
        "message": message,
    }
    if task.state == "cancelling":
        return Decision(
            to="cancelled",
            from_states=("cancelling",),
            values={"reason": "cancelled", "message": message or "cancelled"},
            event=task_event(task_id, "task.cancelled", actor, **detail),
        )
    if reason == "succeeded":
        return Decision(
            to="succeeded",
            from_states=TASK_ON_NODE_STATES,
            values={"reason": "succeeded", "message": None},
            event=task_event(task_id, "task.succeeded", actor, **detail),
        )
    retryable = _retryable(task, reason)
    if retryable and attempt_no < task.max_attempts:
        # The retry waits out a backoff (the scheduler sets ``not_before`` from its settings)
        # and avoids the node this attempt ended on while another node could run it.
        avoid = list(task.avoid_node_ids or [])
        avoided = []
        if node is not None and node[0] is not None:
            if str(node[0]) not in avoid:
                avoid.append(str(node[0]))
            avoided.append(
                {"node_id": str(node[0]), "node": node[1], "why": f"attempt {attempt_no} {reason}"}
            )
        return Decision(
            to="pending",
            from_states=TASK_ON_NODE_STATES,
            values={
                "reason": None,
                "message": f"attempt {attempt_no} ended ({reason}); retrying",
                "pending_reason": "retry_backoff",
                "pending_detail": {"avoiding": [a["node"] for a in avoided]},
                "not_before": None,
                "avoid_node_ids": avoid,
            },
            event=task_event(
                task_id,
                "task.retried",
                actor,
                **detail,
                next_attempt=attempt_no + 1,
                avoid_nodes=avoided,
            ),
        )
    why = {
        "exit_nonzero": f"command exited with code {exit_code}"
        if exit_code is not None
        else "refused by the node",
        "timed_out": f"timed out after {task.timeout_s}s",
        "node_lost": "node lost",
        "infra_error": "infrastructure error",
    }.get(reason, reason)
    if retryable:
        why += f" (no attempts left of {task.max_attempts})"
    return Decision(
        to="failed",
        from_states=TASK_ON_NODE_STATES,
        values={"reason": reason, "message": f"{why}: {message}" if message else why},
        event=task_event(task_id, "task.failed", actor, **detail),
    )


async def apply_attempt_end(
    session: AsyncSession,
    task_id: uuid.UUID,
    attempt_no: int,
    *,
    reason: str,
    exit_code: int | None = None,
    message: str | None = None,
    actor: str = "system:policy",
) -> str | None:
    """Decide the task's next state after attempt ``attempt_no`` ended for ``reason`` and write
    it with its event.

    Returns the new task state, or None when the attempt is not the task's current one
    (a stale report: recorded elsewhere as a fact, changes nothing here)."""
    row = (
        await session.execute(
            select(*POLICY_COLUMNS).where(TaskRow.id == task_id).with_for_update()
        )
    ).first()
    if row is None:
        return None
    task = PolicyTask(**row._asdict())
    node = None
    if needs_node(task, attempt_no, reason):
        found = (
            await session.execute(
                select(AttemptRow.node_id, AttemptRow.node_name).where(
                    AttemptRow.task_id == task_id, AttemptRow.attempt_no == attempt_no
                )
            )
        ).first()
        node = (found.node_id, found.node_name) if found is not None else None
    decision = decide(
        task,
        task_id,
        attempt_no,
        reason=reason,
        exit_code=exit_code,
        message=message,
        node=node,
        actor=actor,
    )
    if decision is None:
        return None
    await move_task(
        session,
        task_id,
        from_states=decision.from_states,
        to=decision.to,
        event=decision.event,
        **decision.values,
    )
    return decision.to
