"""Bad input at the provider ingress, sent as raw frames over a real socket: each gets its close
code and reason, changes nothing, and leaves the server serving other nodes."""

from __future__ import annotations

import contextlib
import signal
import time
import uuid

import httpx
import msgspec
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.integration.conftest import events, get_task, node_token, submit, trace_kinds
from tests.integration.raw_agent import RawAgent, closed_with, hello
from unidesk import protocol
from unidesk.gateway_agent.connection import retry_after_of


@pytest.fixture
def server(live_server):  # type: ignore[no-untyped-def]
    return live_server


@pytest.fixture
def api(server):  # type: ignore[no-untyped-def]
    with server.api() as client:
        yield client


async def _still_serving(server, api) -> None:  # type: ignore[no-untyped-def]
    """After a fault: /health answers and a well-behaved node still joins."""
    assert api.get("/health").status_code == 200
    ok = await RawAgent.join(
        server.url,
        node_token(api, f"ok-{uuid.uuid4().hex[:6]}")["secret"],
        f"ok-{uuid.uuid4().hex[:6]}",
    )
    await ok.close()


async def test_garbage_unknown_and_server_only_frames_close_4400(server, api):
    bad_frames = {
        "garbage before hello": (False, b"\xc1\xff not msgpack"),
        "garbage after hello": (True, b"\x00\x01\x02garbage"),
        "unknown type": (True, msgspec.msgpack.encode({"type": "launch_missiles", "x": 1})),
        "server-only dispatch": (
            True,
            protocol.encode(
                protocol.Dispatch(
                    task_id=str(uuid.uuid4()),
                    attempt_no=1,
                    code_repo_url="x",
                    code_commit_id="a" * 40,
                    env_repo_url="x",
                    env_commit_id="a" * 40,
                    dockerfile_path="D",
                    command=["true"],
                )
            ),
        ),
        "server-only welcome": (
            True,
            protocol.encode(
                protocol.Welcome(protocol_version=1, node_id="n", heartbeat_interval_s=1)
            ),
        ),
        "second hello": (True, protocol.encode(hello("again"))),
        "heartbeat as first frame": (False, protocol.encode(protocol.Heartbeat(seq=1))),
        "text frame": (True, '{"type": "heartbeat"}'),
    }
    for what, (after_hello, frame) in bad_frames.items():
        token = node_token(api, f"bad-{len(what)}")["secret"]
        agent = await (
            RawAgent.join(server.url, token, "bad", heartbeat=False)
            if after_hello
            else RawAgent.open(server.url, token)
        )
        await agent.ws.send(frame)
        code, reason = await closed_with(agent.ws)
        assert code == protocol.CLOSE_BAD_FRAME, (what, code, reason)
        assert reason, what
    await _still_serving(server, api)
    assert "Traceback" not in server.log_path.read_text()


async def test_oversized_frames_close_1009(server, api):
    for size in (protocol.MAX_FRAME_BYTES + 1, protocol.MAX_FRAME_BYTES + 512 * 1024):
        agent = await RawAgent.join(
            server.url, node_token(api, f"big-{size}")["secret"], "big", heartbeat=False
        )
        chunk = protocol.LogChunk(
            task_id=str(uuid.uuid4()), attempt_no=1, seq=1, stream="stdout", data="x" * size
        )
        # well past the limit the server's WebSocket layer closes while the frame still arrives
        with contextlib.suppress(ConnectionClosed, ConnectionResetError):
            await agent.ws.send(protocol.encode(chunk))
        code, _ = await closed_with(agent.ws)
        assert code == protocol.CLOSE_TOO_BIG, (size, code)
    await _still_serving(server, api)


async def test_tokens_at_the_ingress_and_on_user_routes(server, api):
    async def refused(token: str | None) -> tuple[int | None, str]:
        agent = await RawAgent.open(server.url, token)
        with contextlib.suppress(ConnectionClosed):
            await agent.ws.send(protocol.encode(hello("nope")))
        return await closed_with(agent.ws)

    created = node_token(api, "tok")
    for token in (
        None,
        "",
        "not-a-token",
        server.token(),
    ):  # missing, empty, wrong, a user's API token
        code, reason = await refused(token)
        assert code == protocol.CLOSE_UNAUTHENTICATED and reason, (token, code)
        assert created["secret"] not in reason
    # A node token is not a user credential.
    r = httpx.get(
        f"{server.url}/api/tasks", headers={"Authorization": f"Bearer {created['secret']}"}
    )
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")

    agent = await RawAgent.join(server.url, created["secret"], "tok")
    assert api.delete(f"/api/node-tokens/{created['token']['id']}").status_code == 204
    revoked_at = time.monotonic()
    code, reason = await closed_with(agent.ws, timeout=10)
    assert code == protocol.CLOSE_REVOKED and "revoked" in reason
    assert (
        time.monotonic() - revoked_at < 0.5 + 1.5
    )  # about one heartbeat interval (0.5 s), plus slack
    assert (await refused(created["secret"]))[0] == protocol.CLOSE_UNAUTHENTICATED
    assert created["secret"] not in server.log_path.read_text()


async def test_incompatible_protocol_version_closes_4426(server, api):
    agent = await RawAgent.open(server.url, node_token(api, "old")["secret"])
    await agent.send(hello("old", protocol_version=protocol.PROTOCOL_VERSION + 1))
    code, reason = await closed_with(agent.ws)
    assert code == protocol.CLOSE_INCOMPATIBLE and "upgrade" in reason
    assert "old" not in {n["name"] for n in api.get("/api/nodes").json()["items"]}


async def test_foreign_and_stale_reports_change_nothing(server, api):
    a = await RawAgent.join(
        server.url, node_token(api, "own")["secret"], "own", labels={"who": "a"}
    )
    b = await RawAgent.join(
        server.url, node_token(api, "foreign")["secret"], "foreign", labels={"who": "b"}
    )
    task = submit(api, "true", resources={"labels": {"who": "a"}})
    dispatch = await a.expect(protocol.Dispatch)
    assert dispatch.task_id == task["id"] and dispatch.attempt_no == 1
    await a.send(protocol.Ack(task_id=task["id"], attempt_no=1))
    await _until(lambda: get_task(api, task["id"])["state"] == "preparing")

    # b reports on a's attempt, and a reports on an attempt that does not exist.
    for msg in (
        protocol.AttemptState(task_id=task["id"], attempt_no=1, phase="exited", exit_code=0),
        protocol.Ack(task_id=task["id"], attempt_no=1),
        protocol.LogChunk(task_id=task["id"], attempt_no=1, seq=1, stream="stdout", data="forged"),
    ):
        await b.send(msg)
    for msg in (
        protocol.Ack(task_id=str(uuid.uuid4()), attempt_no=1),
        protocol.Ack(task_id="not-a-uuid", attempt_no=1),
        protocol.AttemptState(task_id=task["id"], attempt_no=7, phase="exited", exit_code=0),
    ):
        await a.send(msg)
    nodes = {n["name"]: n["id"] for n in api.get("/api/nodes").json()["items"]}
    await _until(
        lambda: (
            len(events(api, "node.foreign_report", nodes["foreign"])) == 3
            and len(events(api, "node.foreign_report", nodes["own"])) == 3
        )
    )
    t = get_task(api, task["id"])
    assert t["state"] == "preparing" and [x["state"] for x in t["attempts"]] == ["preparing"]
    assert api.get(f"/api/tasks/{task['id']}/logs").json()["items"] == []
    assert api.get("/api/tasks").json()["items"].__len__() == 1

    # The real owner finishes it; a duplicate final report afterwards is a recorded no-op.
    await a.send(protocol.AttemptState(task_id=task["id"], attempt_no=1, phase="running"))
    final = protocol.AttemptState(
        task_id=task["id"], attempt_no=1, phase="exited", exit_code=0, reason="succeeded"
    )
    await a.send(final)
    assert (await a.expect(protocol.Ack)).task_id == task["id"]
    await a.send(final)
    assert (await a.expect(protocol.Ack)).task_id == task[
        "id"
    ]  # already final: the agent may forget it
    await _until(lambda: "task.stale_report" in trace_kinds(api, task["id"]))
    kinds = trace_kinds(api, task["id"])
    assert kinds.count("task.exited") == 1 and kinds.count("task.succeeded") == 1
    assert get_task(api, task["id"])["state"] == "succeeded"
    await a.close()
    await b.close()


async def _until(check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_unacked_dispatch_is_redelivered_and_acked_one_is_not(live_server_factory):
    server = live_server_factory(dispatch_ack_timeout_s=1)
    with server.api() as api:
        agent = await RawAgent.join(server.url, node_token(api, "slow")["secret"], "slow")
        task = submit(api, "true")
        first = await agent.expect(protocol.Dispatch)
        again = await agent.expect(
            protocol.Dispatch, timeout=10
        )  # no ack: sent again after the ack timeout
        assert (
            (again.task_id, again.attempt_no)
            == (first.task_id, first.attempt_no)
            == (task["id"], 1)
        )
        await agent.send(protocol.Ack(task_id=task["id"], attempt_no=1))
        await _until(lambda: get_task(api, task["id"])["state"] == "preparing")
        try:
            extra = await agent.expect(protocol.Dispatch, timeout=3)
        except TimeoutError:
            extra = None
        assert extra is None, "an acked dispatch was delivered again"
        await agent.close()


async def test_node_token_last_used_is_written_when_an_agent_connects(server, api):
    created = node_token(api, f"used-{uuid.uuid4().hex[:6]}")
    token_id = created["token"]["id"]

    def listed() -> dict:
        return next(t for t in api.get("/api/node-tokens").json()["items"] if t["id"] == token_id)

    assert listed()["last_used_at"] is None
    agent = await RawAgent.join(server.url, created["secret"], "used")
    try:
        assert listed()["last_used_at"] is not None, "the UI would say 'Last used: never'"
    finally:
        await agent.close()


async def test_a_deeply_nested_frame_is_a_bad_frame(server, api):
    """A metrics item nested past what the decoder recurses into closes the socket 4400 (it
    was taken for 'socket already closed' and dropped without a close code)."""
    a = await RawAgent.join(server.url, node_token(api, "deep")["secret"], "deep")
    frame = protocol.encode(
        protocol.AttemptData(task_id="t", attempt_no=1, channel="metrics", seq=0, items=[{}])
    ).replace(b"\xa5items\x91\x80", b"\xa5items\x91\x81\xa1a" + b"\x91" * 20_000 + b"\x90")
    # (msgpack: items = [{"a": [[[…]]]}], 20,000 arrays deep)
    await a.ws.send(frame)
    code, reason = await closed_with(a.ws)
    assert code == protocol.CLOSE_BAD_FRAME and "nested too deeply" in reason, (code, reason)
    await _still_serving(server, api)
    assert "Traceback" not in server.log_path.read_text()


async def test_nul_characters_in_frames_never_reach_the_database(server, api):
    """PostgreSQL cannot store U+0000: a hello holding one is refused (4400, the field named);
    a task's output, an attempt's message and a metrics item holding one are stored with U+FFFD
    or counted as skipped, and the task finishes as it would without them."""
    bad = await RawAgent.open(server.url, node_token(api, "nul-hello")["secret"])
    await bad.send(hello("nul-hello", hostname="evil\x00host"))
    code, reason = await closed_with(bad.ws)
    assert code == protocol.CLOSE_BAD_FRAME and "hostname" in reason
    assert "nul-hello" not in {n["name"] for n in api.get("/api/nodes").json()["items"]}

    a = await RawAgent.join(server.url, node_token(api, "nul")["secret"], "nul")
    task = submit(api, "true")
    tid = task["id"]
    await a.expect(protocol.Dispatch)
    for msg in (
        protocol.Ack(task_id=tid, attempt_no=1),
        protocol.AttemptState(task_id=tid, attempt_no=1, phase="running"),
        protocol.LogChunk(task_id=tid, attempt_no=1, seq=1, stream="stdout", data="x\x00y\n"),
        protocol.AttemptData(
            task_id=tid,
            attempt_no=1,
            channel="metrics",
            seq=0,
            items=[{"step": 1, "loss": 0.5}, {"step": 2, "note": "a\x00b"}],
        ),
        protocol.AttemptState(
            task_id=tid,
            attempt_no=1,
            phase="exited",
            exit_code=0,
            reason="succeeded",
            message="done\x00",
        ),
    ):
        await a.send(msg)
    await _until(lambda: get_task(api, tid)["state"] == "succeeded")
    logs = api.get(f"/api/tasks/{tid}/logs").json()["items"]
    assert [c["data"] for c in logs] == ["x\ufffdy\n"]
    await a.close()
    await _still_serving(server, api)
    assert "Traceback" not in server.log_path.read_text()


async def test_a_busy_server_refuses_new_agent_sockets_with_503_and_retry_after(
    live_server_factory,
):
    """Past ``ingress_max_waiting`` sockets waiting for registration (0 here: always), a new
    agent socket is refused before the upgrade with 503 and a Retry-After in whole seconds the
    agent honours (not final: it dials again); nothing is registered."""
    server = live_server_factory(ingress_max_waiting=0)
    with server.api() as api:
        token = node_token(api, "busy")["secret"]
        with pytest.raises(InvalidStatus) as info:
            await RawAgent.open(server.url, token)
        response = info.value.response
        assert response.status_code == 503
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        assert b"server busy" in response.body
        assert retry_after_of(info.value) == float(response.headers["Retry-After"])
        assert api.get("/api/nodes").json()["items"] == []
        assert api.get("/health").status_code == 200
    # a deliberate refusal is not logged as uvicorn's "returned without completing handshake"
    assert "without completing handshake" not in server.log_path.read_text()


async def test_a_stopping_server_closes_agents_1001_and_records_their_disconnects(live_server):
    """A graceful stop closes every agent socket with 1001 (the agents' restart window) and
    records all the disconnects in one transaction: each node's connection is cleared and gets
    its node.disconnected event; the nodes stay online for the restart grace."""
    with live_server.api() as api:
        agents = [
            await RawAgent.join(live_server.url, node_token(api, f"stop-{i}")["secret"], f"st{i}")
            for i in range(3)
        ]
        ids = {a.welcome.node_id for a in agents}
    live_server.stop(signal.SIGTERM)
    for a in agents:
        assert (await closed_with(a.ws)) == (1001, "server shutting down")
    live_server.start()
    with live_server.api() as api:
        gone = [e for e in events(api, "node.disconnected") if e["subject_id"] in ids]
        assert sorted(e["subject_id"] for e in gone) == sorted(ids)
        nodes = {n["id"]: n for n in api.get("/api/nodes").json()["items"]}
        assert {nodes[i]["state"] for i in ids} == {"online"}
