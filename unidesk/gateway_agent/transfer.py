"""File transfer of a node: input artifacts in (verified, cached by hash), outputs out (presigned).

Inputs: each ``FileInput`` of a dispatch is fetched from its presigned URL into
``<cache_dir>/files/sha256/<hash>`` (streamed, SHA-256 and size checked before the rename, one
download per hash even with concurrent attempts), so a second task on the same dataset
downloads nothing. The runner bind-mounts the cached file read-only at the input's path. Each
use touches the file (LRU eviction in ``caches.py``), and an attempt (``owner``) holds its
inputs until it is cleaned up.

Outputs: files under the attempt's ``outputs`` directory matching the dispatch's patterns
(regular files only, opened beneath the workspace without following a symlink: ``confine.py``;
matching symlinks are skipped and named, a symlinked ``outputs`` is refused) are hashed, then
the agent asks
the server for upload URLs of *its own* attempt (``POST /api/agent/attempts/<task>/<n>/outputs``
with its node token), PUTs each file (or each S3 part) streamed, and reports them with
``…/outputs/complete``; the server registers them as artifacts linked to the attempt.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import posixpath
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx

from unidesk.gateway_agent.caches import CacheUses
from unidesk.gateway_agent.confine import Beneath, find_files, open_file
from unidesk.gateway_agent.exec_errors import PrepareFailed
from unidesk.gateway_agent.keyed_lock import KeyedLock
from unidesk.protocol import AttemptRef, FileInput, FileOutput

__all__ = ["Transfer", "TransferFailed", "collect_outputs", "http_base"]

CHUNK = 1024 * 1024
Say = Callable[[str], None]


class TransferFailed(PrepareFailed):
    """An input could not be fetched or verified, or an output could not be uploaded."""

    title = "File transfer failed"


def http_base(server_url: str) -> str:
    url = server_url.rstrip("/")
    for ws, http in (("wss://", "https://"), ("ws://", "http://")):
        if url.startswith(ws):
            url = http + url[len(ws) :]
    return url.removesuffix("/api/agent/ws")


def _sha256_file(where: Beneath) -> tuple[str, int]:
    """SHA-256 and size of a workspace file, read through a descriptor opened beneath it."""
    fd = open_file(where)
    h = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "rb") as fh:
        while block := fh.read(4 * CHUNK):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def collect_outputs(outputs: Beneath, patterns: list[FileOutput]) -> tuple[list[str], list[str]]:
    """Regular files inside ``outputs`` matching a pattern (relative POSIX paths), and the
    matching entries skipped as symlinks or special files. ``outputs`` itself being a symlink
    (or under one) raises ``WorkspaceEscape``: nothing outside the workspace is read."""
    globs = []
    for out in patterns:
        rel = out.pattern.removeprefix("/workspace/outputs/")
        if rel.startswith("/") or ".." in rel.split("/"):
            continue
        globs.append(rel)
    return find_files(outputs, globs)


class Transfer:
    """One per agent; ``fetch_inputs`` before the container, ``upload_outputs`` after it."""

    def __init__(
        self,
        *,
        server_url: str,
        token: str,
        cache_dir: Path,
        timeout_s: float = 60.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base = http_base(server_url)
        self._token = token
        self.files = cache_dir / "files" / "sha256"
        self.locks = KeyedLock(cache_dir / "files" / "locks")
        self.uses = CacheUses()
        """Which input files attempts hold (the runner shares its own here)."""
        self._http = client or httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=10.0))
        self.downloads = 0
        """Inputs fetched over the network (the rest came from the cache)."""

    async def close(self) -> None:
        await self._http.aclose()

    # -- inputs --------------------------------------------------------------------------

    async def fetch_inputs(
        self, inputs: list[FileInput], say: Say, *, owner: object | None = None
    ) -> list[tuple[Path, str]]:
        """Make every input present in the cache; returns ``(cached file, container path)``.
        With ``owner`` each file stays in use by it until ``uses.release(owner)``."""
        mounts = []
        for item in inputs:
            target = item.path
            if posixpath.normpath(target) != target or not target.startswith(
                ("/workspace/", "/inputs/")
            ):
                raise TransferFailed(
                    f"input {item.name}: mount path {target[:200]!r} is not under /workspace or "
                    "/inputs"
                )
            path, fetched = await self._fetch(item, owner)
            say(
                f"input {item.name} → {item.path}: {'downloaded' if fetched else 'cached'} "
                f"({item.size} bytes, sha256 {item.sha256[:12]}…)"
            )
            mounts.append((path, item.path))
        return mounts

    async def _fetch(self, item: FileInput, owner: object | None) -> tuple[Path, bool]:
        if len(item.sha256) != 64 or any(c not in "0123456789abcdef" for c in item.sha256):
            raise TransferFailed(f"input {item.name}: bad sha256 in the dispatch")
        target = self.files / item.sha256
        async with self.locks.hold(item.sha256):
            if owner is not None:
                self.uses.hold(owner, "inputs", item.sha256)
            if target.exists() and target.stat().st_size == item.size:
                os.utime(target)
                return target, False
            if not item.url:
                raise TransferFailed(
                    f"input {item.name} ({item.artifact_id}) is no longer available (deleted?)"
                )
            self.files.mkdir(parents=True, exist_ok=True)
            tmp = self.files / f".{item.sha256}.{secrets.token_hex(4)}.part"
            try:
                await self._download(item, tmp)
                os.chmod(tmp, 0o444)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            self.downloads += 1
            return target, True

    async def _download(self, item: FileInput, tmp: Path) -> None:
        h = hashlib.sha256()
        got = 0
        try:
            async with self._http.stream("GET", item.url) as r:
                if r.status_code != 200:
                    body = (await r.aread())[:300].decode(errors="replace")
                    raise TransferFailed(
                        f"input {item.name}: download refused (HTTP {r.status_code}): {body}"
                    )
                with open(tmp, "wb") as fh:  # noqa: ASYNC230 - opening a local file is one quick syscall; the data moves in threads
                    async for block in r.aiter_bytes(CHUNK):
                        got += len(block)
                        if got > item.size:
                            raise TransferFailed(
                                f"input {item.name}: more than the declared {item.size} bytes"
                            )
                        h.update(block)
                        await asyncio.to_thread(fh.write, block)
        except httpx.HTTPError as exc:
            raise TransferFailed(f"input {item.name}: download failed: {exc}") from None
        if got != item.size or h.hexdigest() != item.sha256:
            raise TransferFailed(
                f"input {item.name}: content does not match its SHA-256/size "
                f"({got} bytes, sha256 {h.hexdigest()[:12]}…); discarded"
            )

    # -- outputs -------------------------------------------------------------------------

    async def upload_outputs(
        self, ref: AttemptRef, outputs: Beneath, patterns: list[FileOutput], say: Say
    ) -> list[dict[str, Any]]:
        """Upload matching outputs and register them; returns the server's artifacts.
        Every file is opened beneath the workspace (``confine.py``); a symlinked ``outputs``
        raises ``WorkspaceEscape`` before anything is asked of the server."""
        names, skipped = await asyncio.to_thread(collect_outputs, outputs, patterns)
        for rel in skipped[:20]:
            say(f"output {rel}: a symlink or special file; skipped (only regular files upload)")
        if not names:
            say("no output files matched " + ", ".join(p.pattern for p in patterns))
            return []
        files = [(rel, Beneath(outputs.root, f"{outputs.rel}/{rel}")) for rel in names]
        declared = []
        for rel, path in files:
            sha256, size = await asyncio.to_thread(_sha256_file, path)
            declared.append({"path": rel, "size": size, "sha256": sha256})
        url = f"{self.base}/api/agent/attempts/{ref.task_id}/{ref.attempt_no}/outputs"
        grant = await self._api("POST", url, {"files": declared})
        done = []
        for (rel, path), item in zip(files, grant["items"], strict=False):
            plan = item["upload"]
            parts = await self._put(path, plan, int(item["artifact"]["size"]))
            done.append({"artifact_id": item["artifact"]["id"], "parts": parts})
            say(
                f"output {rel}: uploaded ({item['artifact']['size']} bytes) as "
                f"{item['artifact']['name']}"
            )
        result = await self._api("POST", url + "/complete", {"items": done})
        return [i["artifact"] for i in result["items"]]

    async def _api(self, method: str, url: str, body: Any) -> Any:
        try:
            r = await self._http.request(
                method, url, json=body, headers={"Authorization": f"Bearer {self._token}"}
            )
        except httpx.HTTPError as exc:
            raise TransferFailed(f"output upload: server unreachable: {exc}") from None
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise TransferFailed(
                f"output upload refused (HTTP {r.status_code}): {str(detail)[:300]}"
            )
        return r.json()

    async def _put(self, path: Beneath, plan: dict[str, Any], size: int) -> list[dict[str, Any]]:
        if plan.get("offset", 0) >= size and not plan.get("parts") and not plan.get("url"):
            return []  # already complete
        if plan.get("url"):
            await self._put_range(plan["url"], path, plan.get("headers") or {}, 0, size)
            return []
        part_size = int(plan["part_size"])
        out = []
        for part in plan["parts"]:
            start = (part["part_number"] - 1) * part_size
            etag = await self._put_range(part["url"], path, {}, start, min(part_size, size - start))
            out.append({"part_number": part["part_number"], "etag": etag})
        return out

    async def _put_range(
        self, url: str, path: Beneath, headers: dict[str, str], start: int, length: int
    ) -> str:
        name = path.rel.rsplit("/", 1)[-1]

        async def body() -> AsyncIterator[bytes]:
            with os.fdopen(open_file(path), "rb") as fh:
                fh.seek(start)
                left = length
                while left > 0:
                    block = await asyncio.to_thread(fh.read, min(CHUNK, left))
                    if not block:
                        raise TransferFailed(f"output {name} shrank while uploading")
                    left -= len(block)
                    yield block

        try:
            r = await self._http.put(
                url, content=body(), headers={**headers, "Content-Length": str(length)}
            )
        except httpx.HTTPError as exc:
            raise TransferFailed(f"output {name}: upload failed: {exc}") from None
        if r.status_code not in (200, 201, 204):
            raise TransferFailed(
                f"output {name}: upload refused (HTTP {r.status_code}): {r.text[:300]}"
            )
        return r.headers.get("etag", "")
