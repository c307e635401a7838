"""Every message between the server's provider ingress and ``unidesk-agent``.

Both sides import only this module to talk to each other (the agent never imports
``unidesk.core``; the core never imports ``unidesk.gateway_agent``).

Transport: one WebSocket per node, opened by the agent (the server never dials a node) to
``/api/agent/ws`` with ``Authorization: Bearer <node token>``. Every frame is a binary
msgpack encoding of exactly one message below, tagged by its ``type`` field, at most
``MAX_FRAME_BYTES`` long.

Call order:
    agent  → Hello          (first frame; declares version, resources, and the attempts it still
                            answers for: running, or ended with a final report not yet acked)
    server → Welcome        (node id, heartbeat interval) or a close with a reason
    server → Reconcile      (after Welcome: which reported attempts to keep, which to kill)
    agent  → Heartbeat      every ``heartbeat_interval_s`` (usage, health, the attempts it runs and
                            those it ended whose final report is not yet acked); the server
                            compares them with the database: a mismatch seen in two consecutive
                            heartbeats is resolved (an attempt the server no longer expects is
                            killed with a Reconcile; an acked attempt the node no longer has is
                            lost; an unacked final report is asked for again with a Nack)
    server → Dispatch       one attempt to run; the agent answers Ack at once (at-least-once:
                            the server redelivers an unacked Dispatch; the agent acks duplicates
                            again and runs the attempt once)
    agent  → AttemptState   preparing (with stage) → running → exited/failed
    server → Ack            after a final AttemptState (exited/failed) is committed (or was
                            already known, or fenced): the agent may then forget that report
    agent  → LogChunk       ordered by ``seq`` per attempt; the server answers LogAck for each
                            stored seq (the server drops seqs it already has)
    agent  → AttemptData    items a running attempt wrote for a channel (``metrics``: the JSON lines
                            the container appends to ``$UNIDESK_METRICS_FILE``), numbered by
                            ``seq`` per (attempt, channel); the server hands them to the plugins and
                            answers AttemptDataAck for that seq; the agent resends unacked batches
                            after a reconnect (the server's plugins skip seqs they already stored),
                            and sends an attempt's last batches before its final AttemptState
    server → Nack           a report (final or latest AttemptState, LogChunk, AttemptData) could
                            not be applied (e.g. the database is down): the agent sends it again
                            on the same socket after a backoff. Independently, the agent resends
                            every report not acknowledged within its resend bound (backoff), and
                            everything unacknowledged after a reconnect
    server → Cancel         stop an attempt; the agent reports its final AttemptState
    server → ClearCaches    an admin asked to empty the node's caches (git, inputs, env images);
                            the agent evicts every entry no attempt uses and sends a Heartbeat
                            with the new sizes
    either → Error          a problem with one message; the connection stays open

Error rules (every close carries a reason; the codes come from ``unidesk.errors``): a frame
that does not decode, is too large, or has an unexpected type closes the socket with 4400 (1009
for size); a missing or bad token closes with 4401, a revoked one 4403; a protocol version the
server does not speak closes with 4426; a second connection with the same node token replaces
the first (4409); a node silent for the offline timeout is closed with 4408; a server that
cannot register the node now closes with 1013 and one shutting down with 1001 (both: retry
with backoff; after 1001 or 1012 the agent redials on a short bound for a restart window). A
server draining for a stop, or with more sockets waiting for registration than it takes,
refuses a new socket before the upgrade with HTTP 503 and ``Retry-After: <seconds>``: the agent
waits that long (plus jitter) and dials again. 4401, 4403, 4409 and 4426 are final: the agent
exits instead of retrying.
Every message about an attempt carries ``(task_id, attempt_no)``; a report for a stale or
foreign attempt is recorded as a fact and changes nothing (fencing).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from unidesk.errors import (
    Conflict,
    Forbidden,
    IncompatibleProtocol,
    PayloadTooLarge,
    ProtocolViolation,
    TimedOut,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "CLOSE_BAD_FRAME",
    "CLOSE_BUSY",
    "CLOSE_INCOMPATIBLE",
    "CLOSE_REPLACED",
    "CLOSE_REVOKED",
    "CLOSE_SERVER_SHUTDOWN",
    "CLOSE_SILENT",
    "CLOSE_TOO_BIG",
    "CLOSE_UNAUTHENTICATED",
    "MAX_FRAME_BYTES",
    "MAX_SKIPPED_SAMPLES",
    "MAX_SKIPPED_SAMPLE_CHARS",
    "PROTOCOL_VERSION",
    "Ack",
    "AttemptData",
    "AttemptDataAck",
    "AttemptRef",
    "AttemptState",
    "CacheUsage",
    "Cancel",
    "ClearCaches",
    "Dispatch",
    "Error",
    "FileInput",
    "FileOutput",
    "Gpu",
    "GpuUsage",
    "Heartbeat",
    "Hello",
    "HostMount",
    "LogAck",
    "LogChunk",
    "LogStream",
    "Message",
    "Nack",
    "NackOf",
    "Reconcile",
    "Usage",
    "Welcome",
    "decode",
    "encode",
]

PROTOCOL_VERSION = 9
"""2: AttemptData / AttemptDataAck (data written by attempts, e.g. metrics).
3: Dispatch carries secret values (secret_env, repository and registry credentials,
missing_secrets); the agent masks them in everything it reports.
4: Dispatch.pids_limit (a task's own process limit, within the server's cap).
5: Usage.caches (cache sizes and caps in heartbeats), ClearCaches.
6: Hello.host_mounts (named host directories), Dispatch.mounts and Dispatch.workspace.
7: LogChunk.ts (source time of the chunk's first line; seq follows it across streams).
8: Nack; Heartbeat.finished; Welcome.offline_timeout_s (the agent's self-fence default); a
LogAck acknowledges exactly its seq (not every seq up to it); fenced final reports are acked.
9: AttemptData.skipped_lines and skipped_samples (lines of the file the agent skipped as
malformed; optional, so a batch without them still decodes)."""
MAX_FRAME_BYTES = 4 * 1024 * 1024

# Close codes come from the error tree (unidesk.errors); 1001 "going away" is not an error.
CLOSE_BAD_FRAME = ProtocolViolation.close_code  # 4400
CLOSE_UNAUTHENTICATED = Unauthenticated.close_code  # 4401
CLOSE_REVOKED = Forbidden.close_code  # 4403
CLOSE_SILENT = TimedOut.close_code  # 4408: no frames within the offline timeout
CLOSE_REPLACED = Conflict.close_code  # 4409
CLOSE_INCOMPATIBLE = IncompatibleProtocol.close_code  # 4426
CLOSE_TOO_BIG = PayloadTooLarge.close_code  # 1009
CLOSE_BUSY = Unavailable.close_code  # 1013: try again later (not final)
CLOSE_SERVER_SHUTDOWN = 1001

AttemptPhase = Literal["preparing", "running", "exited", "failed"]
"""``exited``: the command ran and ended (see exit_code/reason); ``failed``: it could not run."""

EndReason = Literal["succeeded", "exit_nonzero", "timed_out", "cancelled", "infra_error", "killed"]


class Gpu(msgspec.Struct, frozen=True):
    index: int
    model: str
    memory_mb: int
    uuid: str


class GpuUsage(msgspec.Struct, frozen=True):
    index: int
    util_percent: float
    memory_used_mb: int


class CacheUsage(msgspec.Struct, frozen=True):
    """One node cache: ``git`` (repositories), ``inputs`` (input files), ``images`` (env images)."""

    name: str
    bytes: int
    cap_bytes: int
    entries: int


class Usage(msgspec.Struct, frozen=True):
    cpu_percent: float = 0.0
    memory_used_mb: int = 0
    memory_total_mb: int = 0
    disk_free_mb: int = 0
    gpus: list[GpuUsage] = []
    caches: list[CacheUsage] = []


class AttemptRef(msgspec.Struct, frozen=True):
    task_id: str
    attempt_no: int


class FileInput(msgspec.Struct, frozen=True):
    """An input artifact: fetched by URL, verified by SHA-256, placed read-only at ``path``."""

    artifact_id: str
    name: str
    url: str
    sha256: str
    size: int
    path: str


class FileOutput(msgspec.Struct, frozen=True):
    """Paths or globs under /workspace/outputs the agent uploads after the run."""

    pattern: str


class HostMount(msgspec.Struct, frozen=True):
    """A host directory the node's owner declared by name (``--host-mount home=/home/ubuntu``)."""

    name: str
    read_only: bool


class Hello(msgspec.Struct, tag="hello", kw_only=True):
    protocol_version: int
    agent_version: str
    node_name: str
    hostname: str
    os: str
    cpus: float
    memory_mb: int
    gpus: list[Gpu] = []
    labels: dict[str, str] = {}
    runtimes: list[str] = msgspec.field(default_factory=lambda: ["docker"])
    host_mounts: list[HostMount] = []
    """Named host directories tasks may request (the host paths stay on the node)."""
    running: list[AttemptRef] = []
    instance_id: str = ""
    unhealthy_reason: str | None = None


class Welcome(msgspec.Struct, tag="welcome", kw_only=True):
    protocol_version: int
    node_id: str
    heartbeat_interval_s: float
    server_instance: str = ""
    offline_timeout_s: float = 90.0
    """After this long without a heartbeat the server declares the node's attempts lost; an
    agent cut off that long stops its containers (self-fence)."""


class Heartbeat(msgspec.Struct, tag="heartbeat", kw_only=True):
    seq: int
    usage: Usage = Usage()
    running: list[AttemptRef] = []
    finished: list[AttemptRef] = []
    """Attempts that ended here whose final report the server has not acknowledged yet."""
    unhealthy_reason: str | None = None
    sent_at: float = 0.0
    """The node's own clock; recorded, never used for liveness."""


class Dispatch(msgspec.Struct, tag="dispatch", kw_only=True):
    task_id: str
    attempt_no: int
    code_repo_url: str
    code_commit_id: str
    env_repo_url: str
    env_commit_id: str
    dockerfile_path: str
    command: list[str]
    env: dict[str, str] = {}
    cpus: float = 1.0
    memory_mb: int = 512
    gpu_indices: list[int] = []
    timeout_s: int = 3600
    pids_limit: int = 0
    """Processes the container may hold; 0: the node's default (its ``pids_limit``)."""
    inputs: list[FileInput] = []
    outputs: list[FileOutput] = []
    kind: str = "container"
    """``container`` for ordinary tasks; ``host.ssh`` for bounded admin maintenance operations."""
    params: dict[str, str] = {}
    mounts: dict[str, str] = {}
    """Declared host mounts this task requested: name -> container path (absolute)."""
    workspace: str = ""
    """A declared host mount to mount at ``/workspace`` as the working directory (then the code
    checkout is mounted read-only at ``/code``); empty: the fresh per-attempt checkout."""
    secret_env: dict[str, str] = {}
    """Secret values for the container's environment, resolved for this attempt only. The agent
    keeps them in memory, never on disk, and masks every one (and its encodings) in logs."""
    code_repo_credential: str = ""
    """For code_repo_url's fetch only: an SSH private key (ssh) or ``user:token``/a token
    (https)."""
    env_repo_credential: str = ""
    """Same for env_repo_url."""
    git_known_hosts: str = ""
    """known_hosts lines for ssh fetches of this attempt (else the node's own file)."""
    registry_auth: dict[str, str] = {}
    """Registry host → ``user:password``, for the env build's FROM pulls only."""
    missing_secrets: list[str] = []
    """References the server could not resolve (deleted since submit): the attempt fails."""

    def secret_values(self) -> list[str]:
        """Every secret value this dispatch carries (what the agent must mask)."""
        return [
            *self.secret_env.values(),
            *self.registry_auth.values(),
            *[v.split(":", 1)[1] for v in self.registry_auth.values() if ":" in v],
            *(v for v in (self.code_repo_credential, self.env_repo_credential) if v),
            *(
                v.split(":", 1)[1]
                for v in (self.code_repo_credential, self.env_repo_credential)
                if ":" in v and "\n" not in v.strip()
            ),
        ]


class Ack(msgspec.Struct, tag="ack", kw_only=True):
    task_id: str
    attempt_no: int


class AttemptState(msgspec.Struct, tag="attempt_state", kw_only=True):
    task_id: str
    attempt_no: int
    phase: AttemptPhase
    stage: str | None = None
    """While preparing: fetch_code, fetch_env, build_image, fetch_inputs, upload_outputs."""
    exit_code: int | None = None
    reason: EndReason | None = None
    message: str | None = None


LogStream = Literal["stdout", "stderr", "build", "system"]
"""Where a log line came from: the container's two streams, the image build, the agent itself."""


class LogChunk(msgspec.Struct, tag="log", kw_only=True):
    task_id: str
    attempt_no: int
    seq: int
    stream: LogStream
    data: str
    ts: float = 0.0
    """When its first byte was written, at the source (Docker's timestamp of the line; the
    agent's clock for build and system lines), epoch seconds; 0: unknown. The agent numbers
    chunks in this order across streams, so ``seq`` order is the order of writing."""


class LogAck(msgspec.Struct, tag="log_ack", kw_only=True):
    task_id: str
    attempt_no: int
    seq: int


class AttemptData(msgspec.Struct, tag="attempt_data", kw_only=True):
    """A batch of items (decoded JSON objects, unvalidated) an attempt wrote for ``channel``."""

    task_id: str
    attempt_no: int
    channel: str
    seq: int
    items: list[dict[str, Any]]
    skipped_lines: int = 0
    """Lines of the channel's file the agent skipped since the previous batch (not UTF-8, not
    JSON, not an object, too long); the batch may then carry no items. Absent (0) from older
    agents."""
    skipped_samples: list[str] = []
    """A few of those lines (at most ``MAX_SKIPPED_SAMPLES``, each at most
    ``MAX_SKIPPED_SAMPLE_CHARS``): ``"line 7: not JSON (Expecting value): loss=0.3"``."""


MAX_SKIPPED_SAMPLES = 5
MAX_SKIPPED_SAMPLE_CHARS = 300


class AttemptDataAck(msgspec.Struct, tag="attempt_data_ack", kw_only=True):
    """The server stored (or deliberately refused) batch ``seq``: the agent may forget it."""

    task_id: str
    attempt_no: int
    channel: str
    seq: int


NackOf = Literal["attempt_state", "log", "attempt_data"]
"""Which report a ``Nack`` names."""


class Nack(msgspec.Struct, tag="nack", kw_only=True):
    """The server could not apply a report (or, from heartbeat reconciliation, has not got it):
    send it again after a backoff. ``of`` names the report: ``attempt_state`` (the final one, or
    else the latest), ``log`` (chunk ``seq``) or ``attempt_data`` (batch ``seq`` of ``channel``)."""

    task_id: str
    attempt_no: int
    of: NackOf
    seq: int = 0
    channel: str = ""
    reason: str = ""


class Cancel(msgspec.Struct, tag="cancel", kw_only=True):
    task_id: str
    attempt_no: int
    reason: Literal["cancelled", "reconcile", "lost"] = "cancelled"


class ClearCaches(msgspec.Struct, tag="clear_caches", kw_only=True):
    """Evict every cache entry no attempt uses (an admin's request, id from its event)."""

    request_id: str = ""


class Reconcile(msgspec.Struct, tag="reconcile", kw_only=True):
    keep: list[AttemptRef] = []
    kill: list[AttemptRef] = []


class Error(msgspec.Struct, tag="error", kw_only=True):
    code: str
    message: str


Message = (
    Hello
    | Welcome
    | Heartbeat
    | Dispatch
    | Ack
    | AttemptState
    | LogChunk
    | LogAck
    | AttemptData
    | AttemptDataAck
    | Nack
    | Cancel
    | ClearCaches
    | Reconcile
    | Error
)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


def encode(msg: Message) -> bytes:
    return _encoder.encode(msg)


def decode(frame: bytes) -> Message:
    """Decode one frame; raises ``msgspec.DecodeError``/``ValidationError`` on bad input (a
    frame nested past what the decoder recurses into too, not a RecursionError)."""
    try:
        return _decoder.decode(frame)
    except RecursionError:
        raise msgspec.DecodeError("frame nested too deeply") from None
