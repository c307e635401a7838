"""Paths inside a workspace, reached one component at a time without following any symlink.

A task controls everything under its workspace (its code repository's tree, whatever its
command leaves behind), so the agent never hands such a path to ``open``/``chmod``/``stat``
as a string: it opens the workspace directory, then each component with ``dir_fd`` and
``O_NOFOLLOW`` (directories also ``O_DIRECTORY``), and acts on the final file descriptor.
A symlink anywhere on the way (``outputs -> /etc``, ``.unidesk/metrics.jsonl -> /root/x``)
or a non-regular file where a file is expected raises ``WorkspaceEscape``; nothing outside
the workspace is read, written, chmodded or uploaded. (This is ``openat2``'s
``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`` done portably with ``openat``.)
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath

import msgspec

from unidesk.gateway_agent.exec_errors import PrepareFailed

__all__ = [
    "Beneath",
    "WorkspaceEscape",
    "chown_tree",
    "ensure_dir",
    "find_files",
    "open_file",
    "refuse_symlinks_on",
]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LINK_ERRNOS = (errno.ELOOP, errno.ENOTDIR, errno.EMLINK)
MAX_WALK_ENTRIES = 200_000
"""Entries one walk visits at most (a task cannot make the agent walk forever)."""


class WorkspaceEscape(PrepareFailed):
    """A workspace path is, or passes through, a symlink or a non-regular file: refused."""

    title = "Workspace path refused"


class Beneath(msgspec.Struct, frozen=True):
    """``rel`` (a relative POSIX path) inside the directory ``root``."""

    root: Path
    rel: str


def _parts(rel: str) -> list[str]:
    path = PurePosixPath(rel)
    parts = [p for p in path.parts if p not in ("", ".")]
    if path.is_absolute() or ".." in parts:
        raise WorkspaceEscape(f"path {rel[:200]!r} is not inside the workspace")
    return parts


def _refused(rel: str, name: str) -> WorkspaceEscape:
    return WorkspaceEscape(
        f"workspace path {rel[:200]!r}: {name[:100]!r} is a symlink or not a directory; "
        "refused (a task may not point the agent outside its workspace)"
    )


@contextmanager
def _dir_fd(root: Path, parts: list[str], rel: str, *, create: bool = False) -> Iterator[int]:
    fd = os.open(root, _DIR_FLAGS)
    try:
        for name in parts:
            if create:
                with suppress(FileExistsError):
                    os.mkdir(name, 0o755, dir_fd=fd)
            try:
                nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in _LINK_ERRNOS:
                    raise _refused(rel, name) from None
                raise
            os.close(fd)
            fd = nxt
        yield fd
    finally:
        os.close(fd)


def ensure_dir(
    root: Path, rel: str, *, mode: int | None = None, owner: tuple[int, int] | None = None
) -> None:
    """Make directory ``rel`` under ``root`` (parents too) unless present; then chmod/chown it
    through its descriptor. A symlink on the way is refused."""
    with _dir_fd(root, _parts(rel), rel, create=True) as fd:
        if mode is not None:
            os.fchmod(fd, mode)
        if owner is not None:
            os.fchown(fd, *owner)


def refuse_symlinks_on(root: Path, rel: str) -> None:
    """Raise ``WorkspaceEscape`` if an existing component of ``rel`` is a symlink or a
    non-directory on the way (missing components are fine: nothing is created)."""
    parts = _parts(rel)
    fd = os.open(root, _DIR_FLAGS)
    try:
        for i, name in enumerate(parts):
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return
            if stat.S_ISLNK(st.st_mode) or (i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode)):
                raise _refused(rel, name)
            if i == len(parts) - 1:
                return
            nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    finally:
        os.close(fd)


def open_file(where: Beneath) -> int:
    """A read-only descriptor of the regular file ``where`` (``FileNotFoundError`` when
    absent). Opened non-blocking, so a FIFO planted there cannot hang the agent."""
    parts = _parts(where.rel)
    if not parts:
        raise WorkspaceEscape("an empty path names no file")
    try:
        with _dir_fd(where.root, parts[:-1], where.rel) as dfd:
            fd = os.open(
                parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd
            )
    except OSError as exc:
        if exc.errno in _LINK_ERRNOS:
            raise _refused(where.rel, parts[-1]) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise WorkspaceEscape(f"workspace path {where.rel[:200]!r} is not a regular file; refused")
    os.set_blocking(fd, True)
    return fd


def _walk(
    dfd: int, prefix: tuple[str, ...], budget: list[int]
) -> Iterator[tuple[tuple[str, ...], os.stat_result, int]]:
    """``(relative parts, lstat, parent descriptor)`` of every entry under ``dfd``;
    directories are descended through descriptors, symlinks never."""
    for name in sorted(os.listdir(dfd)):
        budget[0] -= 1
        if budget[0] < 0:
            raise WorkspaceEscape(f"more than {MAX_WALK_ENTRIES} entries in the workspace; refused")
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        yield (*prefix, name), st, dfd
        if stat.S_ISDIR(st.st_mode):
            try:
                sub = os.open(name, _DIR_FLAGS, dir_fd=dfd)
            except OSError as exc:
                if exc.errno in _LINK_ERRNOS:
                    continue  # swapped for a symlink since the lstat: not followed
                raise
            try:
                yield from _walk(sub, (*prefix, name), budget)
            finally:
                os.close(sub)


def _matches(parts: tuple[str, ...], pattern: list[str]) -> bool:
    """Path parts against glob segments (``*`` within a segment, ``**`` any depth)."""
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_matches(parts[i:], rest) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], head) and _matches(parts[1:], rest)


def find_files(where: Beneath, patterns: list[str]) -> tuple[list[str], list[str]]:
    """Regular files under directory ``where`` matching a glob (a matching directory brings
    everything under it), as relative POSIX paths; and the matching entries skipped because
    they are symlinks or special files. ``where`` itself being a symlink raises."""
    segments = [[s for s in p.split("/") if s not in ("", ".")] for p in patterns]
    files: list[str] = []
    skipped: list[str] = []
    with _dir_fd(where.root, _parts(where.rel), where.rel) as dfd:
        for parts, st, _parent in _walk(dfd, (), [MAX_WALK_ENTRIES]):
            if stat.S_ISDIR(st.st_mode):
                continue
            hit = any(
                _matches(parts[:k], seg)
                for seg in segments
                if seg
                for k in range(1, len(parts) + 1)
            )
            if not hit:
                continue
            rel = "/".join(parts)
            (files if stat.S_ISREG(st.st_mode) else skipped).append(rel)
    return files, skipped


def chown_tree(root: Path, owner: tuple[int, int]) -> int:
    """Give ``root`` and everything under it to ``owner`` (uid, gid) without following a
    symlink (symlinks themselves are re-owned); returns the entries changed."""
    count = 0
    fd = os.open(root, _DIR_FLAGS)
    try:
        os.fchown(fd, *owner)
        for parts, _st, parent in _walk(fd, (), [MAX_WALK_ENTRIES]):
            os.chown(parts[-1], *owner, dir_fd=parent, follow_symlinks=False)
            count += 1
    finally:
        os.close(fd)
    return count + 1
