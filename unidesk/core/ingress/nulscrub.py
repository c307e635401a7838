"""U+0000 in agent frames: PostgreSQL text and JSONB cannot hold it, so it never reaches a query.

A hello carrying one is a bad frame (the node's facts are refused, with the field named); text
a task or the engine produced (an attempt's message, an unhealthy reason) keeps U+FFFD in its
place; a data item holding one is dropped and counted with the lines the agent skipped. Log
chunks are handled where they are written (``reports._log``), with the same ``replace_nul``.
"""

from __future__ import annotations

import msgspec

from unidesk import protocol
from unidesk.core.nul_guard import find_nul

__all__ = ["hello_nul", "replace_nul", "scrub"]

_NUL = b"\\u0000"
_json = msgspec.json.Encoder()


def _has_nul(value: object) -> bool:
    return _NUL in _json.encode(value)  # one C pass; the walk only when there is one


def hello_nul(hello: protocol.Hello) -> str | None:
    """The field of ``hello`` holding U+0000 (``hostname``, ``labels.pool``), or None."""
    if not _has_nul(hello):
        return None
    return find_nul(msgspec.to_builtins(hello)) or "?"


def replace_nul(text: str) -> str:
    """``text`` with U+FFFD for each U+0000 (as for bytes the agent could not decode)."""
    return text.replace("\x00", "\ufffd")


def _text(value: str | None) -> str | None:
    return replace_nul(value) if value else value


def scrub(msg: protocol.Message) -> protocol.Message:
    """``msg`` with no U+0000 left in what the server stores (unchanged when there is none)."""
    if isinstance(msg, protocol.AttemptState):
        if (msg.message and "\x00" in msg.message) or (msg.stage and "\x00" in msg.stage):
            return msgspec.structs.replace(msg, message=_text(msg.message), stage=_text(msg.stage))
    elif isinstance(msg, protocol.Heartbeat):
        if msg.unhealthy_reason and "\x00" in msg.unhealthy_reason:
            return msgspec.structs.replace(msg, unhealthy_reason=_text(msg.unhealthy_reason))
    elif isinstance(msg, protocol.AttemptData) and _has_nul(msg):
        kept = [item for item in msg.items if not _has_nul(item)]
        dropped = len(msg.items) - len(kept)
        samples = [replace_nul(s) for s in msg.skipped_samples]
        if dropped and len(samples) < protocol.MAX_SKIPPED_SAMPLES:
            samples.append("(an item holding a NUL character)")
        return msgspec.structs.replace(
            msg,
            channel=replace_nul(msg.channel),
            items=kept,
            skipped_lines=msg.skipped_lines + dropped,
            skipped_samples=samples,
        )
    return msg
