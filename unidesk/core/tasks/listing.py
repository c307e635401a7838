"""The task list's order and keyset cursors: ``sort=`` keys, and the statements for each."""

from __future__ import annotations

import base64
import functools
from datetime import datetime
from typing import Any, Literal, cast, get_args

import msgspec
from sqlalchemy import String, Table, and_, any_, bindparam, func, or_, select
from sqlalchemy.dialects.postgresql import ARRAY

from unidesk.core.auth.models import User
from unidesk.core.tasks.models import AttemptRow, TaskRow
from unidesk.errors import BadRequest

__all__ = [
    "DEFAULT_SORT",
    "TASK_SORTS",
    "Cursor",
    "TaskSort",
    "cursor_params",
    "decode_cursor",
    "encode_cursor",
    "list_statement",
    "sort_key_of",
    "sort_value",
]

TaskSort = Literal[
    "created_at",
    "-created_at",
    "name",
    "-name",
    "state",
    "-state",
    "priority",
    "-priority",
    "started_at",
    "-started_at",
    "finished_at",
    "-finished_at",
]
"""A list order: a key, descending with a leading ``-``; ties are broken by submission order
(``seq``, the same direction). Tasks with no value (never started, not finished) come last
either way."""
TASK_SORTS: tuple[str, ...] = get_args(TaskSort)
DEFAULT_SORT = "-created_at"

_TASK_TABLE = cast(Table, TaskRow.__table__)

_LATEST_START = (
    select(AttemptRow.started_at)
    .where(AttemptRow.task_id == TaskRow.id)
    .order_by(AttemptRow.attempt_no.desc())
    .limit(1)
    .scalar_subquery()
)

# key -> (expression, nullable). created_at orders by seq alone: rows are numbered in the order
# they are inserted, so the newest-first default reads the seq index and nothing else.
_KEYS: dict[str, tuple[Any, bool]] = {
    "created_at": (None, False),
    "name": (func.lower(TaskRow.name), False),
    "state": (TaskRow.state, False),
    "priority": (TaskRow.priority, False),
    "started_at": (_LATEST_START, True),
    "finished_at": (TaskRow.finished_at, True),
}


def sort_key_of(sort: str) -> tuple[Any, bool]:
    """The SQL expression ``sort`` orders by (None: ``seq`` alone) and whether it may be NULL."""
    return _KEYS[sort.lstrip("-")]


class Cursor(msgspec.Struct, frozen=True, array_like=True):
    """Where a page ends: the sort it was made for, the boundary row's key and seq, and whether
    it pages backwards (to the rows before the boundary)."""

    sort: str
    value: str | int | None
    seq: int
    before: bool = False


def sort_value(sort: str, row: Any) -> str | int | None:
    """The boundary value a cursor stores for ``row`` (a list row: columns + ``owner`` and
    ``sort_key``)."""
    key = sort.lstrip("-")
    if key == "created_at":
        return None
    v = row.sort_key
    return v.isoformat() if isinstance(v, datetime) else v


def encode_cursor(sort: str, row: Any, *, before: bool = False) -> str:
    if sort == DEFAULT_SORT and not before:
        raw = f"s:{row.seq}".encode()  # the cursor this API has always returned
    else:
        raw = b"k:" + msgspec.json.encode(Cursor(sort, sort_value(sort, row), row.seq, before))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> Cursor:
    """A cursor from this API for this ``sort``; a 400 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kind, _, value = raw.partition(b":")
        if kind == b"s":
            c = Cursor(DEFAULT_SORT, None, int(value.decode()))
        elif kind == b"k":
            c = msgspec.json.decode(value, type=Cursor)
        else:
            raise ValueError
    except (ValueError, UnicodeDecodeError, msgspec.DecodeError):
        raise BadRequest("cursor: not a cursor returned by this API", field="cursor") from None
    if c.sort != sort:
        raise BadRequest(
            f"cursor: made for sort={c.sort}, not sort={sort}; start again from the first page",
            field="cursor",
        )
    key = sort.lstrip("-")
    expr, nullable = _KEYS[key]
    ok = (
        (expr is None and c.value is None)
        or (key in ("name", "state") and isinstance(c.value, str))
        or (key == "priority" and isinstance(c.value, int))
        or (nullable and (c.value is None or _is_time(c.value)))
    )
    if not ok:
        raise BadRequest("cursor: not a cursor returned by this API", field="cursor")
    return c


def _is_time(v: object) -> bool:
    if not isinstance(v, str):
        return False
    try:
        datetime.fromisoformat(v)
    except ValueError:
        return False
    return True


def cursor_params(c: Cursor) -> dict[str, Any]:
    key = c.sort.lstrip("-")
    value: Any = c.value
    if key in ("started_at", "finished_at") and isinstance(value, str):
        value = datetime.fromisoformat(value)
    return {"cursor": c.seq, "cursor_value": value}


def _after(expr: Any, nullable: bool, desc: bool, null_cursor: bool) -> Any:
    """Rows after the cursor row in the order (key asc/desc, nulls last, then seq)."""
    seq: Any = bindparam("cursor")
    val: Any = bindparam("cursor_value")
    seq_after = TaskRow.seq < seq if desc else TaskRow.seq > seq
    if expr is None:
        return seq_after
    if null_cursor:
        return and_(expr.is_(None), seq_after)
    key_after = expr < val if desc else expr > val
    strict = or_(key_after, and_(expr == val, seq_after))
    return or_(expr.is_(None), strict) if nullable else strict


def _before(expr: Any, nullable: bool, desc: bool, null_cursor: bool) -> Any:
    """Rows before the cursor row in the same order."""
    seq: Any = bindparam("cursor")
    val: Any = bindparam("cursor_value")
    seq_before = TaskRow.seq > seq if desc else TaskRow.seq < seq
    if expr is None:
        return seq_before
    if null_cursor:
        return or_(expr.is_not(None), and_(expr.is_(None), seq_before))
    key_before = expr > val if desc else expr < val
    strict = or_(key_before, and_(expr == val, seq_before))
    return and_(expr.is_not(None), strict) if nullable else strict


@functools.cache
def list_statement(
    sort: str,
    states: bool,
    owner: bool,
    q: bool,
    node: bool,
    cursor: Literal["", "after", "before"],
    null_cursor: bool,
    offset: bool,
) -> Any:
    """The list query for one sort, combination of filters and cursor kind, built once
    (values are bound params). A ``before`` page is read in the reverse order: the caller
    reverses its rows."""
    desc = sort.startswith("-")
    expr, nullable = _KEYS[sort.lstrip("-")]
    cols: list[Any] = [*_TASK_TABLE.c, User.username]
    cols.append((expr if expr is not None else TaskRow.seq).label("sort_key"))
    stmt = select(*cols).outerjoin(User, User.id == TaskRow.owner_id)
    stmt = filtered(stmt, states, owner, q, node)
    if cursor == "after":
        stmt = stmt.where(_after(expr, nullable, desc, null_cursor))
    elif cursor == "before":
        stmt = stmt.where(_before(expr, nullable, desc, null_cursor))
    reverse = cursor == "before"
    down = desc != reverse
    order: list[Any] = []
    if expr is not None:
        if nullable:
            isnull = expr.is_(None)
            order.append(isnull.desc() if reverse else isnull)
        order.append(expr.desc() if down else expr.asc())
    order.append(TaskRow.seq.desc() if down else TaskRow.seq.asc())
    stmt = stmt.order_by(*order).limit(bindparam("limit"))
    if offset:
        stmt = stmt.offset(bindparam("offset"))
    return stmt


def filtered(stmt: Any, states: bool, owner: bool, q: bool, node: bool) -> Any:
    """``stmt`` narrowed by the filters that are set (their values are bound params)."""
    if states:
        # = ANY(array): one statement text for any number of states (an expanding IN is
        # rendered per count, so it could not be compiled once and prepared)
        stmt = stmt.where(TaskRow.state == any_(bindparam("states", type_=ARRAY(String))))
    if owner:
        stmt = stmt.where(TaskRow.owner_id == bindparam("owner"))
    if q:
        stmt = stmt.where(TaskRow.name.ilike(bindparam("q"), escape="/"))
    if node:
        stmt = stmt.where(
            TaskRow.id.in_(
                select(AttemptRow.task_id).where(AttemptRow.node_id == bindparam("node"))
            )
        )
    return stmt
