"""Env images on this node: when each was last used, and LRU pruning to a size budget.

Docker does not record when an image was last used, so the agent touches
``<cache_dir>/images/<tag id>`` on every use; pruning removes the least recently used
``unidesk-env`` images (by that time, else their creation time) until their total size fits
``image_budget_mb``. Images in use by a container, or listed in ``protect``, are skipped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import aiodocker
import msgspec

__all__ = ["ENV_IMAGE_LABEL", "ENV_REPO", "ImageLedger", "PruneResult"]

ENV_REPO = "unidesk-env"
ENV_IMAGE_LABEL = "unidesk.env"

log = logging.getLogger(__name__)


class PruneResult(msgspec.Struct, frozen=True):
    removed: list[str]
    kept_bytes: int
    freed_bytes: int


class ImageLedger:
    def __init__(self, cache_dir: Path) -> None:
        self._dir = cache_dir / "images"

    def _stamp(self, tag: str) -> Path:
        return self._dir / tag.rsplit(":", 1)[-1]

    def touch(self, tag: str) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        stamp = self._stamp(tag)
        stamp.touch()
        os.utime(stamp)

    def last_used(self, tag: str, default: float) -> float:
        try:
            return self._stamp(tag).stat().st_mtime
        except FileNotFoundError:
            return default

    def known(self, tag: str) -> bool:
        """Whether this agent built or used ``tag`` (it has a stamp)."""
        return self._stamp(tag).exists()

    async def prune(
        self,
        docker: aiodocker.Docker,
        budget_bytes: int,
        protect: Iterable[str] = (),
        *,
        only_known: bool = False,
    ) -> PruneResult:
        """Remove least recently used env images until the rest fit ``budget_bytes``;
        ``only_known`` removes only images this agent built or used (other agents sharing the
        engine keep theirs)."""
        protected = set(protect)
        images = await docker.images.list(filters={"label": [ENV_IMAGE_LABEL]})
        entries = []
        for image in images:
            tags = [t for t in image.get("RepoTags") or [] if t.startswith(ENV_REPO + ":")]
            if tags:
                used = max(self.last_used(t, float(image.get("Created", 0))) for t in tags)
                entries.append((used, tags, int(image.get("Size", 0))))
        entries.sort(key=lambda e: e[0])
        total = sum(e[2] for e in entries)
        removed: list[str] = []
        freed = 0
        for _, tags, size in entries:
            if total <= budget_bytes:
                break
            if protected.intersection(tags) or (
                only_known and not any(self.known(t) for t in tags)
            ):
                continue
            try:
                for tag in tags:
                    await docker.images.delete(tag)
            except aiodocker.DockerError as exc:
                log.info("env image %s kept: %s", tags[0], exc.message)
                continue
            for tag in tags:
                self._stamp(tag).unlink(missing_ok=True)
            removed.extend(tags)
            total -= size
            freed += size
        if removed:
            log.info("pruned %d env image(s), freed %.1f MB", len(removed), freed / 1e6)
        return PruneResult(removed=removed, kept_bytes=total, freed_bytes=freed)
