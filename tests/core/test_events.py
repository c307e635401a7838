"""The control bus: the trigger that refuses state changes without an event, paging, SSE,
subscriptions."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from litestar.testing import AsyncTestClient

from tests.core.conftest import task_body
from unidesk.core.db.engine import libpq_url, make_engine, make_sessionmaker
from unidesk.core.db.tx import in_transaction
from unidesk.core.events import hub as hub_mod
from unidesk.core.events.hub import EventHub, Keepalive
from unidesk.core.events.schemas import EventOut
from unidesk.core.events.writer import NewEvent, append

# --- the database rule: no state change without its event ---------------------------------


async def _a_task(client: AsyncTestClient, headers: dict[str, str]) -> str:
    r = await client.post("/api/tasks", json=task_body(), headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def test_state_update_without_event_fails_at_commit(
    client: AsyncTestClient, admin_headers: dict[str, str], database_url: str
) -> None:
    task_id = await _a_task(client, admin_headers)
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute(
            "UPDATE tasks SET state = 'running' WHERE id = %s", (task_id,)
        )  # accepted until commit (deferred)
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="without an event"):
            conn.commit()
    with psycopg.connect(libpq_url(database_url)) as conn:
        assert (
            conn.execute("SELECT state FROM tasks WHERE id = %s", (task_id,)).fetchone()[0]
            == "pending"
        )


async def test_event_about_another_subject_does_not_count(
    client: AsyncTestClient, admin_headers: dict[str, str], database_url: str
) -> None:
    task_id = await _a_task(client, admin_headers)
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute(
            "INSERT INTO events (kind, subject_type, subject_id, actor) VALUES ('task.note', "
            "'task', 'someone-else', 'test')"
        )
        conn.execute("UPDATE tasks SET state = 'failed' WHERE id = %s", (task_id,))
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation):
            conn.commit()


async def test_state_update_with_event_commits(
    client: AsyncTestClient, admin_headers: dict[str, str], database_url: str
) -> None:
    task_id = await _a_task(client, admin_headers)
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute("UPDATE tasks SET state = 'failed' WHERE id = %s", (task_id,))
        conn.execute(
            "INSERT INTO events (kind, subject_type, subject_id, actor) VALUES ('task.failed', "
            "'task', %s, 'test')",
            (task_id,),
        )
        conn.commit()
    r = await client.get(f"/api/tasks/{task_id}", headers=admin_headers)
    assert r.json()["state"] == "failed"


async def test_non_state_update_needs_no_event(
    client: AsyncTestClient, admin_headers: dict[str, str], database_url: str
) -> None:
    task_id = await _a_task(client, admin_headers)
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute("UPDATE tasks SET priority = 5 WHERE id = %s", (task_id,))
        conn.commit()


async def test_inserting_a_task_without_event_fails(database_url: str) -> None:
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute(
            "INSERT INTO tasks (id, name, state, code_repo_url, code_commit_id, env_repo_url, "
            "env_commit_id, dockerfile_path,"
            " command, env, cpus, memory_mb, gpus, labels, timeout_s, priority, max_attempts, "
            "retry_on_failure, extra, attempt_count)"
            " VALUES (gen_random_uuid(), 'x', 'pending', 'https://h/r', %s, 'https://h/e', %s, "
            "'Dockerfile', '[\"true\"]',"
            " '{}', 1, 512, 0, '{}', 60, 0, 1, false, '{}', 0)",
            ("a" * 40, "a" * 40),
        )
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation):
            conn.commit()
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 0


# --- GET /api/events ------------------------------------------------------------------------


async def test_events_paging_covers_every_event_once(
    client: AsyncTestClient, admin_headers: dict[str, str], database_url: str
) -> None:
    for _ in range(4):
        await _a_task(client, admin_headers)
    with psycopg.connect(libpq_url(database_url)) as conn:
        all_ids = [r[0] for r in conn.execute("SELECT id FROM events ORDER BY id")]
    assert len(all_ids) >= 5
    seen: list[int] = []
    after = 0
    for _ in range(50):
        r = await client.get(
            "/api/events", params={"after": after, "limit": 2}, headers=admin_headers
        )
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 2
        if not page["items"]:
            assert page["last_id"] == after
            break
        seen += [e["id"] for e in page["items"]]
        after = page["last_id"]
    assert seen == all_ids

    r = await client.get("/api/events", params={"kind": "task.submitted"}, headers=admin_headers)
    items = r.json()["items"]
    assert len(items) == 4 and all(
        e["kind"] == "task.submitted" and e["subject_type"] == "task" for e in items
    )
    one = items[0]["subject_id"]
    r = await client.get(
        "/api/events", params={"subject_type": "task", "subject_id": one}, headers=admin_headers
    )
    assert [e["subject_id"] for e in r.json()["items"]] == [one]


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 1001}, {"after": -1}, {"limit": "ten"}, {"after": "x"}]
)
async def test_events_bad_query_is_400(
    client: AsyncTestClient, admin_headers: dict[str, str], params: dict[str, Any]
) -> None:
    r = await client.get("/api/events", params=params, headers=admin_headers)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_events_need_auth(client: AsyncTestClient) -> None:
    assert (await client.get("/api/events")).status_code == 401
    assert (await client.get("/api/events/stream")).status_code == 401


# --- the SSE stream against a real server process --------------------------------------------


def _sse_events(resp: httpx.Response) -> Iterator[dict[str, str]]:
    """Parse a text/event-stream into dicts of its fields, one per event."""
    event: dict[str, str] = {}
    for line in resp.iter_lines():
        if not line:
            if event:
                yield event
            event = {}
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        event[key] = value[1:] if value.startswith(" ") else value


def _read_until(events: Iterator[dict[str, str]], done: Any) -> list[dict[str, str]]:
    """Events (hello skipped) up to and including the first one for which ``done(ev)`` holds."""
    got = []
    for ev in events:
        if ev.get("event") == "hello":
            continue
        got.append(ev)
        if done(ev):
            break
    return got


def _submit(api: httpx.Client, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        r = api.post("/api/tasks", json=task_body())
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids


def _db_ids(api: httpx.Client, after: int, until: int) -> list[int]:
    items = api.get("/api/events", params={"after": after, "limit": 1000}).json()["items"]
    return [e["id"] for e in items if e["id"] <= until]


def test_sse_delivers_new_events_and_resumes_without_gaps(live_server: Any) -> None:
    token = live_server.token()
    headers = {"Authorization": f"Bearer {token}"}
    with (
        live_server.api(token) as api,
        httpx.Client(base_url=live_server.url, headers=headers, timeout=httpx.Timeout(15.0)) as sse,
    ):
        with sse.stream("GET", "/api/events/stream") as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            events = _sse_events(resp)
            hello = next(events)
            assert hello["event"] == "hello"
            cursor = json.loads(hello["data"])["cursor"]
            submitted = _submit(api, 3)
            first = _read_until(
                events,
                lambda ev: (
                    ev["event"] == "task.submitted"
                    and json.loads(ev["data"])["subject_id"] == submitted[-1]
                ),
            )
        first_ids = [int(e["id"]) for e in first]
        assert first_ids == _db_ids(api, cursor, first_ids[-1]), (
            "the stream carries exactly the committed events, in order"
        )
        assert [
            json.loads(e["data"])["subject_id"] for e in first if e["event"] == "task.submitted"
        ] == submitted
        for e in first:
            assert json.loads(e["data"])["kind"] == e["event"]

        # While disconnected, more happens; resuming by Last-Event-ID replays exactly what was
        # missed.
        later = _submit(api, 2)
        api.post(f"/api/tasks/{later[0]}/cancel").raise_for_status()
        last_seen = first_ids[-1]
        with sse.stream(
            "GET", "/api/events/stream", headers={"Last-Event-ID": str(last_seen)}
        ) as resp:
            replay = _read_until(_sse_events(resp), lambda ev: ev["event"] == "task.cancelled")
        replay_ids = [int(e["id"]) for e in replay]
        assert replay_ids == _db_ids(api, last_seen, replay_ids[-1])
        kinds = [e["event"] for e in replay]
        assert kinds.count("task.submitted") == 2 and kinds.index(
            "task.cancel_requested"
        ) < kinds.index("task.cancelled")

        # The `after` query parameter resumes the same way.
        with sse.stream("GET", "/api/events/stream", params={"after": first_ids[0]}) as resp:
            replay2 = _read_until(_sse_events(resp), lambda ev: int(ev["id"]) >= replay_ids[-1])
        assert [int(e["id"]) for e in replay2] == _db_ids(api, first_ids[0], replay_ids[-1])


def test_sse_bad_last_event_id_is_400(live_server: Any) -> None:
    with live_server.api() as api:
        r = api.get("/api/events/stream", headers={"Last-Event-ID": "not-a-number"})
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")


def test_sse_quiet_stream_writes_keepalive_comments(live_server_factory: Any) -> None:
    """hello names the keepalive interval; while nothing happens a ``: ping`` comment comes
    that often (so a browser knows a stalled server from a quiet one); parsers skip it."""
    server = live_server_factory(event_stream_keepalive_s="0.5")
    with (
        httpx.Client(
            base_url=server.url,
            headers={"Authorization": f"Bearer {server.token()}"},
            timeout=httpx.Timeout(15.0),
        ) as sse,
        sse.stream("GET", "/api/events/stream") as resp,
    ):
        lines = resp.iter_lines()
        assert next(lines) == "event: hello"
        hello = json.loads(next(lines).removeprefix("data: "))
        assert hello["keepalive_s"] == 0.5
        pings = 0
        for line in itertools.islice(lines, 40):
            assert not line.startswith(("event:", "id:")), f"an event on a quiet stream: {line}"
            pings += line == ": ping"
            if pings == 3:
                break
        assert pings == 3


# --- EventHub.subscribe: in order across concurrent writers ---------------------------------


async def test_subscribe_in_order_across_concurrent_writers(database_url: str) -> None:
    engine = make_engine(database_url, 8)
    sessions = make_sessionmaker(engine)
    hub = EventHub(libpq_url(database_url), sessions)
    await hub.start()
    try:
        start_cursor = hub.cursor
        received: list[int] = []
        writers, per_writer = 6, 15
        total = writers * per_writer
        done = asyncio.Event()

        async def consume() -> None:
            async for ev in hub.subscribe(start_cursor):
                if ev.kind == "test.concurrent":
                    received.append(ev.id)
                if len(received) == total:
                    done.set()
                    return

        consumer = asyncio.create_task(consume())

        committed: list[int] = []

        async def writer(w: int) -> None:
            rng = random.Random(w)
            for i in range(per_writer):

                async def work(s: Any, i: int = i) -> int:
                    eid = await append(
                        s,
                        NewEvent(
                            kind="test.concurrent",
                            subject_type="test",
                            subject_id=f"{w}-{i}",
                            actor="test",
                        ),
                    )
                    await asyncio.sleep(rng.uniform(0, 0.05))  # commit out of id order
                    return eid

                committed.append(await in_transaction(sessions, work))

        await asyncio.gather(*(writer(w) for w in range(writers)))
        await asyncio.wait_for(done.wait(), timeout=30)
        await asyncio.wait_for(consumer, timeout=5)
        assert received == sorted(committed), "every committed event once, in id order"
    finally:
        await hub.stop()
        await engine.dispose()


async def test_rolled_back_event_does_not_stall_delivery(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_mod, "GAP_TIMEOUT_S", 0.5)
    engine = make_engine(database_url, 4)
    sessions = make_sessionmaker(engine)
    hub = EventHub(libpq_url(database_url), sessions)
    await hub.start()
    try:
        got: list[str] = []
        sub = hub.subscribe(hub.cursor)

        async with sessions() as s:  # takes an id, then rolls back: a permanent gap
            await append(
                s, NewEvent(kind="test.lost", subject_type="test", subject_id="x", actor="test")
            )
            await s.rollback()

        async def after_gap(s: Any) -> int:
            return await append(
                s,
                NewEvent(kind="test.after_gap", subject_type="test", subject_id="y", actor="test"),
            )

        await in_transaction(sessions, after_gap)

        async def first() -> None:
            async for ev in sub:
                got.append(ev.kind)
                return

        await asyncio.wait_for(first(), timeout=10)
        assert got == ["test.after_gap"]
    finally:
        await hub.stop()
        await engine.dispose()


async def test_listener_receives_batches_in_order_and_survives_a_failing_listener(
    database_url: str,
) -> None:
    engine = make_engine(database_url, 4)
    sessions = make_sessionmaker(engine)
    hub = EventHub(libpq_url(database_url), sessions)
    seen: list[int] = []
    ready = threading.Event()

    async def broken(_events: Any) -> None:
        raise RuntimeError("listener bug")

    async def good(events: Any) -> None:
        seen.extend(e.id for e in events if e.kind == "test.listen")
        if len(seen) >= 5:
            ready.set()

    hub.add_listener("broken", broken)
    hub.add_listener("good", good)
    await hub.start()
    try:
        ids = []
        for i in range(5):

            async def work(s: Any, i: int = i) -> int:
                return await append(
                    s,
                    NewEvent(
                        kind="test.listen", subject_type="test", subject_id=str(i), actor="test"
                    ),
                )

            ids.append(await in_transaction(sessions, work))
        for _ in range(100):
            if ready.is_set():
                break
            await asyncio.sleep(0.1)
        assert seen == ids
    finally:
        await hub.stop()
        await engine.dispose()


async def test_stop_returns_while_events_flow(database_url: str) -> None:
    """Shutdown must not hang when a wake-up races the cancel (wait_for on 3.11 could swallow
    it)."""
    engine = make_engine(database_url, 4)
    sessions = make_sessionmaker(engine)
    try:
        for cycle in range(8):
            hub = EventHub(libpq_url(database_url), sessions)
            await hub.start()
            stop_writing = asyncio.Event()

            async def write_burst(
                stop_writing: asyncio.Event = stop_writing, hub: EventHub = hub
            ) -> None:
                n = 0
                while not stop_writing.is_set() and n < 200:

                    async def work(s: Any, n: int = n) -> int:
                        return await append(
                            s,
                            NewEvent(
                                kind="test.burst",
                                subject_type="test",
                                subject_id=str(n),
                                actor="test",
                            ),
                        )

                    await in_transaction(sessions, work)
                    hub._wake.set()
                    n += 1

            writer = asyncio.create_task(write_burst())
            await asyncio.sleep(0.05 * (cycle % 4))
            await asyncio.wait_for(hub.stop(), timeout=10)
            stop_writing.set()
            await asyncio.wait_for(writer, timeout=10)
    finally:
        await engine.dispose()


async def test_keepalive_only_where_asked_and_only_while_quiet(database_url: str) -> None:
    engine = make_engine(database_url, 4)
    sessions = make_sessionmaker(engine)
    hub = EventHub(libpq_url(database_url), sessions, keepalive_s=0.2)
    await hub.start()
    try:
        pinged = hub.subscribe_with_keepalive(hub.cursor)
        plain = hub.subscribe(hub.cursor)
        assert isinstance(await asyncio.wait_for(anext(pinged), 5), Keepalive)

        async def work(s: Any) -> int:
            return await append(
                s, NewEvent(kind="test.after_ping", subject_type="test", subject_id="p", actor="t")
            )

        await asyncio.sleep(0.5)  # keepalives queue up meanwhile: only one is kept
        eid = await in_transaction(sessions, work)
        got = []
        while not got or isinstance(got[-1], Keepalive):
            got.append(await asyncio.wait_for(anext(pinged), 5))
        assert isinstance(got[-1], EventOut) and got[-1].id == eid and len(got) <= 2, got
        # The plain subscription never sees a keepalive, however long it waited.
        assert (await asyncio.wait_for(anext(plain), 5)).id == eid
    finally:
        await hub.stop()
        await engine.dispose()
