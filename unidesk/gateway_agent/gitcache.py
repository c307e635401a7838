"""The node's git cache: one bare repository per URL, fetch one commit, check it out per attempt.

Layout: ``<cache_dir>/git/<sha256(url)[:32]>.git`` (a bare repository) plus ``locks/``. Each
fetched commit is kept reachable as ``refs/unidesk/<sha>`` so later fetches negotiate against
it and transfer only the missing objects. Fetching is by SHA (``git fetch -- <url>
+<sha>:refs/unidesk/<sha>``); when a server refuses a want that is not a ref tip (old servers
without ``uploadpack.allowReachableSHA1InWant``), the cache falls back to fetching all branches
and tags once and then looks for the commit. Git runs with a minimal environment: no global or
system config, no terminal prompt, ``protocol.allow=never`` except the allowed transports,
hooks off, credentials only from the node's own config, or from a task's credential for that
one fetch (``GitAuth``): an SSH key in a temporary 0600 file named by ``GIT_SSH_COMMAND`` with
host-key checking forced on, or an https ``user:token`` handed to git by a credential helper
that reads it from the fetch's environment. Neither is ever written into a URL, the cache's
config, a reflog or a message, and the temporary files are removed when the fetch ends.

Every use touches ``<repo>/unidesk-last-used`` (LRU eviction in ``caches.py``); a fetch for an
attempt (``owner``) marks the repository in use by it until the attempt releases it, and eviction
takes the same per-repository lock, so a repository is never removed under a fetch or checkout.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec

from unidesk.gateway_agent.caches import LAST_USED, CacheUses
from unidesk.gateway_agent.exec_config import ExecConfig
from unidesk.gateway_agent.exec_errors import PrepareFailed
from unidesk.gateway_agent.keyed_lock import KeyedLock
from unidesk.gateway_agent.repo_url import check_commit_id, check_repo_url, redact_url

__all__ = ["FetchResult", "GitAuth", "GitCache", "GitFailed"]

_PASSTHROUGH_ENV = (
    "PATH",
    "HOME",
    "https_proxy",
    "HTTPS_PROXY",
    "no_proxy",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "GIT_SSL_CAINFO",
)
_HELPER = (
    '!f() { test "$1" = get && '
    'printf \'username=%s\\npassword=%s\\n\' "$UNIDESK_GIT_USERNAME" "$UNIDESK_GIT_PASSWORD"; }; f'
)
"""A credential helper that answers from the fetch's own environment (never from a file)."""
_REFUSED_WANT = (
    b"not our ref",
    b"unadvertised object",
    b"allowReachableSHA1InWant",
    b"allowAnySHA1InWant",
    b"couldn't find remote ref",
)


class GitFailed(PrepareFailed):
    """A git command failed; ``detail`` carries git's last stderr lines, credentials redacted."""


class GitAuth(msgspec.Struct, frozen=True):
    """A task's credential for one repository: an SSH private key (ssh URLs) or ``user:token``
    / a bare token (https; the user name then is ``x-access-token``)."""

    credential: str = ""
    known_hosts: str = ""
    """known_hosts lines for ssh (else the node's own known_hosts); checking is always on."""

    def __bool__(self) -> bool:
        return bool(self.credential or self.known_hosts)


class FetchResult(msgspec.Struct, frozen=True):
    repo_dir: str
    fetched: bool
    """False when the commit was already in the cache (no network at all)."""
    seconds: float


class GitCache:
    """Shared by all attempts of one agent; safe for concurrent use (per-repository lock)."""

    def __init__(self, config: ExecConfig, uses: CacheUses | None = None) -> None:
        self._config = config
        self.root = config.cache_path / "git"
        self.locks = KeyedLock(self.root / "locks")
        self.uses = uses or CacheUses()
        """Which repositories attempts hold (never evicted while held)."""

    def repo_dir(self, url: str) -> Path:
        return self.root / (hashlib.sha256(url.encode()).hexdigest()[:32] + ".git")

    async def ensure_commit(
        self, url: str, commit: str, auth: GitAuth | None = None, *, owner: object | None = None
    ) -> FetchResult:
        """Make ``commit`` of ``url`` present in the cache, fetching only what is missing
        (with ``auth`` for this fetch only when given); with ``owner``, the repository stays in
        use by it until ``uses.release(owner)``."""
        kind = check_repo_url(url, allow_file=self._config.allow_file_urls)
        check_commit_id(commit)
        started = time.monotonic()
        repo = self.repo_dir(url)
        async with self.locks.hold(repo.name):
            if owner is not None:
                self.uses.hold(owner, "git", repo.name)
            if not repo.exists():
                await self._init(repo, url)
            _clear_stale_locks(repo)
            _touch(repo)
            if await self.has_commit(repo, commit):
                # A repository once fetched with a credential is private: a later attempt must
                # prove it may read it (its own credential) before it gets the cached commit.
                if auth or self.is_private(url):
                    await self.check_access(url, auth)
                return FetchResult(str(repo), False, time.monotonic() - started)
            with self._auth_env(kind, auth) as (auth_args, auth_env):

                async def fetch(*refspecs: str) -> tuple[int, bytes, bytes]:
                    return await self._git(
                        repo,
                        *auth_args,
                        "fetch",
                        "--no-tags",
                        "--quiet",
                        "--",
                        url,
                        *refspecs,
                        extra_env=auth_env,
                    )

                rc, _, err = await fetch(f"+{commit}:refs/unidesk/{commit}")
                if rc != 0 and any(s in err for s in _REFUSED_WANT):
                    rc, _, err = await fetch(
                        "+refs/heads/*:refs/unidesk-heads/*", "+refs/tags/*:refs/tags/*"
                    )
            if auth and auth.credential:
                err = err.replace(auth.credential.encode(), b"***")
                if rc == 0:
                    (repo / "unidesk-private").touch()
            if not await self.has_commit(repo, commit):
                if rc != 0 and not any(s in err for s in _REFUSED_WANT):
                    raise GitFailed(
                        f"could not fetch {redact_url(url)}: {_access_hint(err)}{_tail(err)}"
                    )
                raise PrepareFailed(f"commit {commit} not found in repository {redact_url(url)}")
            rc, _, err = await self._git(repo, "update-ref", f"refs/unidesk/{commit}", commit)
            if rc != 0:
                raise GitFailed(f"could not keep {commit} in the git cache: {_tail(err)}")
            # in the foreground: no git may run in the repository once its lock is released
            await self._git(
                repo, "-c", "gc.auto=6700", "-c", "gc.autoDetach=false", "gc", "--auto", "--quiet"
            )
        return FetchResult(str(repo), True, time.monotonic() - started)

    def is_private(self, url: str) -> bool:
        """Whether ``url`` was fetched with a task's credential (cached commits then need one)."""
        return (self.repo_dir(url) / "unidesk-private").exists()

    async def check_access(self, url: str, auth: GitAuth | None) -> None:
        """Ask the remote (``git ls-remote``) whether ``auth`` may read ``url``; raise if not."""
        kind = check_repo_url(url, allow_file=self._config.allow_file_urls)
        with self._auth_env(kind, auth) as (auth_args, auth_env):
            rc, _, err = await self._git(
                None, *auth_args, "ls-remote", "--quiet", "--", url, "HEAD", extra_env=auth_env
            )
        if rc != 0:
            if auth and auth.credential:
                err = err.replace(auth.credential.encode(), b"***")
            raise GitFailed(
                f"no access to private repository {redact_url(url)} "
                f"(it needs this task's credential): {_access_hint(err)}{_tail(err)}"
            )

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

    @contextlib.contextmanager
    def _auth_env(
        self, kind: str, auth: GitAuth | None
    ) -> Iterator[tuple[list[str], dict[str, str]]]:
        """Git arguments and environment that give this one fetch its credential; temporary
        files (mode 0600, in a 0700 directory) are removed on exit whatever happens."""
        if not auth:
            yield [], {}
            return
        base = self._config.cache_path / "auth"
        base.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="fetch-", dir=base))
        try:
            if kind == "ssh":
                ssh = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
                if auth.credential:
                    key = tmp / "key"
                    _write_private(key, auth.credential.strip() + "\n")
                    ssh += ["-o", "IdentitiesOnly=yes", "-i", str(key)]
                elif self._config.git_ssh_key:
                    key_path = str(Path(self._config.git_ssh_key).expanduser())
                    ssh += ["-o", "IdentitiesOnly=yes", "-i", key_path]
                if auth.known_hosts:
                    hosts = tmp / "known_hosts"
                    _write_private(hosts, auth.known_hosts.strip() + "\n")
                    ssh += [
                        "-o",
                        f"UserKnownHostsFile={hosts}",
                        "-o",
                        "GlobalKnownHostsFile=/dev/null",
                    ]
                yield [], {"GIT_SSH_COMMAND": shlex.join(ssh)}
            elif kind == "https" and auth.credential:
                user, sep, password = auth.credential.strip().partition(":")
                if not sep:
                    user, password = "x-access-token", user
                yield (
                    ["-c", "credential.helper=", "-c", f"credential.helper={_HELPER}"],
                    {"UNIDESK_GIT_USERNAME": user, "UNIDESK_GIT_PASSWORD": password},
                )
            else:
                yield [], {}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

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


def _clear_stale_locks(repo: Path) -> None:
    """Remove git's lock files a killed git left (agent kill -9 mid-fetch); called under the
    repository's lock, when no git of this cache runs in it. Left alone, a ``refs/…/x.lock``
    makes git refuse that ref for ever."""
    for lock in (*repo.glob("*.lock"), *(repo / "refs").rglob("*.lock")):
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


_DENIED = (
    (b"Host key verification failed", "host key not trusted (known_hosts)"),
    (b"Permission denied", "access denied (credential missing or wrong)"),
    (b"Authentication failed", "access denied (credential missing or wrong)"),
    (b"could not read Username", "access denied (credential missing)"),
)


def _access_hint(err: bytes) -> str:
    """A clear reason first when git's output shows the remote refused access."""
    for marker, hint in _DENIED:
        if marker in err:
            return f"{hint}: "
    return ""


def _touch(repo: Path) -> None:
    (repo / LAST_USED).touch()
    os.utime(repo / LAST_USED)


def _tail(err: bytes, lines: int = 3) -> str:
    text = err.decode("utf-8", "replace").strip().splitlines()[-lines:]
    return redact_url(" | ".join(text)) or "no error output"
