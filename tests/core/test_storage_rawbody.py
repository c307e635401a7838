"""Signed-URL PUT bodies read off the socket by threads (``storage.rawbody``) in a real server:
``Expect: 100-continue``, several buffers, keep-alive and a pipelined request after the body, a
wrong hash, and a client that hangs up mid-body (what arrived is kept and the upload resumes)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.core.storage_helpers import sha
from unidesk.core.storage import rawbody


def _connect(url: str) -> tuple[socket.socket, str]:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=30)
    return sock, f"{parts.path}?{parts.query}"


def _head(target: str, length: int, *extra: str) -> bytes:
    lines = [f"PUT {target} HTTP/1.1", "Host: test", f"Content-Length: {length}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_response(sock: socket.socket, buf: bytearray) -> tuple[int, bytes]:
    """One response (status, body) from ``sock``; bytes after it stay in ``buf``."""
    while b"\r\n\r\n" not in buf:
        more = sock.recv(65536)
        assert more, f"connection closed; got {bytes(buf)!r}"
        buf += more
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        more = sock.recv(65536)
        assert more
        rest += more
    buf[:] = rest[length:]
    return status, rest[:length]


def _store_files(live_server) -> list[Path]:
    store = Path(live_server.env["UNIDESK_DATA_DIR"]) / "files"
    return [p for p in store.rglob("*") if p.is_file() and not p.name.startswith(".health")]


def test_raw_body_upload_keepalive_pipelining_and_continue(live_server):
    data = os.urandom(3 * rawbody.BUFFER + 12_345)  # four buffers: the pool of three wraps
    with live_server.api() as api:
        grant = api.post(
            "/api/files", json={"name": "raw/big.bin", "size": len(data), "sha256": sha(data)}
        ).json()
        sock, target = _connect(grant["upload"]["url"])
        with sock:
            sock.sendall(_head(target, len(data), "Expect: 100-continue"))
            buf = bytearray()
            status, _ = _read_response(sock, buf)
            assert status == 100
            sent = 0
            for cut in (1, 70_000, rawbody.BUFFER + 3, 2 * rawbody.BUFFER):
                sock.sendall(data[sent:cut])
                sent = cut
            # the body's tail and the next request in one send (pipelined on the connection)
            sock.sendall(data[sent:] + b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
            status, body = _read_response(sock, buf)
            assert status == 201, body
            status, _ = _read_response(sock, buf)
            assert status == 200  # the same connection parses the request after the body
        done = api.post(f"/api/files/{grant['artifact']['id']}/complete", json={})
        assert done.status_code == 200 and done.json()["state"] == "ready"
        link = api.get(f"/api/files/{grant['artifact']['id']}/download").json()["url"]
        assert sha(api.get(link).content) == sha(data)


def test_raw_body_wrong_hash_keeps_nothing_and_hangup_resumes(live_server):
    data = os.urandom(rawbody.BUFFER + 5_000)
    with live_server.api() as api:
        bad = api.post(
            "/api/files", json={"name": "raw/bad.bin", "size": len(data), "sha256": sha(data)}
        ).json()
        sock, target = _connect(bad["upload"]["url"])
        with sock:
            sock.sendall(_head(target, len(data)) + data[:-1] + b"\0")
            status, body = _read_response(sock, bytearray())
        assert status == 400 and b"SHA-256" in body and b"nothing was kept" in body
        assert _store_files(live_server) == []

        grant = api.post(
            "/api/files", json={"name": "raw/cut.bin", "size": len(data), "sha256": sha(data)}
        ).json()
        sent = rawbody.BUFFER // 2 + 17
        sock, target = _connect(grant["upload"]["url"])
        with sock:
            sock.sendall(_head(target, len(data)) + data[:sent])
        resume = f"/api/files/{grant['artifact']['id']}/upload"
        deadline = time.monotonic() + 20
        while (offset := api.post(resume).json()["upload"]["offset"]) != sent:
            assert time.monotonic() < deadline, f"partial holds {offset} bytes, {sent} were sent"
            time.sleep(0.1)
        assert (
            api.post(f"/api/files/{grant['artifact']['id']}/complete", json={}).status_code == 409
        )
        sock, target = _connect(grant["upload"]["url"])
        with sock:
            sock.sendall(
                _head(
                    target,
                    len(data) - sent,
                    f"Content-Range: bytes {sent}-{len(data) - 1}/{len(data)}",
                )
                + data[sent:]
            )
            status, body = _read_response(sock, bytearray())
        assert status == 201, body
        done = api.post(f"/api/files/{grant['artifact']['id']}/complete", json={})
        assert done.status_code == 200 and done.json()["state"] == "ready"
        link = api.get(f"/api/files/{grant['artifact']['id']}/download").json()["url"]
        assert api.get(link).content == data
