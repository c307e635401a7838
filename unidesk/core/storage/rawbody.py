"""Signed-PUT bodies read straight off the socket by a thread, outside uvicorn's flow control.

uvicorn's httptools protocol hands a request body to the app in pieces of at most 64 KiB: it
pauses reading at that high-water mark, copies every piece into a ``bytearray`` and again into
the ASGI event, and the event loop wakes for each (a 1 GiB upload: ~16,000 pauses, resumes and
wake-ups, measured at more than half of the server's CPU). ``UploadHttpProtocol`` (the server's
``http`` protocol, see ``core.workers.UVICORN_OPTIONS``) is uvicorn's own with one addition: a
``PUT`` under the signed-file prefix with a ``Content-Length`` (no ``Transfer-Encoding``) gets
the ASGI scope extension ``RAW_BODY``, a ``RawBody``. Its ``pump`` stops the transport reading,
takes the bytes the parser already holds, then reads exactly the rest of the body with
``recv_into`` into one reused buffer on a thread of its own and calls ``sink`` there with each
filled buffer (the caller hashes and writes it, also without the GIL). When the body is done the
connection's parser starts afresh at the next request and reading resumes after the response
(keep-alive and pipelining work as before). A client that closes mid-body, or sends nothing for
``IDLE_S``, ends the pump with ``ClientGone`` after what arrived was sunk; any other failure or a
cancellation closes the connection after the response, since unread body bytes may remain.
Servers without the extension (the ASGI test client, other protocols) use ASGI ``receive``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from unidesk.core.storage.local import ClientGone
from unidesk.core.storage.signing import SIGNED_PREFIX

__all__ = ["BUFFER", "IDLE_S", "RAW_BODY", "RawBody", "UploadHttpProtocol"]

RAW_BODY = "unidesk.raw_body"
"""ASGI scope extension key of a ``RawBody``."""
BUFFER = 4 * 1024 * 1024
"""Bytes read (several ``recv_into`` calls) before one ``sink`` call."""
IDLE_S = 120.0
"""A body that sends nothing this long counts as a dropped connection."""
_POLL_S = 0.5  # how often a blocked read looks at the stop flag
_BUFFERS = 3  # one being read, one being digested, one spare


Sink = Callable[[memoryview], None]


class RawBody:
    """The rest of one request's body, readable once with ``pump`` (see the module docstring)."""

    def __init__(self, protocol: HttpToolsProtocol, cycle: RequestResponseCycle, length: int):
        self._protocol = protocol
        self._cycle = cycle
        self.length = length
        self._used = False

    def usable(self) -> bool:
        """True while nothing of the body was taken through ASGI ``receive`` and the connection
        is still reading this request."""
        cycle = self._cycle
        return (
            not self._used
            and self._protocol.cycle is cycle
            and not cycle.disconnected
            and not cycle.response_started
            and not self._protocol.transport.is_closing()
        )

    async def pump(self, write: Sink, digest: Sink) -> None:
        """Call ``write`` on a reader thread, then ``digest`` on a second thread, with each
        consecutive piece of the whole body (``length`` bytes), in order; return when both
        are done; ``ClientGone`` when the client closed before the end."""
        if not self.usable():
            raise RuntimeError("the raw body is no longer readable")
        self._used = True
        protocol, cycle = self._protocol, self._cycle
        transport = protocol.transport
        if cycle.waiting_for_100_continue:
            transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            cycle.waiting_for_100_continue = False
        protocol.flow.pause_reading()
        head = bytes(cycle.body)
        cycle.body = bytearray()
        rest = self.length - len(head) if cycle.more_body else 0
        fd = transport.get_extra_info("socket").fileno()
        stop = threading.Event()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()

        def finish(result: bool | BaseException) -> None:
            if done.done():
                return
            if isinstance(result, BaseException):
                done.set_exception(result)
            else:
                done.set_result(result)

        def work() -> None:
            try:
                result: bool | BaseException = _read(fd, head, rest, write, digest, stop)
            except BaseException as exc:  # handed to the awaiting task
                result = exc
            loop.call_soon_threadsafe(finish, result)

        threading.Thread(target=work, name="upload-body", daemon=True).start()
        complete = False
        try:
            complete = await asyncio.shield(done)
        except asyncio.CancelledError:
            stop.set()
            await asyncio.wait([done])
            transport.close()
            raise
        finally:
            if complete:
                # The parser still expects the body we read past it: start it afresh at the
                # next request. Reading resumes when the response completes (uvicorn).
                cycle.more_body = False
                parser = httptools.HttpRequestParser(protocol)
                _lenient(parser)
                protocol.parser = parser
            else:
                cycle.keep_alive = False
        if not complete:
            transport.close()
            raise ClientGone()


def _lenient(parser: Any) -> None:
    """The leniency uvicorn sets on its own parsers (httptools >= 0.6.3)."""
    with contextlib.suppress(AttributeError):  # older httptools
        parser.set_dangerous_leniencies(lenient_data_after_close=True)


def _read(
    fd: int, head: bytes, rest: int, write: Sink, digest: Sink, stop: threading.Event
) -> bool:
    """On the reader thread: ``write`` ``head`` and then the ``rest`` bytes read from ``fd``,
    each buffer handed on to ``digest`` on a second thread (the two stages overlap on two
    cores); returns when both are done, False at EOF."""
    buffers = [memoryview(bytearray(min(BUFFER, rest))) for _ in range(_BUFFERS)] if rest else []
    free: queue.SimpleQueue[memoryview] = queue.SimpleQueue()
    for b in buffers:
        free.put(b)
    full: queue.SimpleQueue[tuple[memoryview, memoryview | None] | None] = queue.SimpleQueue()
    failed: list[BaseException] = []

    def digester() -> None:
        while (item := full.get()) is not None:
            view, pooled = item
            if not failed:
                try:
                    digest(view)
                except BaseException as exc:  # re-raised by the reader
                    failed.append(exc)
            if pooled is not None:
                free.put(pooled)

    hasher = threading.Thread(target=digester, name="upload-digest", daemon=True)
    hasher.start()
    try:
        if head:
            write(memoryview(head))
            full.put((memoryview(head), None))
        return rest <= 0 or _recv(fd, rest, write, full, free, failed, stop)
    finally:
        full.put(None)
        hasher.join()
        if failed:
            raise failed[0]


def _recv(
    fd: int,
    rest: int,
    write: Sink,
    full: queue.SimpleQueue[tuple[memoryview, memoryview | None] | None],
    free: queue.SimpleQueue[memoryview],
    failed: list[BaseException],
    stop: threading.Event,
) -> bool:
    sock = socket.socket(fileno=os.dup(fd))  # own fd: closing it leaves the connection open
    try:
        sock.settimeout(_POLL_S)
        while rest > 0 and not failed:
            buf = free.get()
            want = min(len(buf), rest)
            filled = 0
            eof = False
            last = time.monotonic()
            while filled < want:
                try:
                    n = sock.recv_into(buf[filled:want])
                except TimeoutError:
                    if stop.is_set() or time.monotonic() - last > IDLE_S:
                        eof = True
                        break
                    continue
                if n == 0:
                    eof = True
                    break
                filled += n
                last = time.monotonic()
            if filled:
                write(buf[:filled])
                rest -= filled
            full.put((buf[:filled], buf))
            if eof or stop.is_set():
                return rest <= 0
        return rest <= 0
    finally:
        sock.close()


class UploadHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, offering ``RAW_BODY`` on signed-file PUTs."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        scope = self.scope
        if scope.get("method") != "PUT" or not scope.get("path", "").startswith(SIGNED_PREFIX):
            return
        cycle = self.cycle
        if cycle is None or cycle.scope is not scope:
            return
        length: int | None = None
        for name, value in self.headers:
            if name == b"transfer-encoding":
                return
            if name == b"content-length":
                if not value.isdigit() or length is not None:
                    return
                length = int(value)
        if length is None:
            return
        extensions: dict[str, Any] = dict(scope.get("extensions") or {})
        extensions[RAW_BODY] = RawBody(self, cycle, length)
        scope["extensions"] = extensions
