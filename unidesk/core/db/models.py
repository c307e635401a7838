"""Imports every core model so ``Base.metadata`` holds the whole core schema."""

from unidesk.core.auth.models import ApiToken, NodeToken, User
from unidesk.core.db.base import Base
from unidesk.core.events.models import Event
from unidesk.core.logs.models import LogChunkRow
from unidesk.core.nodes.models import NodeRow
from unidesk.core.nodes.samples import NodeSampleRow
from unidesk.core.scheduler.models import QuotaRow
from unidesk.core.secrets.models import SecretRow
from unidesk.core.storage.models import ArtifactRow
from unidesk.core.tasks.models import AttemptRow, TaskRow

__all__ = [
    "ApiToken",
    "ArtifactRow",
    "AttemptRow",
    "Base",
    "Event",
    "LogChunkRow",
    "NodeRow",
    "NodeSampleRow",
    "NodeToken",
    "QuotaRow",
    "SecretRow",
    "TaskRow",
    "User",
]
