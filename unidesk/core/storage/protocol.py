"""The one object-store interface (``ObjectStore``) both backends implement, and its value types.

Keys are server-made (``artifacts/<uuid>``); ``check_key`` refuses anything else that could
escape the store (``..``, absolute paths, backslashes, NUL). Bytes never pass through these
methods except for the local backend's own signed routes: callers hand out presigned URLs.
"""

from __future__ import annotations

import re
from typing import Protocol

import msgspec

from unidesk.errors import BadRequest

__all__ = ["SHA256_RE", "ObjectStat", "ObjectStore", "PartUrl", "UploadPlan", "check_key"]

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,511}$")


def check_key(key: str) -> str:
    """A safe object key, or ``BadRequest``: relative, no ``..`` or empty segments."""
    if not _KEY_RE.match(key) or any(part in ("", ".", "..") for part in key.split("/")):
        raise BadRequest(
            "object key must be a relative path without '..', '.' or empty segments", key=key[:100]
        )
    return key


class ObjectStat(msgspec.Struct, frozen=True, kw_only=True):
    size: int
    etag: str = ""


class PartUrl(msgspec.Struct, frozen=True, kw_only=True):
    part_number: int
    url: str


class UploadPlan(msgspec.Struct, kw_only=True):
    """How a client puts the bytes: one ``PUT url`` (the local backend also accepts
    ``Content-Range`` chunks on it, resumable) or S3 multipart parts, then ``complete``."""

    method: str = "PUT"
    url: str | None = None
    headers: dict[str, str] = {}
    expires_at: float = 0.0
    upload_id: str | None = None
    part_size: int | None = None
    parts: list[PartUrl] = []
    done_parts: list[int] = []
    """Multipart parts the store already holds (for resuming)."""
    offset: int = 0
    """Bytes the local backend already holds (for resuming with ``Content-Range``)."""


class ObjectStore(Protocol):
    """A backend chosen by ``settings.storage_backend`` (``local`` or ``s3``)."""

    backend: str

    async def presign_get(self, key: str, *, expires_s: int, filename: str | None = None) -> str:
        """A URL that serves the object to anyone holding it until it expires (Range honoured)."""

    async def plan_upload(
        self, key: str, *, size: int, sha256: str, expires_s: int, upload_id: str | None = None
    ) -> UploadPlan:
        """URLs to put an object of exactly ``size`` bytes and this SHA-256; with ``upload_id``
        (multipart) or an existing partial (local) the plan says what is already there."""

    async def complete_upload(
        self,
        key: str,
        *,
        size: int,
        sha256: str,
        upload_id: str | None,
        parts: list[tuple[int, str]],
    ) -> ObjectStat:
        """Make a finished upload visible (multipart: assemble ``(part_number, etag)``); raises
        ``Conflict`` when the object is missing or its size differs (and removes it)."""

    async def abort_upload(self, key: str, *, upload_id: str | None) -> None:
        """Drop an unfinished upload's parts or partial file; no error if there is none."""

    async def stat(self, key: str) -> ObjectStat | None:
        """Size and ETag of a complete object, or None."""

    async def delete(self, key: str) -> None:
        """Remove an object; no error if it is already gone."""

    async def check(self) -> str | None:
        """Health: None when the store answers and accepts writes, else the reason."""

    async def close(self) -> None:
        """Release clients and files."""
