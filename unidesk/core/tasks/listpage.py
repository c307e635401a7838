"""The task list page straight from rows: no ORM objects, no JSON decoded and encoded again.

A page of 50 tasks decoded into Python (six JSONB columns parsed per row, a ``Task`` struct
per row built by ``task_out``) cost ~3 ms of server CPU. Here one statement returns each row's
columns in the order of ``schemas.Task``'s fields, JSONB columns as their text (spliced into
the answer as ``msgspec.Raw``, never parsed), ids as text, the latest attempt's start and node
joined in; the row becomes an ``_Item`` (``Task``'s field names in ``Task``'s order) and the
page is encoded by msgspec in one call. The answer is ``schemas.TaskPage``'s JSON: JSONB values
are written as PostgreSQL prints them (``{"SEED": "1"}``: the same JSON with other spacing).
Statements run on the driver connection (``Reads.tuples``), compiled once per query shape.

(PostgreSQL writing each row's JSON itself, ``json_build_object``/``row_to_json``, measured
slower in all: ~1.2 ms of database CPU a page against ~0.2 ms for the plain columns.)
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from typing import Any, Literal

import msgspec
from sqlalchemy import Text, cast, literal_column, select, true
from sqlalchemy.engine import Dialect

from unidesk.core.auth.policy import allowed_actions
from unidesk.core.auth.schemas import Principal
from unidesk.core.tasks import listing
from unidesk.core.tasks.models import AttemptRow

__all__ = ["SEQ", "SORT_KEY", "encode_page", "page_sql"]

_EMPTY = msgspec.Raw(b"{}")


class _Resources(msgspec.Struct):
    cpus: float
    memory_mb: int
    gpus: int
    labels: msgspec.Raw
    gpu_model: str | None
    gpu_memory_mb: int | None
    pids_limit: Any


class _Item(msgspec.Struct):
    """``schemas.Task`` as the list writes it (same names, same order; JSONB as Raw)."""

    id: str
    name: str
    state: str
    reason: str | None
    message: str | None
    unschedulable_reason: str | None
    owner_id: str | None
    owner: str | None
    code_repo_url: str
    code_commit_id: str
    env_repo_url: str
    env_commit_id: str
    dockerfile_path: str
    command: msgspec.Raw
    env: msgspec.Raw
    resources: _Resources
    timeout_s: int
    expected_duration_s: int | None
    priority: int
    account: str | None
    max_attempts: int
    retry_on_failure: bool
    attempt_count: int
    pending_reason: str | None
    pending_detail: Any
    ranked_ahead: int | None
    not_before: Any
    avoid_node_ids: msgspec.Raw
    extra: msgspec.Raw
    created_at: Any
    updated_at: Any
    finished_at: Any
    started_at: Any
    node_name: str | None
    attempts: None
    secrets: msgspec.Raw
    allowed_actions: list[str]


class _Page(msgspec.Struct):
    items: list[_Item]
    next_cursor: str | None
    prev_cursor: str | None
    total: int | None


def _text(col: Any) -> Any:
    return cast(col, Text)


@functools.cache
def page_sql(
    dialect: Dialect,
    sort: str,
    states: bool,
    owner: bool,
    q: bool,
    node: bool,
    cursor: Literal["", "after", "before"],
    null_cursor: bool,
    offset: bool,
) -> tuple[str, dict[str, Any]]:
    """``listing.list_statement``'s page (same rows, same order) as the SQL text of a statement
    whose rows ``encode_page`` reads (psycopg ``%(name)s`` parameters), and the values of the
    parameters that are constants (e.g. a subquery's ``LIMIT 1``)."""
    p = listing.list_statement(sort, states, owner, q, node, cursor, null_cursor, offset).subquery(
        "p"
    )
    la = (
        select(AttemptRow.started_at, AttemptRow.node_name)
        .where(AttemptRow.task_id == p.c.id, p.c.attempt_count > literal_column("0"))
        .order_by(AttemptRow.attempt_no.desc())
        .limit(literal_column("1"))
        .lateral("la")
    )
    pending = "p.state = 'pending'"
    cols = [
        _text(p.c.id),
        p.c.name,
        p.c.state,
        p.c.reason,
        p.c.message,
        p.c.unschedulable_reason,
        _text(p.c.owner_id),
        p.c.username,
        p.c.code_repo_url,
        p.c.code_commit_id,
        p.c.env_repo_url,
        p.c.env_commit_id,
        p.c.dockerfile_path,
        _text(p.c.command),
        _text(p.c.env),
        p.c.cpus,
        p.c.memory_mb,
        p.c.gpus,
        _text(p.c.labels),
        p.c.gpu_model,
        p.c.gpu_memory_mb,
        literal_column("(p.extra -> 'pids_limit')::text"),
        p.c.timeout_s,
        p.c.expected_duration_s,
        p.c.priority,
        p.c.account,
        p.c.max_attempts,
        p.c.retry_on_failure,
        p.c.attempt_count,
        literal_column(f"CASE WHEN {pending} THEN p.pending_reason END"),
        literal_column(
            f"CASE WHEN {pending} THEN coalesce(p.pending_detail, '{{}}'::jsonb)::text END"
        ),
        literal_column(f"CASE WHEN {pending} THEN p.not_before END"),
        _text(p.c.avoid_node_ids),
        _text(p.c.extra),
        p.c.created_at,
        p.c.updated_at,
        p.c.finished_at,
        la.c.started_at,
        literal_column("nullif(la.node_name, '')"),
        literal_column(  # {name: ref} of extra.secrets; NULL (an empty object) for most tasks
            "CASE WHEN jsonb_typeof(p.extra -> 'secrets') = 'object'"
            " AND p.extra -> 'secrets' <> '{}'::jsonb THEN (SELECT jsonb_object_agg(s.key,"
            " s.value -> 'ref') FROM jsonb_each(p.extra -> 'secrets') AS s)::text END"
        ),
        p.c.seq,
        p.c.sort_key,
    ]
    down = sort.startswith("-") != (cursor == "before")
    key, nullable = listing.sort_key_of(sort)
    order: list[Any] = []
    if key is not None:
        if nullable:
            isnull = p.c.sort_key.is_(None)
            order.append(isnull.desc() if cursor == "before" else isnull)
        order.append(p.c.sort_key.desc() if down else p.c.sort_key.asc())
    order.append(p.c.seq.desc() if down else p.c.seq.asc())
    stmt = select(*cols).select_from(p.outerjoin(la, true())).order_by(*order)
    compiled = stmt.compile(dialect=dialect)
    constants = {k: v for k, v in compiled.params.items() if v is not None}
    return str(compiled), constants


SEQ = -2
SORT_KEY = -1
"""Positions in a ``page_sql`` row of the values a cursor is made from."""


class _Boundary:
    """A row's ``seq`` and ``sort_key`` by name, for ``listing.encode_cursor``."""

    __slots__ = ("seq", "sort_key")

    def __init__(self, row: Sequence[Any]) -> None:
        self.seq = row[SEQ]
        self.sort_key = row[SORT_KEY]


def boundary(row: Sequence[Any]) -> _Boundary:
    return _Boundary(row)


def encode_page(
    rows: Sequence[Sequence[Any]],
    principal: Principal,
    ranked: dict[str, int],
    next_cursor: str | None,
    prev_cursor: str | None,
    total: int | None,
) -> bytes:
    """The ``TaskPage`` JSON of ``page_sql`` rows (in page order); ``ranked``: tasks ranked
    ahead by task id (text)."""
    actions: dict[str | None, list[str]] = {}
    items = []
    raw = msgspec.Raw
    for (
        id_, name, state, reason, message, unschedulable, owner_id, owner, code_url,
        code_commit, env_url, env_commit, dockerfile, command, env, cpus, memory_mb, gpus,
        labels, gpu_model, gpu_memory_mb, pids_limit, timeout_s, expected, priority, account,
        max_attempts, retry, attempt_count, pending_reason, pending_detail, not_before, avoid,
        extra, created_at, updated_at, finished_at, started_at, node_name, secrets, _, _,
    ) in rows:  # fmt: skip
        acts = actions.get(owner_id)
        if acts is None:
            owner_uuid = uuid.UUID(owner_id) if owner_id else None
            acts = actions[owner_id] = allowed_actions(principal, "task", owner_uuid)
        resources = _Resources(
            cpus, memory_mb, gpus, raw(labels), gpu_model, gpu_memory_mb,
            None if pids_limit is None else raw(pids_limit),
        )  # fmt: skip
        item = _Item(
                id_, name, state, reason, message, unschedulable, owner_id, owner, code_url,
                code_commit, env_url, env_commit, dockerfile, raw(command), raw(env), resources,
                timeout_s, expected, priority, account, max_attempts, retry, attempt_count,
                pending_reason, None if pending_detail is None else raw(pending_detail),
                ranked.get(id_), not_before, raw(avoid), raw(extra), created_at, updated_at,
                finished_at, started_at, node_name, None,
                _EMPTY if secrets is None else raw(secrets), acts,
        )  # fmt: skip
        items.append(item)
    return msgspec.json.encode(_Page(items, next_cursor, prev_cursor, total))
