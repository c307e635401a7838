"""Env images: build ``env_repo_url@env_commit_id`` with ``dockerfile_path``, once per node.

The tag is ``unidesk-env:<sha256(url, commit, dockerfile_path)[:20]>``. When it exists the
attempt uses it with no fetch and no build. Otherwise, under a per-tag lock (asyncio + flock,
so concurrent dispatches of one env build once), the env commit is checked out from the git
cache into a scratch directory, the Dockerfile path is checked to stay inside it after
resolving symlinks, and the directory is sent to the Docker Engine as a tar build context.
Build output streams to the attempt's log as the ``build`` stream. Cancelling the coroutine
closes the build request, which makes the engine abort the build.

Private env repositories are fetched with the task's ``GitAuth``; an image built from a
private repository is reused only after the attempt proved it may read that repository. A
task's registry credentials (``registry_auth``: host → ``user:password``) go to the engine in
the ``X-Registry-Config`` header of that one build request, for its ``FROM`` pulls: nothing is
written on the node (no ``~/.docker/config.json``), and the engine keeps no credential.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import shutil
import tarfile
import time
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

import aiodocker
import msgspec

from unidesk.gateway_agent.exec_config import ExecConfig
from unidesk.gateway_agent.exec_errors import PrepareFailed
from unidesk.gateway_agent.gitcache import GitAuth, GitCache
from unidesk.gateway_agent.images import ENV_IMAGE_LABEL, ENV_REPO, ImageLedger
from unidesk.gateway_agent.keyed_lock import KeyedLock
from unidesk.gateway_agent.repo_url import check_commit_id, check_repo_url, redact_url
from unidesk.gateway_agent.runner import Reporter

__all__ = ["EnvBuilder", "EnvImage", "check_dockerfile_path", "env_tag", "registry_config"]


class EnvImage(msgspec.Struct, frozen=True):
    tag: str
    built: bool
    """False when the tag already existed (no fetch, no build)."""
    seconds: float


def env_tag(env_repo_url: str, env_commit_id: str, dockerfile_path: str) -> str:
    key = json.dumps([env_repo_url, env_commit_id, dockerfile_path]).encode()
    return f"{ENV_REPO}:{hashlib.sha256(key).hexdigest()[:20]}"


def registry_config(registry_auth: dict[str, str]) -> str:
    """The Engine API's ``X-Registry-Config``: base64url of ``{host: {username, password}}``."""
    config = {}
    for host, credential in registry_auth.items():
        user, _, password = credential.strip().partition(":")
        config[host] = {"username": user, "password": password}
    return base64.urlsafe_b64encode(json.dumps(config).encode()).decode()


def check_dockerfile_path(path: str) -> str:
    """A relative POSIX path with no ``..``; returns it normalised or raises ``PrepareFailed``."""
    if not path or "\x00" in path or "\\" in path or len(path) > 1024:
        raise PrepareFailed(f"dockerfile_path {path[:100]!r} is empty or has forbidden characters")
    pure = PurePosixPath(path)
    if pure.is_absolute():
        raise PrepareFailed(
            f"dockerfile_path {path!r} is absolute; give a path inside the env repository"
        )
    if ".." in pure.parts:
        raise PrepareFailed(
            f"dockerfile_path {path!r} contains '..'; give a path inside the env repository"
        )
    return str(pure)


def _resolve_inside(root: Path, rel: str) -> None:
    root = root.resolve()
    target = (root / rel).resolve()
    if not target.is_relative_to(root):
        raise PrepareFailed(
            f"dockerfile_path {rel!r} resolves outside the env repository (symlink)"
        )
    if not target.is_file():
        raise PrepareFailed(f"dockerfile_path {rel!r} is not a file in the env repository")


def _write_context(src: Path, dest: Path) -> None:
    with tarfile.open(dest, "w") as tar:
        for child in sorted(src.iterdir()):
            tar.add(child, arcname=child.name, recursive=True)


def _send_registry_config(builder: aiodocker.Docker, value: str) -> None:
    """Add ``X-Registry-Config`` to this client's build request (aiodocker's ``build`` has no
    parameter for it). The client is private to one build and closed after it."""
    query = builder._query

    def with_config(path: str, method: str = "GET", **kwargs: Any) -> Any:
        if path == "build":
            headers = dict(kwargs.pop("headers", None) or {})
            headers["X-Registry-Config"] = value
            kwargs["headers"] = headers
        return query(path, method, **kwargs)

    # a per-instance wrapper of the same call (aiodocker has no parameter for this header)
    builder._query = with_config  # type: ignore[assignment]  # wraps aiodocker's private call


class EnvBuilder:
    def __init__(self, config: ExecConfig, git: GitCache, ledger: ImageLedger) -> None:
        self._config = config
        self._git = git
        self._ledger = ledger
        self._scratch = config.cache_path / "envctx"
        self._locks = KeyedLock(self._scratch / "locks")

    async def _check_private(self, url: str, auth: GitAuth | None) -> None:
        if auth or self._git.is_private(url):
            await self._git.check_access(url, auth)

    async def image_exists(self, docker: aiodocker.Docker, tag: str) -> bool:
        try:
            await docker.images.inspect(tag)
            return True
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return False
            raise

    async def ensure_image(
        self,
        docker: aiodocker.Docker,
        url: str,
        commit: str,
        dockerfile_path: str,
        reporter: Reporter,
        *,
        auth: GitAuth | None = None,
        registry_auth: dict[str, str] | None = None,
    ) -> EnvImage:
        """Return the env image tag, building it first when this node does not have it."""
        started = time.monotonic()
        rel = check_dockerfile_path(dockerfile_path)
        check_repo_url(url, allow_file=self._config.allow_file_urls)
        check_commit_id(commit, what="env commit")
        tag = env_tag(url, commit, dockerfile_path)
        if await self.image_exists(docker, tag):
            await self._check_private(url, auth)
            self._ledger.touch(tag)
            return EnvImage(tag, False, time.monotonic() - started)
        async with self._locks.hold(tag.rsplit(":", 1)[1]):
            if await self.image_exists(docker, tag):
                await self._check_private(url, auth)
                self._ledger.touch(tag)
                return EnvImage(tag, False, time.monotonic() - started)
            owner = object()  # holds the env repository until its checkout is done
            await self._git.ensure_commit(url, commit, auth, owner=owner)
            work = self._scratch / f"{tag.rsplit(':', 1)[1]}-{uuid.uuid4().hex[:8]}"
            ctx = work / "ctx"
            ctx.mkdir(parents=True)
            try:
                await self._git.checkout(url, commit, ctx)
                _resolve_inside(ctx, rel)
                await reporter.stage("build_image")
                tar_path = work / "context.tar"
                await asyncio.to_thread(_write_context, ctx, tar_path)
                await self._build(
                    docker, tar_path, rel, tag, url, commit, reporter, registry_auth or {}
                )
            finally:
                self._git.uses.release(owner)
                await asyncio.to_thread(shutil.rmtree, work, True)
            self._ledger.touch(tag)
        return EnvImage(tag, True, time.monotonic() - started)

    async def _build(
        self,
        docker: aiodocker.Docker,
        tar_path: Path,
        rel: str,
        tag: str,
        url: str,
        commit: str,
        reporter: Reporter,
        registry_auth: dict[str, str],
    ) -> None:
        labels = {
            ENV_IMAGE_LABEL: "1",
            "unidesk.env.repo": redact_url(url),
            "unidesk.env.commit": commit,
            "unidesk.env.dockerfile": rel,
        }
        # A client of its own: closing it on cancel closes the build request's connection,
        # which is what makes the engine abort the build (a released pooled one does not).
        builder = aiodocker.Docker(url=self._config.docker_url, api_version=docker.api_version)
        if registry_auth:
            _send_registry_config(builder, registry_config(registry_auth))
        # opening is one quick syscall; aiodocker reads the context in its own chunks
        with open(tar_path, "rb") as context:  # noqa: ASYNC230
            try:
                async for item in builder.images.build(
                    fileobj=context,
                    encoding="identity",
                    path_dockerfile=rel,
                    tag=tag,
                    rm=True,
                    forcerm=True,
                    labels=labels,
                    stream=True,
                ):
                    text = item.get("stream") or item.get("status") or ""
                    if text:
                        reporter.log("build", text.encode())
            except aiodocker.DockerError as exc:
                message = str(exc.message).strip().splitlines()[-1] if exc.message else "unknown"
                reporter.log("build", f"build failed: {message}\n".encode())
                raise PrepareFailed(
                    f"env image build failed for {redact_url(url)}@{commit} "
                    f"({rel}): {message[:500]}"
                ) from None
            finally:
                await builder.close()
