"""Task submission, queries, trace and cancel: the only code touching task tables from the API."""

from __future__ import annotations

import builtins
import functools
import re
import shlex
import uuid
from collections.abc import Callable, Sequence
from typing import Any, cast

import msgspec
from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unidesk.core.auth.models import User
from unidesk.core.auth.policy import require_owner_or_admin
from unidesk.core.auth.schemas import Principal
from unidesk.core.db.readcache import ReadCache
from unidesk.core.db.reads import Reads
from unidesk.core.events.hub import to_out
from unidesk.core.events.models import Event
from unidesk.core.events.schemas import EventOut
from unidesk.core.events.writer import append, append_many
from unidesk.core.nodes.models import NodeRow
from unidesk.core.scheduler.accounts import is_member
from unidesk.core.scheduler.queue import all_ranked, ranked_ahead
from unidesk.core.scheduler.reasons import RANKED_REASONS
from unidesk.core.secrets.services import SecretService
from unidesk.core.settings import Settings
from unidesk.core.storage.taskfiles import resolve_task_files
from unidesk.core.tasks import listing, listpage, schemas
from unidesk.core.tasks.hostmounts import host_mount_request
from unidesk.core.tasks.models import ACCOUNT_PATTERN, AttemptRow, TaskRow
from unidesk.core.tasks.states import ATTEMPT_ACTIVE_STATES, TASK_FINAL_STATES, TASK_STATES
from unidesk.core.tasks.submitqueue import SubmitQueue
from unidesk.core.tasks.transitions import move_attempt, move_task, task_event
from unidesk.core.tasks.validation import (
    check_dockerfile_path,
    check_env_name,
    check_repo_url,
    parse_gpu_shorthand,
)
from unidesk.errors import BadRequest, Conflict, Forbidden, NotFound, UnideskError

__all__ = ["TASK_STATES", "TaskService", "attempt_out", "list_tasks", "task_out"]


def attempt_out(a: AttemptRow) -> schemas.Attempt:
    return schemas.Attempt(
        attempt_no=a.attempt_no,
        node_id=a.node_id,
        node_name=a.node_name,
        state=a.state,
        stage=a.stage,
        reason=a.reason,
        message=a.message,
        exit_code=a.exit_code,
        gpu_indices=list(a.gpu_indices),
        assigned_at=a.assigned_at,
        acked_at=a.acked_at,
        started_at=a.started_at,
        finished_at=a.finished_at,
    )


def task_out(
    t: TaskRow,
    owner: str | None,
    attempts: Sequence[AttemptRow] | None = None,
    ranked_ahead: int | None = None,
    latest: Any = None,
) -> schemas.Task:
    """``latest``: the latest attempt's ``started_at`` and ``node_name`` (taken from
    ``attempts`` when given)."""
    if attempts:
        latest = max(attempts, key=lambda a: a.attempt_no)
    return schemas.Task(
        id=t.id,
        name=t.name,
        state=t.state,
        reason=t.reason,
        message=t.message,
        unschedulable_reason=t.unschedulable_reason,
        owner_id=t.owner_id,
        owner=owner,
        code_repo_url=t.code_repo_url,
        code_commit_id=t.code_commit_id,
        env_repo_url=t.env_repo_url,
        env_commit_id=t.env_commit_id,
        dockerfile_path=t.dockerfile_path,
        command=list(t.command),
        env=dict(t.env),
        resources=_resources(t),
        timeout_s=t.timeout_s,
        expected_duration_s=t.expected_duration_s,
        priority=t.priority,
        account=t.account,
        max_attempts=t.max_attempts,
        retry_on_failure=t.retry_on_failure,
        attempt_count=t.attempt_count,
        pending_reason=t.pending_reason if t.state == "pending" else None,
        pending_detail=dict(t.pending_detail or {}) if t.state == "pending" else None,
        ranked_ahead=ranked_ahead,
        not_before=t.not_before if t.state == "pending" else None,
        avoid_node_ids=list(t.avoid_node_ids or []),
        extra=dict(t.extra),
        created_at=t.created_at,
        updated_at=t.updated_at,
        finished_at=t.finished_at,
        started_at=latest.started_at if latest is not None else None,
        node_name=(latest.node_name or None) if latest is not None else None,
        attempts=[attempt_out(a) for a in attempts] if attempts is not None else None,
        secrets={k: v["ref"] for k, v in (t.extra.get("secrets") or {}).items()},
    )


def _resources(t: TaskRow) -> schemas.Resources:
    return schemas.Resources(
        cpus=t.cpus,
        memory_mb=t.memory_mb,
        gpus=t.gpus,
        labels=dict(t.labels),
        gpu_model=t.gpu_model,
        gpu_memory_mb=t.gpu_memory_mb,
        pids_limit=t.extra.get("pids_limit"),
    )


_TASK_TABLE = cast(Table, TaskRow.__table__)
_INSERT_RETURNING = insert(_TASK_TABLE).returning(*_TASK_TABLE.c)
"""A single submit's INSERT: the stored row (server defaults included) comes back with it."""


@functools.cache
def _count_statement(states: bool, owner: bool, q: bool, node: bool) -> Any:
    """How many tasks match one combination of filters (every page, not just this one)."""
    return listing.filtered(select(func.count()).select_from(TaskRow), states, owner, q, node)


async def list_tasks(
    reads: Reads,
    sessions: Callable[[], AsyncSession],
    settings: Settings,
    principal: Principal,
    read_cache: ReadCache,
    *,
    states: list[str],
    owner: uuid.UUID | None,
    q: str | None,
    node: uuid.UUID | None,
    limit: int,
    cursor: str | None,
    with_total: bool = False,
    sort: str = listing.DEFAULT_SORT,
    offset: int = 0,
) -> bytes:
    """A page of tasks in ``sort`` order (newest first by default), after (or, for a
    ``before`` cursor, before) ``cursor`` and skipping ``offset`` rows, as the encoded
    ``TaskPage`` (``schemas.TaskPage``'s JSON): one statement on the read pool whose rows carry
    each task's columns (``listpage``); tasks waiting for resources get their rank from the
    ranking of all waiting tasks, kept per write (``ReadCache.memo``)."""
    bad = [s for s in states if s not in TASK_STATES]
    if bad:
        raise BadRequest(
            f"state: unknown state(s) {', '.join(bad)}; one of {', '.join(TASK_STATES)}"
        )
    params: dict[str, Any] = {"limit": limit + 1}
    if states:
        params["states"] = states
    if owner is not None:
        params["owner"] = owner
    if q:
        params["q"] = "%" + q.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"
    if node is not None:
        params["node"] = node
    if sort not in listing.TASK_SORTS:
        raise BadRequest(f"sort: one of {', '.join(listing.TASK_SORTS)}", field="sort")
    c = listing.decode_cursor(cursor, sort) if cursor else None
    if c is not None:
        params.update(listing.cursor_params(c))
    if offset:
        params["offset"] = offset
    sql, constants = listpage.page_sql(
        reads.engine.dialect,
        sort,
        bool(states),
        owner is not None,
        bool(q),
        node is not None,
        "" if c is None else "before" if c.before else "after",
        c is not None and c.value is None and sort.lstrip("-") != "created_at",
        bool(offset),
    )
    rows = await reads.tuples(sql, {**constants, **params})
    more = len(rows) > limit
    page = rows[:limit]
    backwards = c is not None and c.before
    if backwards:
        page.reverse()
    ranked: dict[str, int] = {}
    if any(r[2] == "pending" and r[_PENDING_REASON] in RANKED_REASONS for r in page):

        async def rank_all() -> dict[str, int]:
            async with sessions() as session:
                return await all_ranked(session, settings)

        ranked = await read_cache.memo("ranked_ahead", rank_all)
    next_cursor = prev_cursor = None
    if page and (more or backwards):
        next_cursor = listing.encode_cursor(sort, listpage.boundary(page[-1]))
    if page and ((more and backwards) or (not backwards and (c is not None or offset))):
        prev_cursor = listing.encode_cursor(sort, listpage.boundary(page[0]), before=True)
    total = None
    if with_total:
        count = _count_statement(bool(states), owner is not None, bool(q), node is not None)
        total = (await reads.all(count, params))[0][0]
    return listpage.encode_page(page, principal, ranked, next_cursor, prev_cursor, total)


_PENDING_REASON = 29
"""Position of ``pending_reason`` in a ``listpage.page_sql`` row."""


class TaskService:
    def __init__(
        self,
        session: AsyncSession | async_sessionmaker[AsyncSession],
        settings: Settings,
        plugins: Any = None,
    ) -> None:
        """``session``: a session, or a factory whose session is made on first use (the
        single-submit path: most submits read nothing before the queued write)."""
        self._factory = session if isinstance(session, async_sessionmaker) else None
        self.opened = session if isinstance(session, AsyncSession) else None
        """The session, once there is one."""
        self.settings = settings
        self.plugins = plugins
        self._members_seen: set[tuple[str, uuid.UUID]] = set()

    @property
    def s(self) -> AsyncSession:
        if self.opened is None:
            assert self._factory is not None
            self.opened = self._factory()
        return self.opened

    def validate(self, data: schemas.TaskCreate) -> list[str]:
        """Edge checks beyond the schema; returns the argv to store (``data.resources`` may
        be rewritten: the ``gpu`` shorthand becomes gpus, gpu_model and gpu_memory_mb)."""
        if data.resources.gpu is not None:
            data.resources = parse_gpu_shorthand(data.resources)
        if data.expected_duration_s is not None and data.expected_duration_s > data.timeout_s:
            raise BadRequest(
                "expected_duration_s: must not exceed timeout_s", field="expected_duration_s"
            )
        if (data.resources.gpu_model or data.resources.gpu_memory_mb) and not data.resources.gpus:
            raise BadRequest(
                "resources: gpu_model and gpu_memory_mb need gpus >= 1", field="resources.gpus"
            )
        allow_file = self.settings.allow_file_urls
        check_repo_url("code_repo_url", data.code_repo_url, allow_file=allow_file)
        check_repo_url("env_repo_url", data.env_repo_url, allow_file=allow_file)
        check_dockerfile_path(data.dockerfile_path)
        for k in data.env:
            check_env_name(k, secret_patterns=self.settings.secret_env_patterns)
        cap = self.settings.max_task_pids_limit
        if data.resources.pids_limit is not None and data.resources.pids_limit > cap:
            raise BadRequest(
                f"resources.pids_limit: {data.resources.pids_limit} is above this server's cap of "
                f"{cap} processes (setting max_task_pids_limit, set by an admin)",
                field="resources.pids_limit",
            )
        if isinstance(data.command, str):
            if "\x00" in data.command:
                raise BadRequest("command: NUL bytes are not allowed", field="command")
            return ["/bin/sh", "-c", data.command]
        if any("\x00" in a for a in data.command):
            raise BadRequest("command: NUL bytes are not allowed", field="command")
        return list(data.command)

    async def _secret_refs(self, data: schemas.TaskCreate, principal: Principal) -> dict[str, Any]:
        """Check the submitter may use every secret the task names; the references to store."""
        both = sorted(set(data.env) & set(data.secrets))
        if both:
            raise BadRequest(
                f"secrets: {', '.join(both)} also set in env; name each variable once",
                field="secrets",
            )
        for k in data.secrets:
            check_env_name(k)
        if not data.secrets and data.credentials == schemas.Credentials():
            return {}
        svc = SecretService(self.s, plugins=self.plugins)
        out: dict[str, Any] = {}
        if data.secrets:
            out["secrets"] = {
                env: await svc.resolve_ref(ref, principal, f"secrets.{env}")
                for env, ref in sorted(data.secrets.items())
            }
        creds: dict[str, Any] = {}
        c = data.credentials
        for field in ("code_repo", "env_repo", "known_hosts"):
            ref = getattr(c, field)
            if ref is not None:
                creds[field] = await svc.resolve_ref(ref, principal, f"credentials.{field}")
        if c.registries:
            creds["registries"] = {
                host: await svc.resolve_ref(ref, principal, f"credentials.registries.{host}")
                for host, ref in sorted(c.registries.items())
            }
        if creds:
            out["credentials"] = creds
        return out

    async def _prepare(
        self, data: schemas.TaskCreate, principal: Principal, extra: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Check one submission; the values of its ``tasks`` row and its ``task.submitted`` spec."""
        argv = self.validate(data)
        if data.priority > self.settings.max_member_priority and not principal.is_admin:
            raise Forbidden(
                f"priority: above {self.settings.max_member_priority} needs an admin",
                field="priority",
            )
        extra = {
            **(extra or {}),
            **(
                await resolve_task_files(self.s, data.inputs, data.outputs)
                if data.inputs or data.outputs
                else {}
            ),
            **await self._secret_refs(data, principal),
            **({"pids_limit": data.resources.pids_limit} if data.resources.pids_limit else {}),
            **host_mount_request(data.mounts, data.workspace),
        }
        values = {
            "id": uuid.uuid4(),
            "name": data.name or shlex.join(argv)[:200],
            "owner_id": principal.user_id,
            "state": "pending",
            "code_repo_url": data.code_repo_url,
            "code_commit_id": data.code_commit_id,
            "env_repo_url": data.env_repo_url,
            "env_commit_id": data.env_commit_id,
            "dockerfile_path": data.dockerfile_path,
            "command": argv,
            "env": dict(data.env),
            "cpus": data.resources.cpus,
            "memory_mb": data.resources.memory_mb,
            "gpus": data.resources.gpus,
            "labels": dict(data.resources.labels),
            "gpu_model": data.resources.gpu_model,
            "gpu_memory_mb": data.resources.gpu_memory_mb,
            "expected_duration_s": data.expected_duration_s,
            "timeout_s": data.timeout_s,
            "priority": data.priority,
            "account": await self._account(data, principal),
            "max_attempts": data.max_attempts,
            "retry_on_failure": data.retry_on_failure,
            "extra": {**extra, **({"extensions": data.extensions} if data.extensions else {})},
        }
        spec = msgspec.to_builtins(data)
        spec.pop("env", None)  # values may be secrets; the trace records only their names
        spec["env_keys"] = sorted(data.env)
        return values, spec

    async def _account(self, data: schemas.TaskCreate, principal: Principal) -> str | None:
        """The explicit account, or the one plugins derive from the extensions (all agreeing)."""
        named = [("account", data.account)] if data.account else []
        if data.extensions and self.plugins is not None:
            named += await self.plugins.task_account(self.s, data.extensions, principal)
        accounts = {a for _, a in named}
        if len(accounts) > 1:
            raise BadRequest(
                "account: "
                + ", ".join(f"{who} says {a!r}" for who, a in named)
                + "; give one account or none",
                field="account",
            )
        account = next(iter(accounts), None)
        if account is not None and not re.fullmatch(ACCOUNT_PATTERN, account):
            raise BadRequest(f"account: {account!r} is not an account name", field="account")
        if account is not None and len(named) == 1 and named[0][0] == "account":
            # Named by the caller alone (a plugin's account is that plugin's to check).
            await self.check_member(account, principal)
        return account

    async def check_member(self, account: str, principal: Principal) -> None:
        """Refuse (403) an account the principal is not a member of (admins may charge any)."""
        if principal.is_admin or (account, principal.user_id) in self._members_seen:
            return
        if not await is_member(self.s, account, principal.user_id):
            raise Forbidden(
                f"account: you are not a member of account {account!r}; an admin adds members "
                f"(PUT /api/accounts/{account}/members/<user id>)",
                field="account",
            )
        self._members_seen.add((account, principal.user_id))

    async def submit(
        self, data: schemas.TaskCreate, principal: Principal, *, extra: dict[str, Any] | None = None
    ) -> schemas.Task:
        values, spec = await self._prepare(data, principal, extra)
        # One Core INSERT … RETURNING (no ORM object, no re-read after commit).
        row: Any = (await self.s.execute(_INSERT_RETURNING, values)).one()
        if data.extensions:
            if self.plugins is None:
                raise BadRequest("extensions: no plugins are loaded", field="extensions")
            await self.plugins.task_submitting(self.s, row.id, data.extensions, principal)
        await append(self.s, task_event(row.id, "task.submitted", principal.actor, spec=spec))
        await self.s.commit()
        return task_out(row, principal.username, [])

    async def submit_queued(
        self, data: schemas.TaskCreate, principal: Principal, queue: SubmitQueue
    ) -> schemas.Task:
        """``submit`` through the process's ``SubmitQueue`` (one transaction for the submits
        that arrive together). A task with extensions is submitted alone: plugin hooks write in
        its own transaction."""
        if data.extensions:
            task = await self.submit(data, principal)
            queue.wake()
            return task
        values, spec = await self._prepare(data, principal)
        if self.opened is not None and self.opened.in_transaction():
            await self.opened.rollback()  # the checks' reads end here, not after the queued write
        event = task_event(values["id"], "task.submitted", principal.actor, spec=spec)
        return task_out(await queue.submit(values, event), principal.username, [])

    async def submit_many(
        self,
        batch: Sequence[schemas.TaskCreate | UnideskError],
        principal: Principal,
        *,
        commit: bool = True,
    ) -> builtins.list[uuid.UUID]:
        """Check every submission, then create them all in one transaction (one multi-row
        INSERT, one INSERT of their events, one NOTIFY), or none: a BadRequest lists every bad
        index. ``batch`` items that are errors already (a body that did not decode) are bad
        indices too. ``commit=False`` leaves the transaction to the caller."""
        prepared: builtins.list[tuple[dict[str, Any], dict[str, Any]]] = []
        errors: builtins.list[dict[str, Any]] = []
        for i, data in enumerate(batch):
            try:
                if isinstance(data, UnideskError):
                    raise data
                if data.extensions and self.plugins is None:
                    raise BadRequest("extensions: no plugins are loaded", field="extensions")
                prepared.append(await self._prepare(data, principal))
            except UnideskError as exc:
                if exc.status >= 500:
                    raise
                field = exc.context.get("field")
                errors.append(
                    {"index": i, "detail": exc.detail, **({"field": field} if field else {})}
                )
        if errors:
            raise BadRequest(
                f"{len(errors)} of {len(batch)} tasks are invalid (first at index "
                f"{errors[0]['index']}: {errors[0]['detail']}); nothing was submitted",
                errors=errors,
            )
        if not prepared:
            return []
        # Core executemany (no RETURNING): psycopg pipelines one prepared INSERT per row.
        await self.s.execute(insert(_TASK_TABLE), [values for values, _ in prepared])
        for (values, _), data in zip(prepared, batch, strict=True):
            if isinstance(data, schemas.TaskCreate) and data.extensions:
                await self.plugins.task_submitting(self.s, values["id"], data.extensions, principal)
        await append_many(
            self.s,
            [
                task_event(values["id"], "task.submitted", principal.actor, spec=spec)
                for values, spec in prepared
            ],
        )
        if commit:
            await self.s.commit()
        return [values["id"] for values, _ in prepared]

    async def _row(self, task_id: uuid.UUID, *, lock: bool = False) -> TaskRow:
        stmt = select(TaskRow).where(TaskRow.id == task_id)
        if lock:
            stmt = stmt.with_for_update()
        row = await self.s.scalar(stmt)
        if row is None:
            raise NotFound(f"task {task_id} not found", task_id=str(task_id))
        return row

    async def get(self, task_id: uuid.UUID) -> schemas.Task:
        row = await self._row(task_id)
        owner = (
            await self.s.scalar(select(User.username).where(User.id == row.owner_id))
            if row.owner_id
            else None
        )
        attempts = (
            await self.s.scalars(
                select(AttemptRow)
                .where(AttemptRow.task_id == task_id)
                .order_by(AttemptRow.attempt_no)
            )
        ).all()
        ahead = await ranked_ahead(self.s, self.settings, [row])
        return task_out(row, owner, attempts, ahead.get(row.id))

    async def trace(self, task_id: uuid.UUID) -> builtins.list[EventOut]:
        await self._row(task_id)
        rows = await self.s.scalars(
            select(Event)
            .where(Event.subject_type == "task", Event.subject_id == str(task_id))
            .order_by(Event.id)
        )
        return [to_out(e) for e in rows.all()]

    def _check_owner(self, row: TaskRow, principal: Principal, verb: str) -> None:
        require_owner_or_admin(principal, row.owner_id, kind="task", verb=verb, task_id=str(row.id))

    async def request_cancel(
        self, task_id: uuid.UUID, principal: Principal
    ) -> tuple[schemas.Task, AttemptRow | None]:
        """Cancel a task. Pending tasks end at once; a running attempt is returned so the
        caller can tell its node (the task sits in ``cancelling`` until the node reports)."""
        row = await self._row(task_id, lock=True)
        self._check_owner(row, principal, "cancel")
        if row.state in TASK_FINAL_STATES:
            raise Conflict(f"task is already {row.state}", task_id=str(task_id))
        if row.state == "cancelling":
            await self.s.rollback()
            return await self.get(task_id), None
        await append(
            self.s,
            task_event(row.id, "task.cancel_requested", principal.actor, from_state=row.state),
        )
        attempt = None
        if row.state == "pending":
            await move_task(
                self.s,
                row.id,
                from_states=("pending",),
                to="cancelled",
                reason="cancelled",
                message=f"cancelled by {principal.username}",
                event=task_event(row.id, "task.cancelled", principal.actor, reason="cancelled"),
            )
        else:
            attempt = await self.s.scalar(
                select(AttemptRow).where(
                    AttemptRow.task_id == row.id, AttemptRow.attempt_no == row.attempt_count
                )
            )
            node = (
                (
                    await self.s.execute(
                        select(NodeRow.state, NodeRow.connection_id).where(
                            NodeRow.id == attempt.node_id
                        )
                    )
                ).first()
                if attempt and attempt.node_id
                else None
            )
            if (
                attempt is None
                or node is None
                or node.state != "online"
                or node.connection_id is None
            ):
                # Nobody can stop it: the node is offline or its socket is gone, so the task ends
                # now (if the node comes back still running it, reconnect's reconcile kills it).
                if attempt is not None:
                    await move_attempt(
                        self.s,
                        row.id,
                        attempt.attempt_no,
                        from_states=ATTEMPT_ACTIVE_STATES,
                        to="cancelled",
                        reason="cancelled",
                        message="node offline at cancel",
                    )
                await move_task(
                    self.s,
                    row.id,
                    from_states=(row.state,),
                    to="cancelled",
                    reason="cancelled",
                    message=f"cancelled by {principal.username} (node offline)",
                    event=task_event(
                        row.id,
                        "task.cancelled",
                        principal.actor,
                        reason="cancelled",
                        attempt_no=row.attempt_count,
                        node_offline=True,
                    ),
                )
                attempt = None
            else:
                await move_task(
                    self.s,
                    row.id,
                    from_states=(row.state,),
                    to="cancelling",
                    event=task_event(
                        row.id,
                        "task.cancelling",
                        principal.actor,
                        attempt_no=row.attempt_count,
                        node_id=str(attempt.node_id),
                    ),
                )
        await self.s.commit()
        return await self.get(task_id), attempt

    async def retry(self, task_id: uuid.UUID, principal: Principal) -> schemas.Task:
        """Submit a new task with the same spec as an existing one."""
        old = await self._row(task_id)
        self._check_owner(old, principal, "retry")
        if old.extra.get("kind") == "host.ssh":
            raise BadRequest(
                "host.ssh maintenance tasks are never retried; request the operation again on its "
                "node"
            )
        data = schemas.TaskCreate(
            name=old.name,
            code_repo_url=old.code_repo_url,
            code_commit_id=old.code_commit_id,
            env_repo_url=old.env_repo_url,
            env_commit_id=old.env_commit_id,
            dockerfile_path=old.dockerfile_path,
            command=list(old.command),
            env=dict(old.env),
            resources=schemas.ResourceRequest(**msgspec.structs.asdict(_resources(old))),
            timeout_s=old.timeout_s,
            expected_duration_s=old.expected_duration_s,
            priority=old.priority,
            account=old.account,
            max_attempts=old.max_attempts,
            retry_on_failure=old.retry_on_failure,
            extensions=dict(old.extra.get("extensions") or {}),
        )
        refs = old.extra.get("secrets") or {}
        creds = old.extra.get("credentials") or {}
        data.secrets = {env: r["ref"] for env, r in refs.items()}
        data.credentials = schemas.Credentials(
            code_repo=(creds.get("code_repo") or {}).get("ref"),
            env_repo=(creds.get("env_repo") or {}).get("ref"),
            known_hosts=(creds.get("known_hosts") or {}).get("ref"),
            registries={h: r["ref"] for h, r in (creds.get("registries") or {}).items()},
        )
        # Secret references are re-checked (and re-resolved) for the user who retries.
        kept = {
            k: v for k, v in old.extra.items() if k not in ("extensions", "secrets", "credentials")
        }
        return await self.submit(data, principal, extra={**kept, "retry_of": str(old.id)})
