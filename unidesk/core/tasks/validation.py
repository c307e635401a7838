"""Edge checks for task specs that msgspec constraints cannot express: URLs and paths."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from unidesk.errors import BadRequest

__all__ = ["check_dockerfile_path", "check_env_name", "check_repo_url"]

_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[A-Za-z0-9._/~-][^\s]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_repo_url(field: str, url: str, *, allow_file: bool) -> str:
    """Accept https://, ssh:// and scp-like ``git@host:path`` (and file:// when allowed)."""
    if not url or url != url.strip() or any(c in url for c in "\x00\n\r\t "):
        raise BadRequest(
            f"{field}: URL must be non-empty with no whitespace or control characters", field=field
        )
    if url.startswith("-"):
        raise BadRequest(f"{field}: URL must not start with '-'", field=field)
    if "::" in url.split("/", 1)[0]:
        raise BadRequest(f"{field}: transport helpers like 'ext::' are not allowed", field=field)
    if _SCP_LIKE.match(url):
        return url
    parts = urlsplit(url)
    allowed = {"https", "ssh"} | ({"file"} if allow_file else set())
    if parts.scheme not in allowed:
        hint = (
            " (file:// needs the server setting allow_file_urls)" if parts.scheme == "file" else ""
        )
        raise BadRequest(
            f"{field}: scheme '{parts.scheme or '(none)'}' not allowed; use {', '.join(sorted(allowed))}{hint}",
            field=field,
        )
    if parts.scheme != "file" and not parts.hostname:
        raise BadRequest(f"{field}: URL has no host", field=field)
    if parts.scheme == "file" and (
        parts.netloc not in ("", "localhost") or not parts.path.startswith("/")
    ):
        raise BadRequest(f"{field}: file URL must be file:///absolute/path", field=field)
    return url


def check_dockerfile_path(path: str) -> str:
    if not path or "\x00" in path or "\\" in path:
        raise BadRequest(
            "dockerfile_path: must be a non-empty relative POSIX path", field="dockerfile_path"
        )
    if path.startswith("/") or path.startswith("~"):
        raise BadRequest(
            "dockerfile_path: must be relative to the env repository", field="dockerfile_path"
        )
    if any(seg == ".." for seg in path.split("/")):
        raise BadRequest("dockerfile_path: '..' is not allowed", field="dockerfile_path")
    return path


def check_env_name(name: str) -> str:
    if not _ENV_NAME.match(name):
        raise BadRequest(f"env: invalid variable name {name[:64]!r}", field="env")
    return name
