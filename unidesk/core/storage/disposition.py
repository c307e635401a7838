"""``Content-Disposition: attachment`` for any file name (RFC 6266 with RFC 5987 ``filename*``)."""

from __future__ import annotations

import re
from urllib.parse import quote

__all__ = ["attachment"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._ ()+,;=@\[\]{}~!#$&^`-]")


def attachment(filename: str) -> str:
    """An all-ASCII header value: a plain ``filename`` fallback (non-ASCII, quotes and
    control characters replaced by ``_``) plus ``filename*=UTF-8''…`` with the exact name."""
    fallback = _UNSAFE.sub("_", filename) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
