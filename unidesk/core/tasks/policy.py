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

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.tasks.models import AttemptRow, TaskRow
from unidesk.core.tasks.states import TASK_ACTIVE_STATES, TASK_ON_NODE_STATES
from unidesk.core.tasks.transitions import move_task, task_event

__all__ = ["apply_attempt_end"]


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
    """Decide the task's next state after attempt ``attempt_no`` ended for ``reason``.

    Returns the new task state, or None when the attempt is not the task's current one
    (a stale report: recorded elsewhere as a fact, changes nothing here)."""
    # The columns the decision reads, not the whole row (its JSONB spec and env): this runs
    # once per ended attempt, in report batches of hundreds.
    task = (
        await session.execute(
            select(
                TaskRow.state,
                TaskRow.attempt_count,
                TaskRow.max_attempts,
                TaskRow.retry_on_failure,
                TaskRow.avoid_node_ids,
                TaskRow.timeout_s,
            )
            .where(TaskRow.id == task_id)
            .with_for_update()
        )
    ).first()
    if task is None or task.attempt_count != attempt_no or task.state not in TASK_ACTIVE_STATES:
        return None
    detail = {
        "attempt_no": attempt_no,
        "reason": reason,
        "exit_code": exit_code,
        "message": message,
    }
    if task.state == "cancelling":
        await move_task(
            session,
            task_id,
            from_states=("cancelling",),
            to="cancelled",
            reason="cancelled",
            message=message or "cancelled",
            event=task_event(task_id, "task.cancelled", actor, **detail),
        )
        return "cancelled"
    if reason == "succeeded":
        await move_task(
            session,
            task_id,
            from_states=TASK_ON_NODE_STATES,
            to="succeeded",
            reason="succeeded",
            message=None,
            event=task_event(task_id, "task.succeeded", actor, **detail),
        )
        return "succeeded"
    retryable = reason in ("node_lost", "infra_error") or (
        reason in ("exit_nonzero", "timed_out") and task.retry_on_failure
    )
    if retryable and attempt_no < task.max_attempts:
        # The retry waits out a backoff (the scheduler sets ``not_before`` from its settings)
        # and avoids the node this attempt ended on while another node could run it.
        node = (
            await session.execute(
                select(AttemptRow.node_id, AttemptRow.node_name).where(
                    AttemptRow.task_id == task_id, AttemptRow.attempt_no == attempt_no
                )
            )
        ).first()
        avoid = list(task.avoid_node_ids or [])
        avoided = []
        if node is not None and node.node_id is not None:
            if str(node.node_id) not in avoid:
                avoid.append(str(node.node_id))
            avoided.append(
                {
                    "node_id": str(node.node_id),
                    "node": node.node_name,
                    "why": f"attempt {attempt_no} {reason}",
                }
            )
        await move_task(
            session,
            task_id,
            from_states=TASK_ON_NODE_STATES,
            to="pending",
            reason=None,
            message=f"attempt {attempt_no} ended ({reason}); retrying",
            pending_reason="retry_backoff",
            pending_detail={"avoiding": [a["node"] for a in avoided]},
            not_before=None,
            avoid_node_ids=avoid,
            event=task_event(
                task_id,
                "task.retried",
                actor,
                **detail,
                next_attempt=attempt_no + 1,
                avoid_nodes=avoided,
            ),
        )
        return "pending"
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
    await move_task(
        session,
        task_id,
        from_states=TASK_ON_NODE_STATES,
        to="failed",
        reason=reason,
        message=f"{why}: {message}" if message else why,
        event=task_event(task_id, "task.failed", actor, **detail),
    )
    return "failed"
