"""Edge checks for task specs that msgspec constraints cannot express: URLs and paths."""

from __future__ import annotations

import fnmatch
import re
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import msgspec

from unidesk.errors import BadRequest

if TYPE_CHECKING:
    from unidesk.core.tasks.schemas import ResourceRequest

__all__ = [
    "check_dockerfile_path",
    "check_env_name",
    "check_repo_url",
    "parse_gpu_shorthand",
    "secret_looking",
]

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
        user_host, _, path = url.partition(":")
        _refuse_options(field, *user_host.split("@", 1), *path.split("/"))
        return url
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise BadRequest(f"{field}: not a URL ({exc})", field=field) from None
    allowed = {"https", "ssh"} | ({"file"} if allow_file else set())
    if parts.scheme not in allowed:
        hint = (
            " (file:// needs the server setting allow_file_urls)" if parts.scheme == "file" else ""
        )
        raise BadRequest(
            f"{field}: scheme '{parts.scheme or '(none)'}' not allowed; use "
            f"{', '.join(sorted(allowed))}{hint}",
            field=field,
        )
    if parts.scheme != "file" and not parts.hostname:
        raise BadRequest(f"{field}: URL has no host", field=field)
    if parts.query or parts.fragment:
        raise BadRequest(f"{field}: URL must not carry a query or fragment", field=field)
    netloc_user, _, netloc_host = parts.netloc.rpartition("@")
    _refuse_options(field, netloc_user, netloc_host, *parts.path.split("/"))
    if parts.scheme == "file" and (
        parts.netloc not in ("", "localhost") or not parts.path.startswith("/")
    ):
        raise BadRequest(f"{field}: file URL must be file:///absolute/path", field=field)
    return url


def _refuse_options(field: str, *components: str) -> None:
    """No user, host or path segment may begin with '-' (git/ssh would read it as an option,
    e.g. ``ssh://-oProxyCommand=…``), even percent-encoded."""
    for part in components:
        if unquote(part).lstrip().startswith("-"):
            raise BadRequest(
                f"{field}: URL parts must not begin with '-' (looks like a command-line option)",
                field=field,
            )


def secret_looking(name: str, patterns: str) -> bool:
    """True when env name ``name`` matches one of the comma-separated globs (any case)."""
    upper = name.upper()
    return any(
        fnmatch.fnmatchcase(upper, p.strip().upper()) for p in patterns.split(",") if p.strip()
    )


def check_dockerfile_path(path: str) -> str:
    if not path or "\x00" in path or "\\" in path:
        raise BadRequest(
            "dockerfile_path: must be a non-empty relative POSIX path", field="dockerfile_path"
        )
    if path.startswith(("/", "~")):
        raise BadRequest(
            "dockerfile_path: must be relative to the env repository", field="dockerfile_path"
        )
    if any(seg == ".." for seg in path.split("/")):
        raise BadRequest("dockerfile_path: '..' is not allowed", field="dockerfile_path")
    return path


def check_env_name(name: str, *, secret_patterns: str = "") -> str:
    """A valid variable name that does not look like a secret (``secret_env_patterns``)."""
    if not _ENV_NAME.match(name):
        raise BadRequest(f"env: invalid variable name {name[:64]!r}", field="env")
    if secret_patterns and secret_looking(name, secret_patterns):
        raise BadRequest(
            f"env: {name!r} looks like a secret; plain env is readable by every member and is "
            "not for secrets: store the value with secrets (/api/secrets) and reference it in "
            'the task\'s "secrets" field instead',
            field="env",
        )
    return name


_GPU_SHORTHAND = re.compile(
    r"^(?P<model>[A-Za-z0-9._*?-]+)(?::(?P<mem>\d+)\s*(?P<unit>GB|MB))?(?::(?P<count>\d+))?$",
    re.IGNORECASE,
)


def parse_gpu_shorthand(res: ResourceRequest) -> ResourceRequest:
    """``gpu: "A100:80GB:2"`` -> gpus=2, gpu_model="A100", gpu_memory_mb=81920 (count default 1)."""
    assert res.gpu is not None
    m = _GPU_SHORTHAND.match(res.gpu.strip())
    if m is None:
        raise BadRequest(
            "resources.gpu: expected MODEL[:<n>GB][:COUNT], e.g. A100:80GB:2", field="resources.gpu"
        )
    if res.gpu_model is not None or res.gpu_memory_mb is not None:
        raise BadRequest(
            "resources.gpu: give either the shorthand or gpu_model/gpu_memory_mb",
            field="resources.gpu",
        )
    count = int(m["count"]) if m["count"] else max(res.gpus, 1)
    if res.gpus and res.gpus != count:
        raise BadRequest(
            f"resources.gpu: asks for {count} GPUs but resources.gpus is {res.gpus}",
            field="resources.gpu",
        )
    if not 1 <= count <= 64:
        raise BadRequest("resources.gpu: count must be 1..64", field="resources.gpu")
    memory = None
    if m["mem"]:
        memory = int(m["mem"]) * (1024 if m["unit"].upper() == "GB" else 1)
    return msgspec.structs.replace(
        res, gpus=count, gpu_model=m["model"], gpu_memory_mb=memory, gpu=None
    )
