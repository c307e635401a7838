"""Per-attempt log buffering: ordered ``seq`` numbers, bounded chunks, resend until acked."""

from __future__ import annotations

import codecs
import logging
import time
from typing import Literal

from unidesk.masking import SecretMasker, StreamMasker
from unidesk.protocol import LogChunk

__all__ = ["CHUNK_BYTES", "FLUSH_INTERVAL_S", "MAX_UNACKED_BYTES", "AttemptLog"]

Stream = Literal["stdout", "stderr", "build", "system"]

FLUSH_INTERVAL_S = 1.0
"""Buffered output is sent at least this often."""
CHUNK_BYTES = 1024 * 1024
"""A chunk carries at most this much output; reaching it triggers an early flush."""
MAX_UNACKED_BYTES = 64 * 1024 * 1024
"""Past this, the oldest unacknowledged chunks are dropped (a server that never acks)."""

log = logging.getLogger(__name__)


class AttemptLog:
    """Output of one attempt: pending bytes, then numbered chunks kept until the server acks."""

    def __init__(self, task_id: str, attempt_no: int, masker: SecretMasker | None = None) -> None:
        self.task_id = task_id
        self.masker = masker if masker else None
        """Masks the attempt's secret values in every chunk before it is numbered (and sent)."""
        self._maskers: dict[str, StreamMasker] = {}
        self.attempt_no = attempt_no
        self.next_seq = 1
        self._pending: list[tuple[Stream, bytearray, float]] = []
        """Runs of one stream in arrival order, each with the source time of its first byte."""
        self._pending_bytes = 0
        self._pending_mark = 0
        self.mark = 0
        """The source log position (see ``append``) the numbered chunks reach; 0: none."""
        self._decoders: dict[Stream, codecs.IncrementalDecoder] = {}
        self._unacked: dict[int, LogChunk] = {}
        self._unacked_bytes = 0
        self.dropped = 0

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    @property
    def idle(self) -> bool:
        """Nothing pending and nothing waiting for an ack."""
        return not self._pending and not self._unacked

    def append(
        self, stream: Stream, data: bytes, ts: float | None = None, mark: int | None = None
    ) -> bool:
        """Buffer output written at ``ts`` (source time; None: now); ``mark``: the source log
        position this output reaches (a container log's nanosecond line time), kept as
        ``mark`` once cut. Returns True when a chunk's worth is pending (flush soon)."""
        if mark:
            self._pending_mark = max(self._pending_mark, mark)
        if not data:
            return False
        if self._pending and self._pending[-1][0] == stream:
            self._pending[-1][1].extend(data)
        else:
            self._pending.append((stream, bytearray(data), time.time() if ts is None else ts))
        self._pending_bytes += len(data)
        return self._pending_bytes >= CHUNK_BYTES

    def cut(self, *, final: bool = False) -> list[LogChunk]:
        """Turn pending output into numbered chunks (kept as unacked) and return them.

        ``final`` also flushes the UTF-8 decoders, so a trailing partial character is not lost.
        With a masker, each stream's last characters (possibly the start of a secret value) are
        held back until the next cut, or sent masked at the final one.
        """
        chunks: list[LogChunk] = []
        for stream, data, ts in self._pending:
            decoder = self._decoders.setdefault(
                stream, codecs.getincrementaldecoder("utf-8")("replace")
            )
            for start in range(0, len(data), CHUNK_BYTES):
                text = self._mask(stream, decoder.decode(bytes(data[start : start + CHUNK_BYTES])))
                if text:
                    chunks.append(self._number(stream, text, ts))
        self._pending.clear()
        self._pending_bytes = 0
        self.mark = max(self.mark, self._pending_mark)
        if final:
            for stream, decoder in self._decoders.items():
                tail = self._mask(stream, decoder.decode(b"", final=True), final=True)
                if tail:
                    chunks.append(self._number(stream, tail, time.time()))
        return chunks

    def _mask(self, stream: str, text: str, *, final: bool = False) -> str:
        if self.masker is None:
            return text
        masker = self._maskers.get(stream)
        if masker is None:
            masker = self._maskers[stream] = self.masker.stream()
        return masker.feed(text, final=final)

    def _number(self, stream: Stream, text: str, ts: float) -> LogChunk:
        chunk = LogChunk(
            task_id=self.task_id,
            attempt_no=self.attempt_no,
            seq=self.next_seq,
            stream=stream,
            data=text,
            ts=ts,
        )
        self.next_seq += 1
        self._unacked[chunk.seq] = chunk
        self._unacked_bytes += len(text)
        while self._unacked_bytes > MAX_UNACKED_BYTES and len(self._unacked) > 1:
            seq, old = next(iter(self._unacked.items()))
            del self._unacked[seq]
            self._unacked_bytes -= len(old.data)
            self.dropped += 1
            log.warning(
                "dropping unacknowledged log chunk %s of %s/%s: the server is not acking",
                seq,
                self.task_id,
                self.attempt_no,
            )
        return chunk

    def ack(self, seq: int) -> None:
        """The server stored chunk ``seq`` (only that one: an earlier chunk it could not store
        is still unacked and is sent again)."""
        chunk = self._unacked.pop(seq, None)
        if chunk is not None:
            self._unacked_bytes -= len(chunk.data)

    def get(self, seq: int) -> LogChunk | None:
        return self._unacked.get(seq)

    def unacked(self) -> list[LogChunk]:
        """Chunks sent (or cut) but not yet acknowledged, in seq order: resent until acked."""
        return list(self._unacked.values())
