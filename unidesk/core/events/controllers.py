"""HTTP handlers for the event log and its live stream (Server-Sent Events)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.params import Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from unidesk.core.auth.schemas import Principal
from unidesk.core.db.readcache import cached_answer
from unidesk.core.db.reads import Reads
from unidesk.core.events.hub import EventHub, Keepalive
from unidesk.core.events.schemas import EventPage
from unidesk.core.events.services import event_page
from unidesk.errors import BadRequest, Unavailable

SHUTDOWN_REASON = "server shutting down"
SHUTDOWN_MESSAGE = ServerSentEventMessage(
    event="shutdown", data=msgspec.json.encode({"reason": SHUTDOWN_REASON}).decode()
)
"""The last message of every live stream when the server stops (events and logs)."""
KEEPALIVE_MESSAGE = ServerSentEventMessage(comment="ping")
"""Written while a stream is quiet (an SSE comment: EventSource and parsers skip it)."""

__all__ = ["KEEPALIVE_MESSAGE", "SHUTDOWN_MESSAGE", "SHUTDOWN_REASON", "EventController"]


class EventController(Controller):
    path = "/api/events"
    tags = ("events",)

    @get("/", operation_id="list_events")
    async def list_events(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        reads: Reads,
        after: Annotated[int, Parameter(ge=0, le=2**63 - 1)] = 0,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
        kind: Annotated[str | None, Parameter(max_length=64, pattern=r"^[^\x00]*$")] = None,
        subject_type: Annotated[str | None, Parameter(max_length=32)] = None,
        subject_id: Annotated[str | None, Parameter(max_length=64)] = None,
    ) -> Response[EventPage]:
        """Events with id greater than ``after``, oldest first (``ETag``/``If-None-Match``: 304
        while no event was added)."""
        return await cached_answer(
            request,
            principal,
            lambda: event_page(
                reads,
                after=after,
                limit=limit,
                kind=kind,
                subject_type=subject_type,
                subject_id=subject_id,
            ),
        )

    @get("/stream", operation_id="stream_events")
    async def stream(
        self,
        request: Request[Any, Any, Any],
        state: State,
        after: Annotated[int | None, Parameter(ge=0, le=2**63 - 1)] = None,
    ) -> ServerSentEvent:
        """Live events as Server-Sent Events; resumes after ``after`` or the Last-Event-ID
        header. The first message, ``hello``, gives the stream's cursor and ``keepalive_s``:
        while no event comes, a ``: ping`` comment is written every ``keepalive_s`` seconds,
        so a client that hears nothing for a few of them knows the server stopped answering."""
        hub: EventHub = state.event_hub
        if hub.closing:
            raise Unavailable(SHUTDOWN_REASON)
        if not hub.healthy:
            raise Unavailable(f"event stream unavailable: {hub.error}")
        if after is None:
            raw = request.headers.get("last-event-id")
            try:
                after = int(raw) if raw else hub.cursor
            except ValueError:
                raise BadRequest("Last-Event-ID must be an event id") from None

        async def gen() -> AsyncIterator[ServerSentEventMessage]:
            hello = {"cursor": hub.cursor, "keepalive_s": hub.keepalive_s}
            yield ServerSentEventMessage(
                event="hello", data=msgspec.json.encode(hello).decode(), retry=2000
            )
            async for ev in hub.subscribe_with_keepalive(after):
                if isinstance(ev, Keepalive):
                    yield KEEPALIVE_MESSAGE
                    continue
                yield ServerSentEventMessage(
                    id=str(ev.id), event=ev.kind, data=msgspec.json.encode(ev).decode()
                )
            if hub.closing:  # a clear end, not a dropped connection: the browser shows why
                yield SHUTDOWN_MESSAGE

        return ServerSentEvent(gen())
