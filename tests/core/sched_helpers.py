"""A simulated cluster on a real PostgreSQL database for scheduler tests and benchmarks:
users, online node rows, pending tasks (each with its event), and attempts ended on demand."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unidesk.core.auth.models import User
from unidesk.core.events.writer import NewEvent, append_many
from unidesk.core.nodes.models import NodeRow
from unidesk.core.scheduler.models import QuotaRow
from unidesk.core.tasks.models import AttemptRow, TaskRow
from unidesk.core.tasks.policy import apply_attempt_end
from unidesk.core.tasks.transitions import move_attempt, task_event

__all__ = ["SimCluster"]

SHA = "d" * 40


class SimCluster:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def user(self, name: str, role: str = "member") -> uuid.UUID:
        async with self.sessions() as s:
            u = User(id=uuid.uuid4(), username=name, password_hash="x", role=role)
            s.add(u)
            await s.commit()
            return u.id

    async def nodes(
        self,
        n: int,
        *,
        prefix: str = "node",
        cpus: float = 4,
        memory_mb: int = 16384,
        gpus: list[dict[str, Any]] | None = None,
        labels: dict[str, str] | None = None,
    ) -> list[uuid.UUID]:
        ids = [uuid.uuid4() for _ in range(n)]
        async with self.sessions() as s:
            s.add_all(
                NodeRow(
                    id=i,
                    name=f"{prefix}-{k:04d}",
                    state="online",
                    connection_id=f"sim-{i}",
                    cpus=cpus,
                    memory_mb=memory_mb,
                    gpus=list(gpus or []),
                    labels=dict(labels or {}),
                    runtimes=["docker"],
                )
                for k, i in enumerate(ids)
            )
            await append_many(
                s,
                [
                    NewEvent(
                        kind="node.registered",
                        subject_type="node",
                        subject_id=str(i),
                        actor="test",
                    )
                    for i in ids
                ],
            )
            await s.commit()
        return ids

    async def tasks(
        self, n: int, owner: uuid.UUID | None, *, priority: int = 0, **fields: Any
    ) -> list[uuid.UUID]:
        ids = [uuid.uuid4() for _ in range(n)]
        values = {"cpus": 1.0, "memory_mb": 256, "gpus": 0, "labels": {}, "timeout_s": 600}
        values.update(fields)
        async with self.sessions() as s:
            await s.execute(
                TaskRow.__table__.insert(),
                [
                    {
                        "id": i,
                        "name": f"t{k}",
                        "owner_id": owner,
                        "state": "pending",
                        "code_repo_url": "https://example.org/c.git",
                        "code_commit_id": SHA,
                        "env_repo_url": "https://example.org/e.git",
                        "env_commit_id": SHA,
                        "dockerfile_path": "Dockerfile",
                        "command": ["true"],
                        "env": {},
                        "priority": priority,
                        "max_attempts": 3,
                        "retry_on_failure": False,
                        "extra": {},
                        "attempt_count": 0,
                        "avoid_node_ids": [],
                        **values,
                    }
                    for k, i in enumerate(ids)
                ],
            )
            await append_many(s, [task_event(i, "task.submitted", "test") for i in ids])
            await s.commit()
        return ids

    async def task(self, task_id: uuid.UUID) -> TaskRow:
        async with self.sessions() as s:
            row = await s.get(TaskRow, task_id)
            assert row is not None
            return row

    async def states(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        async with self.sessions() as s:
            rows = (
                await s.execute(select(TaskRow.id, TaskRow.state).where(TaskRow.id.in_(ids)))
            ).all()
            return dict(rows)  # type: ignore[arg-type]

    async def active(self) -> list[AttemptRow]:
        async with self.sessions() as s:
            return list(
                (
                    await s.scalars(
                        select(AttemptRow).where(
                            AttemptRow.state.in_(("assigned", "preparing", "running"))
                        )
                    )
                ).all()
            )

    async def end(self, attempt: AttemptRow, reason: str = "succeeded") -> None:
        """The attempt's node reports its end; the retry policy decides the task's fate."""
        to = {"succeeded": "succeeded", "node_lost": "lost"}.get(reason, "failed")
        async with self.sessions() as s:
            await move_attempt(
                s,
                attempt.task_id,
                attempt.attempt_no,
                from_states=("assigned", "preparing", "running"),
                to=to,
                reason=reason,
                event=task_event(attempt.task_id, "task.exited", "test", reason=reason),
            )
            await apply_attempt_end(s, attempt.task_id, attempt.attempt_no, reason=reason)
            await s.commit()

    async def age_backoff(self) -> None:
        """Let every retry backoff expire now."""
        async with self.sessions() as s:
            await s.execute(
                update(TaskRow)
                .where(TaskRow.not_before.is_not(None))
                .values(not_before=func.now() - timedelta(seconds=1))
            )
            await s.commit()

    async def quota(
        self,
        user: uuid.UUID | None = None,
        *,
        account: str | None = None,
        label: str = "",
        **limits: Any,
    ) -> None:
        async with self.sessions() as s:
            s.add(QuotaRow(user_id=user, account=account, label=label, **limits))
            await s.commit()
