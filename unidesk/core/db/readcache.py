"""Encoded list pages kept until the next write: a repeated list read costs no database trip.

A list route's answer depends only on the database (and the caller), so it stays right until
something commits. ``WriteCounter`` counts commits: every worker of one ``serve --workers``
bumps its own slot of a shared memory page right after each commit of its sessions (before the
response that follows the commit is sent), and bumps again whenever the event hub hears a
NOTIFY (a write by another server instance or an admin command). A page read while the counter
held value V is served again only while the counter still reads V, and for at most
``MAX_AGE_S`` (values that change with time alone, such as a pending task's rank or a node's
staleness, and writes by other instances that emit no event). A caller that ends its write on
one worker and reads on another therefore sees its write: the counter moved before its write
was answered. While the event stream is down the cache is bypassed (every read goes to the
database), since writes of other instances could not be heard.

Every answer carries a strong ``ETag`` (a hash of the body) and ``Cache-Control: no-cache``;
a request whose ``If-None-Match`` names the current body gets ``304 Not Modified``, so a
polling UI transfers nothing while nothing changed.
"""

from __future__ import annotations

import asyncio
import hashlib
import mmap
import struct
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.types import ASGIApp, HTTPResponseStartEvent, Receive, Scope, Send

from unidesk.core.auth.schemas import Principal

__all__ = ["MAX_AGE_S", "ReadCache", "ReadCacheMiddleware", "WriteCounter", "cached_answer"]

MAX_AGE_S = 1.0
"""Longest a page is served from memory, whatever the counter says."""
MAX_ENTRIES = 512
MAX_BYTES = 32 * 1024 * 1024
"""Bound on the encoded pages one process keeps (least recently used go first)."""
_SLOT = struct.Struct("=Q")


class WriteCounter:
    """One 8-byte slot per process on a shared anonymous mapping (made before ``fork``, so the
    workers of one server see each other's slots). Each slot has one writer (its process), so
    the sum only grows and a changed sum means some commit happened after a page was read."""

    def __init__(self, slots: int = 1) -> None:
        self._slots = max(1, slots)
        self._map = mmap.mmap(-1, _SLOT.size * self._slots)
        self._fmt = struct.Struct(f"={self._slots}Q")
        self._mine = 0

    def attach(self, slot: int) -> WriteCounter:
        """Make ``bump`` write slot ``slot`` (the worker's index); returns self."""
        if not 0 <= slot < self._slots:
            raise ValueError(f"slot {slot} out of 0..{self._slots - 1}")
        self._mine = slot
        return self

    def bump(self, *_: Any) -> None:
        offset = self._mine * _SLOT.size
        (n,) = _SLOT.unpack_from(self._map, offset)
        _SLOT.pack_into(self._map, offset, n + 1)

    def value(self) -> int:
        return sum(self._fmt.unpack_from(self._map, 0))


class _Entry(msgspec.Struct):
    version: int
    deadline: float
    body: bytes
    etag: str


Compute = Callable[[], Awaitable[Any]]
"""Builds the answer (a msgspec struct or builtins, or bytes: the answer already encoded as
JSON) on a miss."""


class ReadCache:
    """Encoded answers of list routes by (caller, path, query string)."""

    def __init__(self, counter: WriteCounter, enabled: Callable[[], bool]) -> None:
        self.counter = counter
        self.enabled = enabled
        self._entries: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
        self._computing: dict[tuple[Any, ...], asyncio.Future[_Entry]] = {}
        self._bytes = 0
        self.hits = 0
        self.misses = 0
        self._memos: dict[str, tuple[int, float, Any]] = {}
        self._memo_running: dict[tuple[str, int], asyncio.Future[Any]] = {}

    async def memo(self, name: str, compute: Callable[[], Awaitable[Any]]) -> Any:
        """A value that answers depend on (e.g. the ranks of all waiting tasks), kept under the
        same rule as the answers: until the next write, at most ``MAX_AGE_S``, not while the
        event stream is down; callers arriving while it is computed share that computation."""
        if not self.enabled():
            return await compute()
        version = self.counter.value()
        kept = self._memos.get(name)
        if kept is not None and kept[0] == version and kept[1] >= time.monotonic():
            return kept[2]
        running = self._memo_running.get((name, version))
        if running is not None:
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                if running.cancelled():  # the leader's client went away, not this one
                    return await compute()
                raise
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._memo_running[(name, version)] = future
        try:
            value = await compute()
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # marked retrieved: there may be no follower to re-raise it
            raise
        finally:
            self._memo_running.pop((name, version), None)
        future.set_result(value)
        if self.counter.value() == version:
            self._memos[name] = (version, time.monotonic() + MAX_AGE_S, value)
        return value

    async def respond(
        self, request: Request[Any, Any, Any], principal: Principal, compute: Compute
    ) -> Response[Any]:
        """The route's answer for this caller: from memory while no write happened since it was
        encoded, else computed (and kept); 304 when ``If-None-Match`` names it."""
        key = _key(request.scope, principal)
        use = self.enabled()
        version = self.counter.value()
        entry = self.current(key, version) if use else None
        if entry is None:
            self.misses += 1
            entry = await self._compute(key, version, use, compute)
        headers = {"ETag": entry.etag, "Cache-Control": "private, no-cache"}
        if entry.etag in _etags(request.headers.get("if-none-match")):
            return Response(content=b"", status_code=304, headers=headers)
        return Response(content=entry.body, media_type="application/json", headers=headers)

    def current(self, key: tuple[Any, ...], version: int) -> _Entry | None:
        """The kept answer for ``key`` if no write happened since it was read (and it is young
        enough); counts a hit."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.version != version or entry.deadline < time.monotonic():
            self._drop(key)
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return entry

    async def _compute(
        self, key: tuple[Any, ...], version: int, use: bool, compute: Compute
    ) -> _Entry:
        """One computation per (key, version) at a time: requests arriving while it runs (with
        no write since it started) share its answer instead of each reading the database."""
        if not use:
            return _entry(version, await compute())
        running = self._computing.get((*key, version))
        if running is not None:
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                if running.cancelled():  # the leader's client went away, not this one
                    return _entry(version, await compute())
                raise
        future: asyncio.Future[_Entry] = asyncio.get_running_loop().create_future()
        self._computing[(*key, version)] = future
        try:
            entry = _entry(version, await compute())
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # marked retrieved: there may be no follower to re-raise it
            raise
        finally:
            self._computing.pop((*key, version), None)
        future.set_result(entry)
        if self.counter.value() == version and len(entry.body) <= MAX_BYTES // 8:
            self._keep(key, entry)
        return entry

    def _keep(self, key: tuple[Any, ...], entry: _Entry) -> None:
        self._drop(key)
        self._entries[key] = entry
        self._bytes += len(entry.body)
        while len(self._entries) > MAX_ENTRIES or self._bytes > MAX_BYTES:
            _, old = self._entries.popitem(last=False)
            self._bytes -= len(old.body)

    def _drop(self, key: tuple[Any, ...]) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old.body)


async def cached_answer(
    request: Request[Any, Any, Any], principal: Principal, compute: Compute
) -> Response[Any]:
    """A list route's answer through the server's ``ReadCache`` (see the module docstring)."""
    cache: ReadCache = request.app.state.read_cache
    return await cache.respond(request, principal, compute)


class ReadCacheMiddleware:
    """Answers a GET from the read cache before its handler runs (no parameter parsing, no
    dependencies): only a query string that a list handler answered before has an entry, so
    whatever it validated is valid still. Runs after authentication (the key is the caller's)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = scope.get("user")
        if scope["type"] == "http" and scope.get("method") == "GET" and principal is not None:
            cache: ReadCache = scope["litestar_app"].state.read_cache
            entry = cache.enabled() and cache.current(_key(scope, principal), cache.counter.value())
            if entry:
                await _send(entry, scope, send)
                return
        await self.app(scope, receive, send)


async def _send(entry: _Entry, scope: Scope, send: Send) -> None:
    inm = next((v for k, v in scope["headers"] if k == b"if-none-match"), None)
    fresh = inm is not None and entry.etag in _etags(inm.decode("latin-1"))
    headers = [
        (b"etag", entry.etag.encode()),
        (b"cache-control", b"private, no-cache"),
        (b"content-length", b"0" if fresh else str(len(entry.body)).encode()),
    ]
    if not fresh:
        headers.append((b"content-type", b"application/json"))
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": 304 if fresh else 200,
        "headers": headers,
    }
    await send(start)
    await send(
        {"type": "http.response.body", "body": b"" if fresh else entry.body, "more_body": False}
    )


def _key(scope: Any, principal: Principal) -> tuple[Any, ...]:
    return (principal.user_id, principal.role, scope["path"], scope["query_string"])


def _entry(version: int, answer: Any) -> _Entry:
    body = answer if isinstance(answer, bytes) else msgspec.json.encode(answer)
    return _Entry(
        version=version,
        deadline=time.monotonic() + MAX_AGE_S,
        body=body,
        etag='"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"',
    )


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {t.strip().removeprefix("W/") for t in header.split(",")}
