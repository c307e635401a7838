"""Password hashing (argon2) and opaque bearer secrets (stored only as SHA-256).

argon2 costs about 0.1 s of CPU per hash or verify, so both run in a worker thread: a login
(failed ones included) never stalls the event loop that carries heartbeats and ingress.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["dummy_hash", "hash_password", "hash_secret", "new_secret", "verify_password"]

_hasher = PasswordHasher()


@functools.cache
def dummy_hash() -> str:
    """A hash to verify against when the user does not exist (made on first use, not at import)."""
    return _hasher.hash("unidesk-timing-equaliser")


async def hash_password(password: str) -> str:
    """The argon2 hash of ``password``, computed in a worker thread."""
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``, checked in a worker thread. ``stored`` None (no
    such user) verifies against a dummy hash, so a missing user costs the same as a wrong
    password."""
    return await asyncio.to_thread(_verify, stored, password)


def _verify(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored if stored is not None else dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False


def new_secret(prefix: str) -> str:
    """A fresh high-entropy secret such as ``udk_…`` (personal), ``udn_…`` (node), ``uds_…``
    (session)."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
