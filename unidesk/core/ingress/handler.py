"""The provider ingress WebSocket: authenticate, hello/welcome, reconcile, then the frame loop."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import uuid
from contextvars import ContextVar

import msgspec
import structlog
from litestar import WebSocket, websocket
from litestar.datastructures import State
from litestar.exceptions import WebSocketDisconnect
from litestar.types.asgi_types import WebSocketResponseBodyEvent, WebSocketResponseStartEvent

from unidesk import protocol
from unidesk.core.db.tx import in_transaction
from unidesk.core.events.writer import append
from unidesk.core.ingress.connections import NodeConnection
from unidesk.core.ingress.nulscrub import hello_nul, scrub
from unidesk.core.ingress.reports import NOT_APPLIED, Report
from unidesk.core.nodes.models import NodeRow
from unidesk.core.nodes.services import node_event
from unidesk.errors import TimedOut, Unauthenticated, Unavailable, close_for

__all__ = ["RefusalLogFilter", "agent_socket", "install_refusal_log_filter"]

log = structlog.get_logger("unidesk.ingress")
HELLO_TIMEOUT_S = 10.0


def _bearer(socket: WebSocket) -> str | None:
    scheme, _, value = (socket.headers.get("authorization") or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def _receive(socket: WebSocket, timeout_s: float) -> protocol.Message:
    # asyncio.timeout, not wait_for: wait_for wraps every frame's receive in a new Task
    # (~9 µs of CPU per frame over a bare await, against ~4.5 µs for the timeout's timer).
    async with asyncio.timeout(timeout_s):
        event = await socket.receive()
    if event["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(detail="disconnected", code=event.get("code", 1000))
    raw = event.get("bytes")
    if isinstance(raw, bytes):
        data = raw
    else:
        text = event.get("text")
        data = text.encode() if isinstance(text, str) else b""
    if len(data) > protocol.MAX_FRAME_BYTES:
        raise OverflowError(f"frame of {len(data)} bytes exceeds {protocol.MAX_FRAME_BYTES}")
    return protocol.decode(data)


def _retry_after(state: State) -> int | None:
    """Seconds a new agent socket should wait instead of being taken now, or None to take it:
    the server is draining for a stop (it will be back, or another instance is), or more
    sockets wait for registration than ``ingress_max_waiting``."""
    if getattr(state, "draining", False):
        return random.randint(2, 5)
    registrar = state.ingress.registrar
    if registrar.waiting >= state.settings.ingress_max_waiting:
        return int(registrar.retry_after_s())
    return None


_REFUSED: ContextVar[bool] = ContextVar("unidesk_ingress_refused", default=False)


class RefusalLogFilter(logging.Filter):
    """Drops uvicorn's lines about a socket this handler refused with HTTP 503 on purpose: its
    websockets-sansio protocol logs "ASGI callable returned without completing handshake." as an
    error after any ASGI ``websocket.http.response`` (it never marks that path complete), plus
    an access line; thousands a second in a storm cost CPU and read as failures. The handler's
    task context says which requests were refused; every other uvicorn line passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _REFUSED.get()


def install_refusal_log_filter() -> None:
    """Put ``RefusalLogFilter`` on uvicorn's error logger once."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, RefusalLogFilter) for f in logger.filters):
        logger.addFilter(RefusalLogFilter())


async def _refuse_busy(socket: WebSocket, retry_after_s: int, why: str) -> None:
    """HTTP 503 with ``Retry-After`` before the upgrade (the ASGI ``websocket.http.response``
    extension); a server without it accepts and closes 1013 with the same hint in the reason."""
    reason = f"{why}; retry after {retry_after_s} s"
    if "websocket.http.response" in (socket.scope.get("extensions") or {}):
        _REFUSED.set(True)  # this task's context: uvicorn's lines about it are dropped
        await socket.receive()  # the websocket.connect event
        start: WebSocketResponseStartEvent = {
            "type": "websocket.http.response.start",
            "status": 503,
            "headers": [
                (b"retry-after", str(retry_after_s).encode()),
                (b"content-type", b"text/plain; charset=utf-8"),
            ],
        }
        body: WebSocketResponseBodyEvent = {
            "type": "websocket.http.response.body",
            "body": reason.encode(),
            "more_body": False,
        }
        await socket.send(start)
        await socket.send(body)
        return
    await socket.accept()
    await socket.close(code=protocol.CLOSE_BUSY, reason=reason)


@websocket("/api/agent/ws", exclude_from_auth=True)
async def agent_socket(socket: WebSocket, state: State) -> None:
    """A node's agent connects here with ``Authorization: Bearer <node token>``."""
    retry_after_s = _retry_after(state)
    if retry_after_s is not None:
        why = "server stopping" if getattr(state, "draining", False) else "server busy"
        await _refuse_busy(socket, retry_after_s, why)
        return
    registrar = state.ingress.registrar
    registrar.waiting += 1
    try:
        admitted = await _admit(socket, state)
    finally:
        registrar.waiting -= 1
    if admitted is not None:
        await _serve(state, *admitted)


async def _admit(
    socket: WebSocket, state: State
) -> tuple[NodeConnection, protocol.Hello, protocol.Reconcile] | None:
    """Handshake, token, hello, registration: the welcomed connection, or None (closed)."""
    await socket.accept()
    peer = socket.client.host if socket.client else "?"
    secret = _bearer(socket)
    if not secret:
        log.info("agent refused", peer=peer, why="no node token")
        await socket.close(
            code=protocol.CLOSE_UNAUTHENTICATED,
            reason="missing 'Authorization: Bearer <node token>'",
        )
        return None
    try:  # read with the other handshakes waiting (one query per batch)
        token = await state.ingress.registrar.resolve(secret)
    except Unauthenticated as exc:
        log.info("agent refused", peer=peer, why=exc.detail)
        code, reason = close_for(exc)
        await socket.close(code=code, reason=reason)
        return None
    try:
        hello = await _receive(socket, HELLO_TIMEOUT_S)
    except (TimeoutError, WebSocketDisconnect):
        await socket.close(code=protocol.CLOSE_BAD_FRAME, reason="expected a hello frame")
        return None
    except OverflowError as exc:
        await socket.close(code=protocol.CLOSE_TOO_BIG, reason=str(exc))
        return None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.info("agent sent a bad frame", peer=peer, error=str(exc)[:200])
        await socket.close(code=protocol.CLOSE_BAD_FRAME, reason=f"bad frame: {str(exc)[:100]}")
        return None
    if not isinstance(hello, protocol.Hello):
        await socket.close(
            code=protocol.CLOSE_BAD_FRAME,
            reason=f"first frame must be hello, got {type(hello).__name__.lower()}",
        )
        return None
    if (field := hello_nul(hello)) is not None:
        log.info("agent sent a bad hello", peer=peer, field=field)
        await socket.close(
            code=protocol.CLOSE_BAD_FRAME, reason=f"bad frame: NUL character in hello {field}"
        )
        return None
    if hello.protocol_version != protocol.PROTOCOL_VERSION:
        log.info(
            "agent protocol mismatch",
            peer=peer,
            agent=hello.protocol_version,
            server=protocol.PROTOCOL_VERSION,
        )
        await socket.close(
            code=protocol.CLOSE_INCOMPATIBLE,
            reason=f"server speaks protocol {protocol.PROTOCOL_VERSION}, agent "
            f"{hello.protocol_version}; upgrade the agent",
        )
        return None

    ingress = state.ingress
    connection_id = uuid.uuid4().hex
    try:  # registered with the other hellos that arrived meanwhile (one transaction)
        reg = await ingress.registrar.register(token, hello, connection_id=connection_id)
    except Exception:  # database busy or down: the agent retries with backoff (1013 is not final)
        log.exception("node registration failed", node=hello.node_name[:100], peer=peer)
        code, reason = close_for(
            Unavailable("server busy: could not register the node; retry later")
        )
        await socket.close(code=code, reason=reason)
        return None
    conn = NodeConnection(
        socket,
        node_id=reg.node_id,
        node_name=reg.node_name,
        token_id=token.id,
        connection_id=connection_id,
    )
    return conn, hello, reg.reconcile


async def _serve(
    state: State, conn: NodeConnection, hello: protocol.Hello, reconcile: protocol.Reconcile
) -> None:
    """Welcome, reconcile, pending work, then the frame loop until the socket ends."""
    ingress = state.ingress
    peer = conn.socket.client.host if conn.socket.client else "?"
    # registration stored the hello's health: a heartbeat saying the same needs no write
    ingress.health_reasons[conn.node_id] = hello.unhealthy_reason
    old = ingress.connections.attach(conn)
    if old is not None:
        await old.close(
            protocol.CLOSE_REPLACED, "replaced by a newer connection with the same node token"
        )
    log.info(
        "node connected",
        node=conn.node_name,
        peer=peer,
        agent_version=hello.agent_version,
        running=len(hello.running),
    )
    await conn.send(
        protocol.Welcome(
            protocol_version=protocol.PROTOCOL_VERSION,
            node_id=str(conn.node_id),
            heartbeat_interval_s=state.settings.heartbeat_interval_s,
            server_instance=ingress.instance_id,
            offline_timeout_s=state.settings.offline_timeout_s,
        )
    )
    await conn.send(reconcile)
    ingress.registrar.welcomed(conn)  # its pending dispatches and cancels, read per batch
    try:
        await _frame_loop(conn, state)
    finally:
        # while the server stops, close_sockets records every disconnect in one transaction
        if ingress.connections.detach(conn) and not ingress.stopping:
            await _mark_disconnected(state, conn)
        log.info("node disconnected", node=conn.node_name)


async def _frame_loop(conn: NodeConnection, state: State) -> None:
    ingress = state.ingress
    silence = state.settings.offline_timeout_s
    while not conn.closed.is_set():
        try:
            msg = await _receive(conn.socket, silence)
        except TimeoutError:
            log.info("node silent; closing its socket", node=conn.node_name, silent_s=silence)
            await conn.close(*close_for(TimedOut("no frames within the offline timeout")))
            return
        except WebSocketDisconnect:
            conn.closed.set()
            return
        except OverflowError as exc:
            log.info("frame too large", node=conn.node_name)
            await conn.close(protocol.CLOSE_TOO_BIG, str(exc))
            return
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.info("bad frame", node=conn.node_name, error=str(exc)[:200])
            await conn.close(protocol.CLOSE_BAD_FRAME, f"bad frame: {str(exc)[:100]}")
            return
        except RuntimeError:  # socket already closed underneath us
            conn.closed.set()
            return
        conn.last_frame = time.monotonic()
        msg = scrub(msg)
        if isinstance(msg, protocol.Heartbeat):
            ingress.liveness.heartbeat(conn.node_id, msg)
            ingress.reconciler.observe(conn, msg)
            await _track_health(state, conn, msg.unhealthy_reason)
        elif isinstance(msg, protocol.Ack):
            ingress.reports.submit(
                Report(
                    node_id=conn.node_id, node_name=conn.node_name, msg=msg, done=_acked(conn, msg)
                )
            )
        elif isinstance(msg, protocol.AttemptState):
            ingress.reports.submit(
                Report(
                    node_id=conn.node_id,
                    node_name=conn.node_name,
                    msg=msg,
                    done=_acked(conn, msg, then=_final_ack(conn, msg)),
                )
            )
        elif isinstance(msg, protocol.LogChunk):
            ingress.reports.submit(
                Report(
                    node_id=conn.node_id,
                    node_name=conn.node_name,
                    msg=msg,
                    done=_log_ack(conn, msg),
                )
            )
        elif isinstance(msg, protocol.AttemptData):
            ingress.reports.submit(
                Report(
                    node_id=conn.node_id,
                    node_name=conn.node_name,
                    msg=msg,
                    done=_data_ack(conn, msg),
                )
            )
        elif isinstance(msg, protocol.Error):
            log.info(
                "agent reported an error",
                node=conn.node_name,
                code=msg.code[:64],
                message=msg.message[:500],
            )
        else:
            await conn.close(
                protocol.CLOSE_BAD_FRAME,
                f"unexpected message type {type(msg).__name__.lower()} from an agent",
            )
            return


def _acked(conn: NodeConnection, msg: protocol.Ack | protocol.AttemptState, then=None):
    """The node answered this attempt's dispatch: no redelivery while the report waits to be
    written (however long the queue is), nor for an ack timeout after it was applied."""
    key = (msg.task_id, msg.attempt_no)
    conn.acked[key] = math.inf

    async def done(result: object) -> None:
        conn.acked[key] = time.monotonic()
        if then is not None:
            await then(result)

    return done


def _final_ack(conn: NodeConnection, msg: protocol.AttemptState):
    final = msg.phase in ("exited", "failed")

    async def done(result: object) -> None:
        if result is NOT_APPLIED:  # nothing stored: the agent sends it again after a backoff
            await conn.send(_nack(msg, "attempt_state"))
        elif final:  # stored, already final, or fenced: the agent may forget this report
            await conn.send(protocol.Ack(task_id=msg.task_id, attempt_no=msg.attempt_no))

    return done


def _nack(
    msg: protocol.AttemptState | protocol.LogChunk | protocol.AttemptData, of: protocol.NackOf
) -> protocol.Nack:
    return protocol.Nack(
        task_id=msg.task_id,
        attempt_no=msg.attempt_no,
        of=of,
        seq=getattr(msg, "seq", 0),
        channel=getattr(msg, "channel", ""),
        reason="the server could not store this report; send it again",
    )


def _log_ack(conn: NodeConnection, msg: protocol.LogChunk):
    async def done(result: object) -> None:
        if result is NOT_APPLIED:
            await conn.send(_nack(msg, "log"))
        else:  # stored, or fenced (recorded as a fact): the agent may forget it
            await conn.send(
                protocol.LogAck(task_id=msg.task_id, attempt_no=msg.attempt_no, seq=msg.seq)
            )

    return done


def _data_ack(conn: NodeConnection, msg: protocol.AttemptData):
    async def done(result: object) -> None:
        if result is NOT_APPLIED:
            await conn.send(_nack(msg, "attempt_data"))
        else:
            await conn.send(
                protocol.AttemptDataAck(
                    task_id=msg.task_id, attempt_no=msg.attempt_no, channel=msg.channel, seq=msg.seq
                )
            )

    return done


async def _track_health(state: State, conn: NodeConnection, reason: str | None) -> None:
    known = state.ingress.health_reasons
    if known.get(conn.node_id, "unset") == reason:
        return
    known[conn.node_id] = reason

    async def work(s):
        node = await s.get(NodeRow, conn.node_id, with_for_update=True)
        if node is None or node.unhealthy_reason == reason:
            return
        node.unhealthy_reason = reason[:500] if reason else None
        await append(
            s,
            node_event(
                conn.node_id,
                "node.unhealthy" if reason else "node.healthy",
                f"node:{conn.node_name}",
                reason=reason,
            ),
        )

    await in_transaction(state.sessions, work, name="node-health")
    if not reason:
        state.scheduler_wake()


async def _mark_disconnected(state: State, conn: NodeConnection) -> None:
    """The socket is gone: the node stays online until the offline timeout, but gets no new work.

    Recorded also when the offline sweep already cleared the node's connection (a silent socket
    times out here at about the moment the node times out there): that is still this
    connection's end, not a newer connection's."""

    async def work(s):
        node = await s.get(NodeRow, conn.node_id, with_for_update=True)
        if node is None or node.connection_id not in (None, conn.connection_id):
            return  # a newer connection already took over
        node.instance_id = None
        node.connection_id = None
        await append(
            s,
            node_event(
                conn.node_id,
                "node.disconnected",
                f"node:{conn.node_name}",
                connection_id=conn.connection_id,
            ),
        )

    try:
        await in_transaction(state.sessions, work, name="disconnect")
    except Exception:
        log.exception("could not record disconnect", node=conn.node_name)
