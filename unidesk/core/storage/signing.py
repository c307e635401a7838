"""HMAC-signed URLs of the local backend: method, key, expiry (and size and SHA-256 for uploads).

    GET  /api/files/signed/<key>?exp=<unix s>[&name=<file name>]&sig=<hex>
    PUT  /api/files/signed/<key>?exp=<unix s>&size=<bytes>&sha256=<hex>&sig=<hex>

``sig`` is HMAC-SHA256 over ``METHOD\\nkey\\nexp\\n…`` with the server's signing key, so a URL
works only for its method and key, until it expires, and (PUT) for exactly the declared body.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlencode

import msgspec

from unidesk.core.storage.protocol import check_key
from unidesk.errors import BadRequest, Forbidden

__all__ = ["SIGNED_PREFIX", "SignedGet", "SignedPut", "Signer", "load_signing_key"]

SIGNED_PREFIX = "/api/files/signed/"


class SignedGet(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    filename: str | None


class SignedPut(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    size: int
    sha256: str


def load_signing_key(configured: str | None, data_dir: Path) -> bytes:
    """The configured key, else ``<data_dir>/storage/signing.key`` (made once, mode 0600)."""
    if configured:
        return configured.encode()
    path = data_dir / "storage" / "signing.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


class Signer:
    def __init__(
        self, key: bytes, base_url: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = key
        self.base_url = base_url.rstrip("/")
        self._clock = clock

    def _sig(self, *fields: str) -> str:
        return hmac.new(self._key, "\n".join(fields).encode(), hashlib.sha256).hexdigest()

    def _url(self, key: str, params: dict[str, str]) -> str:
        return f"{self.base_url}{SIGNED_PREFIX}{quote(key)}?{urlencode(params)}"

    def get_url(self, key: str, *, expires_s: int, filename: str | None = None) -> str:
        exp = str(int(self._clock()) + expires_s)
        params = {"exp": exp}
        if filename:
            params["name"] = filename
        params["sig"] = self._sig("GET", check_key(key), exp, filename or "")
        return self._url(key, params)

    def put_url(self, key: str, *, size: int, sha256: str, expires_s: int) -> tuple[str, float]:
        exp = int(self._clock()) + expires_s
        params = {"exp": str(exp), "size": str(size), "sha256": sha256}
        params["sig"] = self._sig("PUT", check_key(key), str(exp), str(size), sha256)
        return self._url(key, params), float(exp)

    def _check(self, query: dict[str, str], *fields: str) -> None:
        sig = query.get("sig", "")
        if not sig:
            raise Forbidden("this URL carries no signature")
        if not hmac.compare_digest(sig.encode(), self._sig(*fields).encode()):
            raise Forbidden(
                "URL signature does not match (tampered, or used for another method or key)"
            )
        try:
            exp = int(query.get("exp", ""))
        except ValueError:
            raise Forbidden("URL expiry is not a number") from None
        if exp < self._clock():
            raise Forbidden("URL expired; ask for a new one")

    def verify_get(self, key: str, query: dict[str, str]) -> SignedGet:
        check_key(key)
        filename = query.get("name") or None
        self._check(query, "GET", key, query.get("exp", ""), filename or "")
        return SignedGet(key=key, filename=filename)

    def verify_put(self, key: str, query: dict[str, str]) -> SignedPut:
        check_key(key)
        size_s, sha = query.get("size", ""), query.get("sha256", "")
        self._check(query, "PUT", key, query.get("exp", ""), size_s, sha)
        try:
            size = int(size_s)
        except ValueError:
            raise BadRequest("size is not a number") from None
        return SignedPut(key=key, size=size, sha256=sha)
