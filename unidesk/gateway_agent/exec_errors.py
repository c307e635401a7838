"""The error a runner raises while preparing an attempt; it ends the attempt as ``infra_error``."""

from __future__ import annotations

from unidesk.errors import UnideskError

__all__ = ["PrepareFailed"]


class PrepareFailed(UnideskError):
    """Code, environment or image for an attempt could not be made ready.

    The message is shown to the task's owner: it names the repository (credentials redacted),
    commit or path involved and never carries a secret.
    """

    status, close_code, title = 422, 4422, "Attempt could not be prepared"
