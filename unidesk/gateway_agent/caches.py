"""The node's caches under size caps: git repositories, input files and env images, LRU-evicted.

Three caches live under ``cache_dir``: ``git/`` (one bare repository per URL, ``gitcache.py``),
``files/sha256/`` (input files by hash, ``transfer.py``) and the Docker engine's ``unidesk-env``
images (``images.py``). Each has a cap: ``git_cache_mb``, ``input_cache_mb`` and
``image_budget_mb`` of ``ExecConfig``; 0 (the default) means a share of the disk measured when the
agent starts: 10 %, 20 % and 30 % of (free space under ``cache_dir`` + what that cache holds).

Last use: a repository's ``unidesk-last-used`` file, an input file's own mtime, an image's
ledger stamp; each is touched on every use. Eviction removes the least recently used entries
until the cache fits its cap, skipping every entry an attempt holds (``CacheUses``): an attempt
holds its repository and input files from the moment they are fetched until it is cleaned up,
and its env image while it runs. Removal happens under the same per-entry lock that fetching
takes, so an entry is never deleted under a fetch. ``clear`` evicts everything not in use
(the admin's "clear caches" action); for images it removes only those this agent built or
used, so other agents sharing the Docker engine keep theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

import aiodocker

from unidesk.gateway_agent.images import ENV_IMAGE_LABEL, ENV_REPO, ImageLedger
from unidesk.gateway_agent.keyed_lock import KeyedLock
from unidesk.protocol import CacheUsage

__all__ = ["AUTO_SHARE", "CacheKeeper", "CacheUses", "dir_bytes"]

log = logging.getLogger(__name__)

AUTO_SHARE = {"git": 0.10, "inputs": 0.20, "images": 0.30}
"""Share of (free disk + the cache's own size) a cap of 0 means."""
LAST_USED = "unidesk-last-used"
MB = 1024 * 1024


class CacheUses:
    """Which cache entries attempts hold: ``hold(owner, cache, key)`` … ``release(owner)``."""

    def __init__(self) -> None:
        self._by_owner: dict[object, set[tuple[str, str]]] = defaultdict(set)
        self._count: dict[tuple[str, str], int] = defaultdict(int)

    def hold(self, owner: object, cache: str, key: str) -> None:
        if (cache, key) not in self._by_owner[owner]:
            self._by_owner[owner].add((cache, key))
            self._count[(cache, key)] += 1

    def release(self, owner: object) -> None:
        for entry in self._by_owner.pop(owner, set()):
            self._count[entry] -= 1
            if self._count[entry] <= 0:
                del self._count[entry]

    @contextlib.contextmanager
    def holding(self, owner: object) -> Iterator[object]:
        """Release everything ``owner`` took when the block ends."""
        try:
            yield owner
        finally:
            self.release(owner)

    def in_use(self, cache: str, key: str) -> bool:
        return self._count.get((cache, key), 0) > 0


def dir_bytes(path: Path) -> int:
    """Bytes of the regular files under ``path`` (symlinks not followed)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


class CacheKeeper:
    """Caps, sizes and eviction of one agent's three caches."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        uses: CacheUses,
        git_locks: KeyedLock,
        input_locks: KeyedLock,
        ledger: ImageLedger,
        git_cap_mb: int = 0,
        input_cap_mb: int = 0,
        image_cap_mb: int = 0,
    ) -> None:
        self.git_dir = cache_dir / "git"
        self.input_dir = cache_dir / "files" / "sha256"
        self.uses = uses
        self._git_locks = git_locks
        self._input_locks = input_locks
        self.ledger = ledger
        self._lock = asyncio.Lock()
        try:
            free = shutil.disk_usage(cache_dir if cache_dir.exists() else cache_dir.parent).free
        except OSError:
            free = 0
        self.caps = {
            "git": git_cap_mb * MB or int(AUTO_SHARE["git"] * (free + dir_bytes(self.git_dir))),
            "inputs": input_cap_mb * MB
            or int(AUTO_SHARE["inputs"] * (free + dir_bytes(self.input_dir))),
            "images": image_cap_mb * MB or int(AUTO_SHARE["images"] * free),
        }
        self.last: list[CacheUsage] = []
        """Sizes measured by the last ``measure`` (heartbeats carry them)."""

    # -- entries ---------------------------------------------------------------------------

    def _git_entries(self) -> list[tuple[float, str, Path, int]]:
        if not self.git_dir.is_dir():
            return []
        return [
            (_mtime(p / LAST_USED) or _mtime(p), p.name, p, dir_bytes(p))
            for p in self.git_dir.iterdir()
            if p.name.endswith(".git") and p.is_dir()
        ]

    def _input_entries(self) -> list[tuple[float, str, Path, int]]:
        if not self.input_dir.is_dir():
            return []
        out = []
        for p in self.input_dir.iterdir():
            if p.name.startswith("."):
                continue
            with contextlib.suppress(OSError):
                st = p.lstat()
                out.append((st.st_mtime, p.name, p, st.st_size))
        return out

    # -- eviction --------------------------------------------------------------------------

    async def _evict_files(
        self, cache: str, entries: list[tuple[float, str, Path, int]], cap: int, locks: KeyedLock
    ) -> list[str]:
        total = sum(e[3] for e in entries)
        removed = []
        for _, key, path, size in sorted(entries):
            if total <= cap:
                break
            if self.uses.in_use(cache, key):
                continue
            async with locks.hold(key):
                if self.uses.in_use(cache, key):  # taken while we waited for the lock
                    continue
                if path.is_dir():
                    await asyncio.to_thread(shutil.rmtree, path, True)
                else:
                    path.unlink(missing_ok=True)
            total -= size
            removed.append(key)
        if removed:
            log.info("evicted %d %s cache entr(ies); %.1f MB left", len(removed), cache, total / MB)
        return removed

    async def evict(
        self,
        docker: aiodocker.Docker | None,
        *,
        protect_images: Iterable[str] = (),
        clear: bool = False,
    ) -> dict[str, list[str]]:
        """Evict least recently used entries until each cache fits its cap (all of them with
        ``clear``), never one in use; then measure. Returns what was removed per cache."""
        async with self._lock:
            git = await asyncio.to_thread(self._git_entries)
            inputs = await asyncio.to_thread(self._input_entries)
            removed = {
                "git": await self._evict_files(
                    "git", git, 0 if clear else self.caps["git"], self._git_locks
                ),
                "inputs": await self._evict_files(
                    "inputs", inputs, 0 if clear else self.caps["inputs"], self._input_locks
                ),
                "images": [],
            }
            if docker is not None:
                try:
                    pruned = await self.ledger.prune(
                        docker,
                        0 if clear else self.caps["images"],
                        protect_images,
                        only_known=clear,
                    )
                    removed["images"] = pruned.removed
                except aiodocker.DockerError as exc:
                    log.warning("could not prune env images: %s", exc.message)
        await self.measure(docker)
        return removed

    async def measure(self, docker: aiodocker.Docker | None) -> list[CacheUsage]:
        """Sizes of the three caches now (Docker unreachable: images reported as 0 entries)."""
        git = await asyncio.to_thread(self._git_entries)
        inputs = await asyncio.to_thread(self._input_entries)
        image_bytes, image_count = 0, 0
        if docker is not None:
            with contextlib.suppress(aiodocker.DockerError, OSError, Exception):
                for image in await docker.images.list(filters={"label": [ENV_IMAGE_LABEL]}):
                    if any(t.startswith(ENV_REPO + ":") for t in image.get("RepoTags") or []):
                        image_bytes += int(image.get("Size", 0))
                        image_count += 1
        self.last = [
            CacheUsage("git", sum(e[3] for e in git), self.caps["git"], len(git)),
            CacheUsage("inputs", sum(e[3] for e in inputs), self.caps["inputs"], len(inputs)),
            CacheUsage("images", image_bytes, self.caps["images"], image_count),
        ]
        return self.last
