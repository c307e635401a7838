"""The principal cache: bounded lifetime, and revocation effective at once or through events."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import psycopg
import pytest
from litestar.testing import AsyncTestClient

from tests.core.test_auth import bearer, new_token
from unidesk.core.auth.principal_cache import PrincipalCache
from unidesk.core.auth.schemas import Principal
from unidesk.core.db.engine import libpq_url
from unidesk.core.events.schemas import EventOut
from unidesk.core.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A long cache, so a revocation seen in time was seen through the event, not the TTL."""
    return msgspec.structs.replace(settings, auth_cache_s=60)


def principal(user_id: uuid.UUID | None = None) -> Principal:
    return Principal(
        user_id=user_id or uuid.uuid4(), username="ann", role="member", token_id=uuid.uuid4()
    )


def event(kind: str, subject_id: str, **payload: object) -> EventOut:
    return EventOut(
        id=1,
        ts=datetime.now(UTC),
        kind=kind,
        subject_type="user",
        subject_id=subject_id,
        actor="user:admin",
        payload=payload,
    )


def test_entries_live_at_most_ttl_and_never_past_the_token_expiry() -> None:
    cache = PrincipalCache(0.2)
    p = principal()
    cache.put("a", p, None)
    cache.put("b", p, datetime.now(UTC) + timedelta(seconds=0.05))
    cache.put("c", p, datetime.now(UTC) - timedelta(seconds=1))  # already expired: not kept
    assert cache.get("a") == p and cache.get("b") == p and cache.get("c") is None
    time.sleep(0.1)
    assert cache.get("a") == p and cache.get("b") is None
    time.sleep(0.15)
    assert cache.get("a") is None


def test_zero_ttl_disables_and_the_size_is_bounded() -> None:
    assert PrincipalCache(0).get("a") is None
    off = PrincipalCache(0)
    off.put("a", principal(), None)
    assert off.get("a") is None
    small = PrincipalCache(60, max_entries=3)
    for i in range(10):
        small.put(str(i), principal(), None)
    assert len(small._entries) <= 3


async def test_revocation_and_user_change_events_drop_entries() -> None:
    cache = PrincipalCache(60)
    user = uuid.uuid4()
    a, b, other = principal(user), principal(user), principal()
    for key, p in (("a", a), ("b", b), ("o", other)):
        cache.put(key, p, None)
    await cache.on_events([event("api_token.revoked", str(user), token_id=str(a.token_id))])
    assert cache.get("a") is None and cache.get("b") == b
    await cache.on_events([event("user.updated", str(user), role="admin")])
    assert cache.get("b") is None and cache.get("o") == other
    await cache.on_events([event("api_token.revoked", "x", token_id="not-a-uuid")])  # ignored


async def test_revocation_made_by_another_process_is_effective_within_the_bound(
    client: AsyncTestClient, admin_headers: dict[str, str], database_url: str
) -> None:
    created = await new_token(client, admin_headers)
    h = bearer(created["secret"])
    assert (await client.get("/api/tasks", headers=h)).status_code == 200  # now cached
    # Another server process revokes it: the row, its event and the NOTIFY, nothing in this one.
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE id = %s", (created["token"]["id"],)
        )
        event_id = conn.execute(
            "INSERT INTO events (kind, subject_type, subject_id, actor, payload)"
            " VALUES ('api_token.revoked', 'user', %s, 'user:admin', %s) RETURNING id",
            (str(uuid.uuid4()), json.dumps({"token_id": created["token"]["id"]})),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute("SELECT pg_notify('unidesk_events', %s)", (str(event_id),))
    deadline = time.monotonic() + 10  # the cache keeps entries 60 s here: only the event drops it
    status = 200
    while time.monotonic() < deadline and status == 200:
        status = (await client.get("/api/tasks", headers=h)).status_code
        await asyncio.sleep(0.05)
    assert status == 401
