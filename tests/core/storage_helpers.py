"""Helpers of the storage tests: declare, put through the signed URL, complete."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlsplit

__all__ = ["path_of", "sha", "upload"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def path_of(url: str) -> str:
    """The path and query of a presigned URL (the in-process client has no real host)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def upload(
    client: Any, headers: dict[str, str], name: str, data: bytes, **extra: Any
) -> dict[str, Any]:
    r = await client.post(
        "/api/files",
        json={"name": name, "size": len(data), "sha256": sha(data), **extra},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    plan = r.json()["upload"]
    put = await client.put(path_of(plan["url"]), content=data)
    assert put.status_code == 201, put.text
    done = await client.post(
        f"/api/files/{r.json()['artifact']['id']}/complete", json={}, headers=headers
    )
    assert done.status_code == 200, done.text
    return done.json()
