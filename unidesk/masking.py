"""Masking of secret values in text, shared by the agent (before logs leave the node) and the
server (again, before logs are stored).

Each value is masked as itself, as each of its lines (multi-line keys), base64 (standard and
URL-safe, at every alignment inside a longer base64 text) and URL-encoded. ``StreamMasker``
masks a stream cut into chunks: it holds back only the end of a chunk that could be the start
of a value (the longest suffix that is a proper prefix of some form) until the next chunk or the
end, so a value split across two chunks is still masked and ordinary lines are not delayed.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "MIN_SECRET_LENGTH", "SecretMasker", "StreamMasker", "mask_forms"]

MASK = "***"
MIN_SECRET_LENGTH = 4
"""Shorter values are not masked (they would mask ordinary text); the store refuses them."""
_MIN_LINE = 8


def _b64_stable(raw: bytes) -> list[str]:
    """Base64 text that appears whenever ``raw`` is encoded at any offset of a longer input:
    for each alignment, the encoding of the whole 3-byte groups only."""
    out = []
    for skip in range(3):
        part = raw[skip:]
        whole = len(part) // 3 * 3
        if whole >= 3:
            for enc in (base64.b64encode, base64.urlsafe_b64encode):
                out.append(enc(part[:whole]).decode())
    return out


def mask_forms(value: str) -> set[str]:
    """Every form of ``value`` to mask (empty when it is too short to mask safely)."""
    if len(value) < MIN_SECRET_LENGTH:
        return set()
    forms = {value, quote(value, safe=""), quote_plus(value), quote(value)}
    raw = value.encode()
    forms.update(f for f in _b64_stable(raw) if len(f) >= MIN_SECRET_LENGTH)
    stripped = value.strip()
    if stripped != value and len(stripped) >= MIN_SECRET_LENGTH:
        forms.add(stripped)
    for line in value.splitlines():
        line = line.strip()
        if len(line) >= _MIN_LINE:
            forms.add(line)
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


class SecretMasker:
    """Replaces every form of the given values with ``***``."""

    def __init__(self, values: Iterable[str]) -> None:
        forms: set[str] = set()
        for v in values:
            forms |= mask_forms(v)
        ordered = sorted(forms, key=len, reverse=True)
        self.forms = ordered
        self.longest = len(ordered[0]) if ordered else 0
        self._re = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __bool__(self) -> bool:
        return self._re is not None

    def mask(self, text: str) -> str:
        return self._re.sub(MASK, text) if self._re is not None and text else text

    def stream(self) -> StreamMasker:
        return StreamMasker(self)

    def open_prefix(self, text: str) -> int:
        """Length of the longest end of ``text`` that is a proper prefix of a form (0: none)."""
        window = text[-(self.longest - 1) :] if self.longest > 1 else ""
        n, best = len(window), 0
        for form in self.forms:
            # Candidate starts: where the form's first character occurs in the last len-1 chars.
            p = window.find(form[0], max(0, n - (len(form) - 1)))
            while p != -1 and n - p > best:
                if form.startswith(window[p:]):
                    best = n - p  # positions ascend, so this is the longest for this form
                    break
                p = window.find(form[0], p + 1)
        return best


class StreamMasker:
    """Masks one stream fed in pieces; ``feed`` returns what is safe to send now."""

    def __init__(self, masker: SecretMasker) -> None:
        self.masker = masker
        self._tail = ""

    def feed(self, text: str, *, final: bool = False) -> str:
        buf = self._tail + text
        pattern = self.masker._re
        if pattern is None:
            self._tail = ""
            return buf
        # Everything before ``cut`` can no longer be the start of an unfinished value.
        cut = len(buf) if final else len(buf) - self.masker.open_prefix(buf)
        out, pos = [], 0
        for m in pattern.finditer(buf):
            if m.start() >= cut:
                break
            out.append(buf[pos : m.start()])
            out.append(MASK)
            pos = m.end()
        end = max(cut, pos)
        out.append(buf[pos:end])
        self._tail = buf[end:]
        return "".join(out)

    def flush(self) -> str:
        return self.feed("", final=True)
