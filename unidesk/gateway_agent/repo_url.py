"""Which repository URLs and commit ids the agent hands to git, and how they appear in messages."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from unidesk.gateway_agent.exec_errors import PrepareFailed

__all__ = ["RepoKind", "check_commit_id", "check_repo_url", "redact_url"]

RepoKind = Literal["https", "ssh", "file"]

_COMMIT_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SCP_RE = re.compile(r"^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9][A-Za-z0-9.-]*:(?!//)[^:]+$")
_USERINFO_RE = re.compile(r"(://)[^/@\s]*@")
_MAX_URL = 2048


def redact_url(url: str) -> str:
    """``https://user:secret@host/x`` → ``https://***@host/x``; text without userinfo is
    unchanged."""
    return _USERINFO_RE.sub(r"\1***@", url)


def check_repo_url(url: str, *, allow_file: bool) -> RepoKind:
    """Return the transport for ``url`` or raise ``PrepareFailed`` saying why it is refused.

    Accepted: ``https://host/...`` (no credentials in the URL), ``ssh://[user@]host/...``,
    ``user@host:path`` (scp form, ssh) and, only when ``allow_file``, ``file:///abs/path``.
    Refused: option-like (``-...``, ``--upload-pack=...``), git's ``<transport>::`` syntax
    (``ext::sh -c ...``), other schemes, local paths, whitespace and control characters.
    """
    shown = redact_url(url)[:200]
    if not url or len(url) > _MAX_URL:
        raise PrepareFailed(f"repository URL is empty or longer than {_MAX_URL} characters")
    if url.startswith("-"):
        raise PrepareFailed(f"repository URL {shown!r} starts with '-' (looks like an option)")
    if "::" in url:
        raise PrepareFailed(
            f"repository URL {shown!r} uses git's '<transport>::' syntax, which is refused"
        )
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise PrepareFailed(f"repository URL {shown!r} contains whitespace or control characters")
    match = _SCHEME_RE.match(url)
    if match:
        scheme = match.group(1).lower()
        parts = urlsplit(url)
        if scheme == "https":
            if parts.username is not None or parts.password is not None:
                raise PrepareFailed(
                    f"repository URL {shown!r} carries credentials; configure "
                    "git_credential_helper on the node instead"
                )
            if not parts.hostname:
                raise PrepareFailed(f"repository URL {shown!r} has no host")
            return "https"
        if scheme == "ssh":
            if parts.password is not None:
                raise PrepareFailed(f"repository URL {shown!r} carries a password; use git_ssh_key")
            if not parts.hostname:
                raise PrepareFailed(f"repository URL {shown!r} has no host")
            return "ssh"
        if scheme == "file":
            if not allow_file:
                raise PrepareFailed(
                    f"file:// repository URLs are not allowed on this node ({shown!r})"
                )
            if parts.netloc or not parts.path.startswith("/"):
                raise PrepareFailed(f"file:// URL {shown!r} must be file:///absolute/path")
            return "file"
        allowed = "https, ssh" + (", file" if allow_file else "")
        raise PrepareFailed(f"repository URL scheme {scheme!r} is not allowed (allowed: {allowed})")
    if _SCP_RE.match(url) and "/" not in url.split(":", 1)[0]:
        return "ssh"
    raise PrepareFailed(f"repository URL {shown!r} is not https://, ssh:// or user@host:path")


def check_commit_id(commit: str, *, what: str = "commit") -> str:
    """A full lowercase hex SHA (40 or 64); anything else raises ``PrepareFailed``."""
    if not _COMMIT_RE.match(commit or ""):
        raise PrepareFailed(f"{what} id {commit[:80]!r} is not a full 40- or 64-digit hex SHA")
    return commit
