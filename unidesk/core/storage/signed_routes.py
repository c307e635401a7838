"""The local backend's presigned routes, ``/api/files/signed/<key>``: raw ASGI, streamed both ways.

GET/HEAD serve an object with ``Content-Length``, ``ETag``, ``Accept-Ranges`` and single
``Range`` requests (206/416). PUT streams the body to a partial file (never whole into memory),
hashing on the way; the URL's signature fixes its size and SHA-256. Resumable: a PUT with
``Content-Range: bytes <a>-<b>/<size>`` appends a chunk at offset ``a`` and answers 308 with
``Range: bytes=0-<held-1>`` until complete; ``Content-Range: bytes */<size>`` with no body
asks how much is held. The route needs no login: the signature is the credential.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, unquote

import msgspec
import structlog
from litestar import asgi
from litestar.types import HTTPResponseBodyEvent, Receive, Scope, Send

from unidesk.core.storage.disposition import attachment
from unidesk.core.storage.local import BodyPump, ClientGone, LocalStore
from unidesk.core.storage.rawbody import RAW_BODY
from unidesk.core.storage.signing import SIGNED_PREFIX
from unidesk.errors import BadRequest, NotFound

__all__ = ["READ_CHUNK", "signed_files"]

log = structlog.get_logger("unidesk.storage")
READ_CHUNK = 1024 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CONTENT_RANGE = re.compile(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+)$")


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def _respond(send: Send, status: int, headers: dict[str, str], body: bytes = b"") -> None:
    headers.setdefault("content-length", str(len(body)))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        }
    )
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(end)


def _json(status: int, value: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json"}, msgspec.json.encode(value)


@asgi(
    SIGNED_PREFIX.rstrip("/"),
    is_mount=True,
    copy_scope=False,
    exclude_from_auth=True,
    include_in_schema=False,
)
async def signed_files(scope: Scope, receive: Receive, send: Send) -> None:
    """Presigned GET/HEAD/PUT of the local backend (see the module docstring)."""
    state = scope["app"].state
    store = state.object_store
    if not isinstance(store, LocalStore):
        raise NotFound(
            "this server's object store is not local; signed file URLs are not served here"
        )
    raw = scope.get("raw_path") or scope["path"].encode()
    key = unquote(raw.decode("latin-1").split("?", 1)[0][len(SIGNED_PREFIX) :])
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    method = scope.get("method", "")  # an HTTP mount: a WebSocket scope has none (405 below)
    if method in ("GET", "HEAD"):
        get = store.signer.verify_get(key, query)
        await _serve(store, get.key, get.filename, _headers(scope), method == "HEAD", send)
    elif method == "PUT":
        put = store.signer.verify_put(key, query)
        found = (scope.get("extensions") or {}).get(RAW_BODY)
        pump = found if isinstance(found, BodyPump) else None
        status, headers, body = await _receive(
            store, put.key, put.size, put.sha256, _headers(scope), receive, pump
        )
        await _respond(send, status, headers, body)
    else:
        await _respond(
            send,
            405,
            {"allow": "GET, HEAD, PUT", "content-type": "application/problem+json"},
            msgspec.json.encode(
                {
                    "type": "about:blank",
                    "title": "Method not allowed",
                    "status": 405,
                    "detail": f"{method} is not allowed on a signed file URL",
                }
            ),
        )


async def _serve(
    store: LocalStore,
    key: str,
    filename: str | None,
    headers: dict[str, str],
    head: bool,
    send: Send,
) -> None:
    path = store.object_path(key)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise NotFound("no such object (deleted, or its upload never completed)") from None
    try:
        st = os.fstat(fd)
        size = st.st_size
        etag = f'"{st.st_mtime_ns:x}-{size:x}"'
        out = {"accept-ranges": "bytes", "etag": etag, "content-type": "application/octet-stream"}
        if filename:
            out["content-disposition"] = attachment(filename)
        if headers.get("if-none-match") == etag:
            await _respond(send, 304, out)
            return
        start, end, status = 0, size - 1, 200
        wanted = headers.get("range")
        if wanted and headers.get("if-range", etag) == etag:
            m = _RANGE.match(wanted.strip())
            if m and (m.group(1) or m.group(2)):
                if m.group(1):
                    start = int(m.group(1))
                    end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                else:
                    start = max(0, size - int(m.group(2)))
                if start >= size or start > end:
                    await _respond(send, 416, {**out, "content-range": f"bytes */{size}"})
                    return
                status = 206
                out["content-range"] = f"bytes {start}-{end}/{size}"
        length = end - start + 1 if size else 0
        out["content-length"] = str(length)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in out.items()],
            }
        )
        if head or length == 0:
            empty: HTTPResponseBodyEvent = {
                "type": "http.response.body",
                "body": b"",
                "more_body": False,
            }
            await send(empty)
            return
        pos, left = start, length
        while left > 0:
            block = await asyncio.to_thread(os.pread, fd, min(READ_CHUNK, left), pos)
            if not block:
                raise OSError(f"object {key} shrank while being served")
            pos += len(block)
            left -= len(block)
            part: HTTPResponseBodyEvent = {
                "type": "http.response.body",
                "body": block,
                "more_body": left > 0,
            }
            await send(part)
    finally:
        os.close(fd)


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            raise ClientGone()
        chunk = event.get("body", b"")
        if isinstance(chunk, bytes) and chunk:
            yield chunk
        if not event.get("more_body", False):
            return


async def _receive(
    store: LocalStore,
    key: str,
    size: int,
    sha256: str,
    headers: dict[str, str],
    receive: Receive,
    raw: BodyPump | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """Store the body (``raw``: read off the socket by a thread, see ``rawbody``; else ASGI
    ``receive``) and answer 201, 308 (more to come) or 400 (connection dropped)."""
    content_range = headers.get("content-range")
    start, end = 0, size - 1
    if content_range:
        m = _CONTENT_RANGE.match(content_range.strip())
        if not m or int(m.group(3)) != size:
            raise BadRequest(
                f"Content-Range must be 'bytes <first>-<last>/{size}' or 'bytes */{size}'"
            )
        if m.group(1) is None:  # status query
            held = await store.offset(key, size)
            if held >= size:
                return _json(201, {"size": size, "sha256": sha256, "complete": True})
            return 308, ({"range": f"bytes=0-{held - 1}"} if held else {}), b""
        start, end = int(m.group(1)), int(m.group(2))
        if start > end or end >= size:
            raise BadRequest(f"Content-Range {start}-{end} lies outside an object of {size} bytes")
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) != end + 1 - start:
        raise BadRequest(
            f"Content-Length {declared} does not match the {end + 1 - start} bytes this URL or "
            "range expects; nothing was kept"
        )
    try:
        got = await store.receive(
            key,
            size=size,
            sha256=sha256,
            start=start,
            end=end,
            body=raw if raw is not None and raw.usable() else _body(receive),
            restart=content_range is None,
        )
    except ClientGone:
        log.info(
            "upload interrupted; partial kept for resuming",
            key=key,
            offset=await store.offset(key, size),
        )
        return 400, {}, b""
    if got.complete:
        return _json(201, {"size": size, "sha256": sha256, "complete": True})
    return 308, {"range": f"bytes=0-{got.offset - 1}"}, b""
