"""The server's logging: the shared structlog configuration (the agent uses the same)."""

from __future__ import annotations

from unidesk.logconfig import configure_logging, redact

__all__ = ["configure_logging", "redact"]
