"""The node's git cache: one bare repository per URL, fetch one commit, check it out per attempt.

Layout: ``<cache_dir>/git/<sha256(url)[:32]>.git`` (a bare repository) plus ``locks/``. Each
fetched commit is kept reachable as ``refs/unidesk/<sha>`` so later fetches negotiate against
it and transfer only the missing objects. Fetching is by SHA (``git fetch -- <url>
+<sha>:refs/unidesk/<sha>``); when a server refuses a want that is not a ref tip (old servers
without ``uploadpack.allowReachableSHA1InWant``), the cache falls back to fetching all branches
and tags once and then looks for the commit. Git runs with a minimal environment: no global or
system config, no terminal prompt, ``protocol.allow=never`` except the allowed transports,
hooks off, credentials only from the node's own config.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import time
from pathlib import Path

import msgspec

from unidesk.gateway_agent.exec_config import ExecConfig
from unidesk.gateway_agent.exec_errors import PrepareFailed
from unidesk.gateway_agent.keyed_lock import KeyedLock
from unidesk.gateway_agent.repo_url import check_commit_id, check_repo_url, redact_url

__all__ = ["FetchResult", "GitCache", "GitFailed"]

_PASSTHROUGH_ENV = (
    "PATH",
    "HOME",
    "https_proxy",
    "HTTPS_PROXY",
    "no_proxy",
    "NO_PROXY",
    "SSL_CERT_FILE",
)
_REFUSED_WANT = (
    b"not our ref",
    b"unadvertised object",
    b"allowReachableSHA1InWant",
    b"allowAnySHA1InWant",
    b"couldn't find remote ref",
)


class GitFailed(PrepareFailed):
    """A git command failed; ``detail`` carries git's last stderr lines, credentials redacted."""


class FetchResult(msgspec.Struct, frozen=True):
    repo_dir: str
    fetched: bool
    """False when the commit was already in the cache (no network at all)."""
    seconds: float


class GitCache:
    """Shared by all attempts of one agent; safe for concurrent use (per-repository lock)."""

    def __init__(self, config: ExecConfig) -> None:
        self._config = config
        self.root = config.cache_path / "git"
        self._locks = KeyedLock(self.root / "locks")

    def repo_dir(self, url: str) -> Path:
        return self.root / (hashlib.sha256(url.encode()).hexdigest()[:32] + ".git")

    async def ensure_commit(self, url: str, commit: str) -> FetchResult:
        """Make ``commit`` of ``url`` present in the cache, fetching only what is missing."""
        check_repo_url(url, allow_file=self._config.allow_file_urls)
        check_commit_id(commit)
        started = time.monotonic()
        repo = self.repo_dir(url)
        async with self._locks.hold(repo.name):
            if not repo.exists():
                await self._init(repo, url)
            if await self.has_commit(repo, commit):
                return FetchResult(str(repo), False, time.monotonic() - started)
            rc, _, err = await self._git(
                repo, "fetch", "--no-tags", "--quiet", "--", url, f"+{commit}:refs/unidesk/{commit}"
            )
            if rc != 0 and any(s in err for s in _REFUSED_WANT):
                rc, _, err = await self._git(
                    repo,
                    "fetch",
                    "--no-tags",
                    "--quiet",
                    "--",
                    url,
                    "+refs/heads/*:refs/unidesk-heads/*",
                    "+refs/tags/*:refs/tags/*",
                )
            if not await self.has_commit(repo, commit):
                if rc != 0 and not any(s in err for s in _REFUSED_WANT):
                    raise GitFailed(f"could not fetch {redact_url(url)}: {_tail(err)}")
                raise PrepareFailed(f"commit {commit} not found in repository {redact_url(url)}")
            await self._git(repo, "update-ref", f"refs/unidesk/{commit}", commit)
            await self._git(repo, "-c", "gc.auto=6700", "gc", "--auto", "--quiet")
        return FetchResult(str(repo), True, time.monotonic() - started)

    async def has_commit(self, repo: Path, commit: str) -> bool:
        rc, _, _ = await self._git(repo, "cat-file", "-e", f"{commit}^{{commit}}")
        return rc == 0

    async def checkout(self, url: str, commit: str, dest: Path) -> None:
        """Write the tree of ``commit`` (already in the cache) into the empty directory ``dest``."""
        repo = self.repo_dir(url)
        index = dest.parent / f".{dest.name}.index"
        try:
            for args in (("read-tree", commit), ("checkout-index", "--all", "--force")):
                rc, _, err = await self._git(
                    repo, "--work-tree", str(dest), *args, extra_env={"GIT_INDEX_FILE": str(index)}
                )
                if rc != 0:
                    raise GitFailed(
                        f"could not check out {commit} of {redact_url(url)}: {_tail(err)}"
                    )
        finally:
            index.unlink(missing_ok=True)

    async def _init(self, repo: Path, url: str) -> None:
        repo.parent.mkdir(parents=True, exist_ok=True)
        tmp = repo.with_name(f".{repo.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        rc, _, err = await self._git(None, "init", "--bare", "--quiet", "--", str(tmp))
        if rc != 0:
            raise GitFailed(f"could not create git cache for {redact_url(url)}: {_tail(err)}")
        (tmp / "unidesk-source-url").write_text(redact_url(url) + "\n")
        tmp.rename(repo)

    def _env(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in _PASSTHROUGH_ENV if k in os.environ}
        protocols = "https:ssh" + (":file" if self._config.allow_file_urls else "")
        ssh = "ssh -o BatchMode=yes"
        if self._config.git_ssh_key:
            ssh += f" -o IdentitiesOnly=yes -i '{Path(self._config.git_ssh_key).expanduser()}'"
        env.update(
            GIT_CONFIG_NOSYSTEM="1",
            GIT_CONFIG_GLOBAL=os.devnull,
            GIT_TERMINAL_PROMPT="0",
            GIT_PROTOCOL_FROM_USER="0",
            GIT_ALLOW_PROTOCOL=protocols,
            GIT_SSH_COMMAND=ssh,
            GIT_ASKPASS="/bin/false",
            SSH_ASKPASS="/bin/false",
            LC_ALL="C",
        )
        return env

    def _config_args(self) -> list[str]:
        args = [
            "-c",
            "protocol.allow=never",
            "-c",
            "protocol.https.allow=always",
            "-c",
            "protocol.ssh.allow=always",
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "gc.auto=0",
            "-c",
            "credential.helper=",
        ]
        if self._config.allow_file_urls:
            args += ["-c", "protocol.file.allow=always"]
        if self._config.git_credential_helper:
            args += ["-c", f"credential.helper={self._config.git_credential_helper}"]
        return args

    async def _git(
        self, repo: Path | None, *args: str, extra_env: dict[str, str] | None = None
    ) -> tuple[int, bytes, bytes]:
        argv = ["git", *self._config_args()]
        if repo is not None:
            argv.append(f"--git-dir={repo}")
        env = self._env() | (extra_env or {})
        proc = await asyncio.create_subprocess_exec(
            *argv,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self._config.git_timeout_s)
        except TimeoutError:
            await _kill(proc)
            raise GitFailed(
                f"git {args[0]} took longer than {self._config.git_timeout_s:.0f} s"
            ) from None
        except BaseException:
            await _kill(proc)
            raise
        return proc.returncode or 0, out, err


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


def _tail(err: bytes, lines: int = 3) -> str:
    text = err.decode("utf-8", "replace").strip().splitlines()[-lines:]
    return redact_url(" | ".join(text)) or "no error output"
