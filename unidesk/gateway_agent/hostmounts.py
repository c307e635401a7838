"""Named host directories a node's owner declares, and the binds a task that asks for them gets.

Declared in the agent config: ``--host-mount home=/home/ubuntu:rw`` (repeatable; mode ``ro``
by default), ``UNIDESK_AGENT_HOST_MOUNTS="home=/home/ubuntu:rw,data=/srv/data"``, or a TOML
table ``[host_mounts] home = "/home/ubuntu:rw"``. Each path must be an existing directory
(seen under ``host_root`` when the agent runs in a container); it is resolved once at start, so
a symlink swapped in later is not followed. The Hello lists the names and modes, never the
paths.

A dispatch names what it wants: ``mounts`` (name -> container path) bind exactly that
directory there, with the declared mode; ``workspace`` binds it at ``/workspace`` as the
working directory, the attempt's code checkout goes read-only to ``/code``, and
``$UNIDESK_METRICS_FILE`` moves to ``/unidesk-data`` so nothing of the platform's is written
into the host directory. Nothing else of the host is mounted. A name the node does not declare,
or inputs/outputs under ``/workspace`` with a host workspace (their mount points would be
created inside the host directory), fail the attempt as ``infra_error`` with the reason.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

import msgspec

from unidesk.errors import BadRequest
from unidesk.gateway_agent.exec_errors import PrepareFailed
from unidesk.protocol import Dispatch, HostMount

__all__ = [
    "DATA_DIR_IN_CONTAINER",
    "DeclaredMount",
    "HostBinds",
    "declared_mounts",
    "hello_mounts",
    "host_binds",
    "parse_host_mounts",
]

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
DATA_DIR_IN_CONTAINER = "/unidesk-data"


class DeclaredMount(msgspec.Struct, frozen=True):
    name: str
    path: str
    """The directory as Docker must see it (a host path)."""
    read_only: bool


class HostBinds(msgspec.Struct, frozen=True):
    binds: list[str]
    workspace_source: str | None
    """The host directory to bind at ``/workspace`` instead of the checkout (None: the checkout)."""
    workspace_read_only: bool = False


def parse_host_mounts(items: list[str] | str | dict[str, str]) -> dict[str, str]:
    """``["home=/home/u:rw"]``, ``"home=/home/u:rw,data=/d"`` or a TOML table -> name -> spec."""
    if isinstance(items, dict):
        pairs = list(items.items())
    else:
        if isinstance(items, str):
            items = [p for p in items.split(",") if p.strip()]
        pairs = []
        for item in items:
            name, sep, spec = item.partition("=")
            if not sep:
                raise BadRequest(f"host mount {item!r} is not name=/path[:ro|:rw]")
            pairs.append((name.strip(), spec.strip()))
    out: dict[str, str] = {}
    for name, spec in pairs:
        if not NAME_RE.match(name):
            raise BadRequest(
                f"host mount name {name[:40]!r}: lowercase letters, digits, - and _ (max 32)"
            )
        _split(name, spec)
        out[name] = spec
    return out


def _split(name: str, spec: str) -> tuple[str, bool]:
    path, mode = spec, "ro"
    if spec.endswith((":ro", ":rw")):
        path, mode = spec[:-3], spec[-2:]
    if not path.startswith("/") or posixpath.normpath(path) != path or path == "/":
        raise BadRequest(
            f"host mount {name}: {path[:100]!r} must be a normalised absolute directory, not /"
        )
    return path, mode == "ro"


def declared_mounts(specs: dict[str, str], host_root: str = "/") -> dict[str, DeclaredMount]:
    """Check every declared directory exists (under ``host_root``) and resolve it once."""
    out = {}
    root = Path(host_root)
    for name, spec in specs.items():
        path, read_only = _split(name, spec)
        seen = root / path.lstrip("/")
        if not seen.is_dir():
            raise BadRequest(f"host mount {name}: {path} is not a directory on this host")
        real = "/" + str(seen.resolve().relative_to(root.resolve())).lstrip(".")
        out[name] = DeclaredMount(name=name, path=real.rstrip("/") or "/", read_only=read_only)
    return out


def hello_mounts(declared: dict[str, DeclaredMount]) -> list[HostMount]:
    return [HostMount(name=m.name, read_only=m.read_only) for m in declared.values()]


def host_binds(dispatch: Dispatch, declared: dict[str, DeclaredMount]) -> HostBinds:
    """The binds of the host directories ``dispatch`` asks for; ``PrepareFailed`` if undeclared."""
    wanted = set(dispatch.mounts) | ({dispatch.workspace} if dispatch.workspace else set())
    missing = sorted(wanted - set(declared))
    if missing:
        raise PrepareFailed(f"this node declares no host mount named {', '.join(missing)}")
    binds = []
    for name, target in dispatch.mounts.items():
        if not target.startswith("/") or posixpath.normpath(target) != target or target == "/":
            raise PrepareFailed(f"mounts.{name}: bad container path {target[:100]!r}")
        m = declared[name]
        binds.append(f"{m.path}:{target}:{'ro' if m.read_only else 'rw'}")
    if not dispatch.workspace:
        return HostBinds(binds=binds, workspace_source=None)
    inside = [i.path for i in dispatch.inputs if i.path.startswith("/workspace/")]
    if inside or dispatch.outputs:
        raise PrepareFailed(
            "with a host workspace, inputs must go under /inputs and outputs are not collected "
            "(their mount points would be created in the host directory)"
        )
    m = declared[dispatch.workspace]
    return HostBinds(binds=binds, workspace_source=m.path, workspace_read_only=m.read_only)
