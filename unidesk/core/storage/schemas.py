"""Public shapes of artifacts, uploads, downloads and task file declarations."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from unidesk.core.storage.protocol import UploadPlan

__all__ = [
    "Artifact",
    "ArtifactCreate",
    "ArtifactName",
    "ArtifactPage",
    "ArtifactUpload",
    "CompletedPart",
    "DownloadUrl",
    "OutputDone",
    "OutputFile",
    "OutputGrant",
    "OutputPattern",
    "OutputRequest",
    "OutputsComplete",
    "Sha256",
    "TaskInput",
    "UploadComplete",
]

ArtifactName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=512,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9._+=@:,/-]*$",
        description="Name of an artifact: letters, digits and ._+=@:,/- ; no '..' segment",
    ),
]
Sha256 = Annotated[
    str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$", description="Lower-case hex SHA-256")
]
Size = Annotated[int, msgspec.Meta(ge=0)]
LabelKey = Annotated[
    str, msgspec.Meta(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
]
Labels = Annotated[
    dict[LabelKey, Annotated[str, msgspec.Meta(max_length=128)]], msgspec.Meta(max_length=32)
]
ContentType = Annotated[
    str, msgspec.Meta(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+(; ?[\x21-\x7e]+)*$")
]


class ArtifactCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Declare an upload: the body must then be exactly ``size`` bytes with this SHA-256."""

    name: ArtifactName
    size: Size
    sha256: Sha256
    content_type: ContentType = "application/octet-stream"
    project: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    labels: Labels = {}


class Artifact(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    state: str
    size: int
    sha256: str
    content_type: str
    backend: str
    owner_id: uuid.UUID | None
    owner: str | None
    task_id: uuid.UUID | None
    attempt_no: int | None
    project: str | None
    labels: dict[str, str]
    created_at: datetime
    ready_at: datetime | None


class ArtifactPage(msgspec.Struct, kw_only=True):
    items: list[Artifact]
    next_cursor: str | None
    folders: list[str] = []
    """With ``delimiter=/``: the next-level prefixes under ``prefix`` (``"runs/a/"``), sorted, at
    most ``MAX_FOLDERS``, on the first page only."""


class ArtifactUpload(msgspec.Struct, kw_only=True):
    """The artifact (``uploading``) and how to put its bytes; then ``POST …/complete``."""

    artifact: Artifact
    upload: UploadPlan


class CompletedPart(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    part_number: Annotated[int, msgspec.Meta(ge=1, le=10000)]
    etag: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class UploadComplete(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    parts: Annotated[list[CompletedPart], msgspec.Meta(max_length=10000)] = []
    """S3 multipart only: the ETag of each part (omit to use the parts the store lists)."""


class DownloadUrl(msgspec.Struct, kw_only=True):
    url: str
    expires_at: float
    name: str
    size: int
    sha256: str


class TaskInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An artifact (id or name) a task reads; mounted read-only at ``path``
    (absolute, under /workspace or /inputs; default ``/inputs/<last part of the name>``)."""

    artifact: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
    path: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)] | None = None


OutputPattern = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=1024,
        description="A path or glob under /workspace/outputs (absolute or relative to it)",
    ),
]


class OutputFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    path: Annotated[
        str,
        msgspec.Meta(min_length=1, max_length=480, pattern=r"^[A-Za-z0-9_][A-Za-z0-9._+=@:,/-]*$"),
    ]
    """Relative to /workspace/outputs."""
    size: Size
    sha256: Sha256
    content_type: ContentType = "application/octet-stream"


class OutputRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    files: Annotated[list[OutputFile], msgspec.Meta(min_length=1, max_length=1000)]


class OutputGrant(msgspec.Struct, kw_only=True):
    items: list[ArtifactUpload]


class OutputDone(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    artifact_id: uuid.UUID
    parts: Annotated[list[CompletedPart], msgspec.Meta(max_length=10000)] = []


class OutputsComplete(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    items: Annotated[list[OutputDone], msgspec.Meta(min_length=1, max_length=1000)]
