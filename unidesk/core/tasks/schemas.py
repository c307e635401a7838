"""Public shapes of tasks and attempts: TaskCreate (input), Task and Attempt (output)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec

from unidesk.core.secrets.schemas import SecretRef
from unidesk.core.storage.schemas import OutputPattern, TaskInput
from unidesk.core.tasks.models import ACCOUNT_PATTERN
from unidesk.core.tasks.states import AttemptStateName, TaskState

__all__ = [
    "COMMIT_PATTERN",
    "MAX_BATCH_TASKS",
    "Attempt",
    "Credentials",
    "ResourceRequest",
    "Resources",
    "Task",
    "TaskBatch",
    "TaskBatchCreate",
    "TaskCreate",
    "TaskPage",
    "TraceOut",
]

COMMIT_PATTERN = r"^([0-9a-f]{40}|[0-9a-f]{64})$"
Commit = Annotated[
    str, msgspec.Meta(pattern=COMMIT_PATTERN, description="Full 40- or 64-hex commit id")
]
RepoUrl = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
LabelKey = Annotated[
    str, msgspec.Meta(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
]
LabelValue = Annotated[str, msgspec.Meta(max_length=128)]
Labels = Annotated[dict[LabelKey, LabelValue], msgspec.Meta(max_length=32)]
Arg = Annotated[str, msgspec.Meta(max_length=8192)]
EnvValue = Annotated[str, msgspec.Meta(max_length=32768)]
EnvKey = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class Resources(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    cpus: Annotated[float, msgspec.Meta(gt=0, le=1024)] = 1.0
    memory_mb: Annotated[int, msgspec.Meta(ge=16, le=4 * 1024 * 1024)] = 512
    gpus: Annotated[int, msgspec.Meta(ge=0, le=64)] = 0
    labels: Labels = {}
    gpu_model: (
        Annotated[
            str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9 ._*?\[\]-]+$")
        ]
        | None
    ) = None
    """Shell-style pattern each assigned GPU's model must match, case-insensitive (``A100*``)."""
    gpu_memory_mb: Annotated[int, msgspec.Meta(ge=1, le=16 * 1024 * 1024)] | None = None
    """Least memory of each assigned GPU, MB."""
    pids_limit: Annotated[int, msgspec.Meta(ge=16, le=4_194_304)] | None = None
    """Processes the container may hold; None: the node's default (256). At most the server's
    ``max_task_pids_limit``."""


class ResourceRequest(Resources, kw_only=True, forbid_unknown_fields=True):
    """Resources as submitted: also accepts the ``gpu`` shorthand."""

    gpu: Annotated[str, msgspec.Meta(min_length=1, max_length=160)] | None = None
    """Shorthand ``MODEL[:<n>GB][:COUNT]`` (dstack-like, e.g. ``A100:80GB:2``)."""


RegistryHost = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?$"
    ),
]


class Credentials(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Secrets the node uses to fetch code and build the env (never put in the container)."""

    code_repo: SecretRef | None = None
    """For code_repo_url: an SSH private key (ssh://, user@host:path) or ``user:token`` / a token
    (https)."""
    env_repo: SecretRef | None = None
    """Same, for env_repo_url."""
    known_hosts: SecretRef | None = None
    """known_hosts lines for ssh fetches (else the node's own); host keys are always checked."""
    registries: Annotated[dict[RegistryHost, SecretRef], msgspec.Meta(max_length=8)] = {}
    """Registry host → ``user:password`` secret, used for the env build's FROM pulls only."""


class TaskCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A task pinned to exact code and environment commits."""

    code_repo_url: RepoUrl
    code_commit_id: Commit
    env_repo_url: RepoUrl
    env_commit_id: Commit
    dockerfile_path: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    command: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=65536)]
        | Annotated[list[Arg], msgspec.Meta(min_length=1, max_length=1024)]
    )
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    env: Annotated[dict[EnvKey, EnvValue], msgspec.Meta(max_length=256)] = {}
    resources: ResourceRequest = msgspec.field(default_factory=ResourceRequest)
    timeout_s: Annotated[int, msgspec.Meta(ge=1, le=30 * 24 * 3600)] = 3600
    expected_duration_s: Annotated[int, msgspec.Meta(ge=1, le=30 * 24 * 3600)] | None = None
    """Your estimate of the run time (at most ``timeout_s``): reservations and backfill use it."""
    priority: Annotated[int, msgspec.Meta(ge=-1000, le=1000)] = 0
    account: Annotated[str, msgspec.Meta(pattern=ACCOUNT_PATTERN)] | None = None
    """The account the task's use is charged to (fair share, quotas, usage): 1-64 letters,
    digits, ``. _ : -``; only the account's members (and admins) may name it (else 403). A
    plugin may set it from an extension (the projects plugin: the work item's project); None:
    the default account."""
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=20)] = 3
    retry_on_failure: bool = False
    extensions: Annotated[
        dict[Annotated[str, msgspec.Meta(max_length=64)], dict[str, Any]],
        msgspec.Meta(max_length=16),
    ] = {}
    """Fields for plugins, keyed by extension name (e.g. {"projects": {"work_item_id": "…"}})."""
    inputs: Annotated[list[TaskInput], msgspec.Meta(max_length=64)] = []
    """Artifacts (id or name) mounted read-only in the container; pinned at submit."""
    outputs: Annotated[list[OutputPattern], msgspec.Meta(max_length=64)] = []
    """Paths or globs under /workspace/outputs uploaded as artifacts after a successful run."""
    secrets: Annotated[dict[EnvKey, SecretRef], msgspec.Meta(max_length=64)] = {}
    """Environment variable → secret reference; values reach only the attempt's container."""
    credentials: Credentials = msgspec.field(default_factory=Credentials)
    mounts: Annotated[dict[str, str], msgspec.Meta(max_length=16)] = {}
    """Named host directories the node declares: name -> container path (``hostmounts.py``)."""
    workspace: Annotated[str, msgspec.Meta(max_length=32)] = ""
    """A declared host directory to use as ``/workspace`` (the working directory)."""


class Attempt(msgspec.Struct, kw_only=True):
    attempt_no: int
    node_id: uuid.UUID | None
    node_name: str
    state: AttemptStateName
    stage: str | None
    reason: str | None
    message: str | None
    exit_code: int | None
    gpu_indices: list[int]
    assigned_at: datetime
    acked_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


class Task(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    state: TaskState
    reason: str | None
    message: str | None
    unschedulable_reason: str | None
    owner_id: uuid.UUID | None
    owner: str | None
    code_repo_url: str
    code_commit_id: str
    env_repo_url: str
    env_commit_id: str
    dockerfile_path: str
    command: list[str]
    env: dict[str, str]
    resources: Resources
    timeout_s: int
    expected_duration_s: int | None
    priority: int
    account: str | None
    """The account the task's use is charged to; None: the default account."""
    max_attempts: int
    retry_on_failure: bool
    attempt_count: int
    pending_reason: str | None
    """Why a pending task waits: no_node_fits, waiting_for_resources, over_quota,
    held_for_reservation or retry_backoff (None when not pending or not yet considered)."""
    pending_detail: dict[str, Any] | None
    ranked_ahead: int | None
    """Waiting tasks ranked ahead of this one (only for waiting_for_resources and held)."""
    not_before: datetime | None
    """A retry waiting in backoff starts no earlier than this."""
    avoid_node_ids: list[str]
    extra: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    started_at: datetime | None = None
    """When the latest attempt started running (None while no attempt has started): the UI
    counts a task's duration from here, and a wait from ``created_at`` before it."""
    node_name: str | None = None
    """The node of the latest attempt (None before any attempt)."""
    attempts: list[Attempt] | None = None
    secrets: dict[str, str] = {}
    """Environment variable → the secret reference it was given (names only, never values)."""
    allowed_actions: list[str] = []
    """What the caller may do to this task beyond reading it (``cancel``, ``retry``, …): the
    access policy (docs/access.md) applied, so the UI can hide the other buttons."""


class TaskPage(msgspec.Struct, kw_only=True):
    items: list[Task]
    next_cursor: str | None
    """The page after this one, in the same order (None on the last page)."""
    prev_cursor: str | None = None
    """The page before this one (None on the first page)."""
    total: int | None = None
    """How many tasks match the filters on every page (only when asked with ``total=true``)."""


class TraceOut(msgspec.Struct, kw_only=True):
    items: list[Any]


MAX_BATCH_TASKS = 10_000
"""Most task specs in one ``POST /api/task-batches``."""


class TaskBatchCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Up to 10,000 task specs (each a TaskCreate), created together or not at all."""

    tasks: Annotated[list[dict[str, Any]], msgspec.Meta(min_length=1, max_length=MAX_BATCH_TASKS)]


class TaskBatch(msgspec.Struct, kw_only=True):
    """The created tasks' ids, in the order of the request."""

    count: int
    task_ids: list[uuid.UUID]
