"""``git ls-remote`` for one ref: no shell, a short timeout, bounded output, public hosts only.

The server dials the repository a member names, so the request is an SSRF surface: only
https and ssh URLs (file:// only with the ``allow_file_urls`` setting), and a host must resolve
to public addresses unless ``git_resolve_private_hosts`` is on; git is pinned to the addresses
that were checked (``http.curloptResolve``), so a second DNS answer cannot point it elsewhere,
and redirects are not followed.
Credentials travel in git's environment (an ``http.extraHeader``), never in argv, logs or errors.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import os
import re
import socket
from typing import Literal
from urllib.parse import urlsplit

import msgspec
import structlog

from unidesk.core.tasks.validation import check_repo_url
from unidesk.errors import BadRequest, UnideskError

__all__ = ["RefResolved", "RepositoryUnreachable", "UnknownRef", "check_ref", "resolve_ref"]

log = structlog.get_logger(__name__)

MAX_OUTPUT = 1 << 20
"""Most bytes of ``ls-remote`` output read; a repository advertising more is refused."""
_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_BAD_REF = re.compile(r"(^[-/.])|\.\.|//|@\{|[\x00-\x20\x7f~^:?*\[\\]|(\.lock|/|\.)$")


class RefResolved(msgspec.Struct, kw_only=True):
    repo_url: str
    ref: str
    commit: str
    """The full commit id the ref names now: submit this (a task is pinned, not a branch)."""
    kind: Literal["branch", "tag", "head", "commit", "ref"]
    full_ref: str | None
    """The ref's full name (``refs/heads/main``); None for a commit id given as is."""


class RepositoryUnreachable(UnideskError):
    """The repository could not be read (no such host, refused, no access, timed out)."""

    status, close_code, title = 422, 4422, "Repository unreachable"


class UnknownRef(UnideskError):
    """The repository has no branch or tag by that name."""

    status, close_code, title = 404, 4404, "No such branch or tag"


def check_ref(ref: str) -> str:
    """A branch, tag, ``HEAD``, full ``refs/…`` name or full commit id; else a 400."""
    if not ref or len(ref) > 255 or _BAD_REF.search(ref):
        raise BadRequest(
            "ref: a branch or tag name (as git allows: no spaces, '..', '~^:?*[\\'), HEAD, or "
            "a full commit id",
            field="ref",
        )
    return ref


async def _public_addresses(host: str, port: int, allow_private: bool) -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise RepositoryUnreachable(f"repository host {host!r} does not resolve") from None
    addrs = sorted({str(info[4][0]) for info in infos})
    if not allow_private:
        for a in addrs:
            ip = ipaddress.ip_address(a.split("%", 1)[0])
            if not ip.is_global:
                raise RepositoryUnreachable(
                    f"repository host {host!r} resolves to a non-public address ({a}); this "
                    "server resolves refs only on public hosts (setting git_resolve_private_hosts)"
                )
    return addrs


def _redact(text: str) -> str:
    return re.sub(r"(https?://)[^/@\s]+@", r"\1***@", text)


async def resolve_ref(
    repo_url: str,
    ref: str,
    *,
    allow_file: bool,
    allow_private: bool,
    timeout_s: float,
    credential: str | None = None,
) -> RefResolved:
    """The commit ``ref`` names in ``repo_url`` now (one ``git ls-remote``)."""
    check_repo_url("repo_url", repo_url, allow_file=allow_file)
    check_ref(ref)
    if _SHA.match(ref):
        return RefResolved(repo_url=repo_url, ref=ref, commit=ref, kind="commit", full_ref=None)
    parts = urlsplit(repo_url) if "://" in repo_url else None
    scheme = parts.scheme if parts else "ssh"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "SSH_ASKPASS": "/bin/false",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=5",
        "LC_ALL": "C",
    }
    config: list[tuple[str, str]] = [
        ("protocol.allow", "never"),
        (f"protocol.{scheme}.allow", "always"),
        ("http.followRedirects", "false"),  # a public host must not send git on to a private one
        ("http.lowSpeedLimit", "1"),
        ("http.lowSpeedTime", str(max(1, int(timeout_s)))),
    ]
    if os.environ.get("GIT_SSL_CAINFO"):  # a test or deployment CA bundle, passed on as given
        env["GIT_SSL_CAINFO"] = os.environ["GIT_SSL_CAINFO"]
    if parts and scheme == "https":
        host = parts.hostname or ""
        port = parts.port or 443
        addrs = await _public_addresses(host, port, allow_private)
        pinned = ",".join(f"[{a}]" if ":" in a else a for a in addrs)
        config.append(("http.curloptResolve", f"{host}:{port}:{pinned}"))
        if credential:
            _, sep, _ = credential.partition(":")
            pair = credential if sep else f"x-access-token:{credential}"
            header = "Authorization: Basic " + base64.b64encode(pair.encode()).decode()
            config.append(("http.extraHeader", header))
    elif scheme == "ssh" and not allow_private:
        host = (parts.hostname if parts else repo_url.split("@", 1)[-1].split(":", 1)[0]) or ""
        await _public_addresses(host, parts.port or 22 if parts else 22, allow_private)
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for i, (k, v) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = k, v
    patterns = (
        [ref]
        if ref == "HEAD" or ref.startswith("refs/")
        else [f"refs/heads/{ref}", f"refs/tags/{ref}"]
    )
    argv = ["git", "ls-remote", "--", repo_url, *patterns, *(f"{p}^{{}}" for p in patterns)]
    out, err, rc = await _run(argv, env, timeout_s, repo_url)
    if rc != 0:
        tail = _redact(err.decode(errors="replace").strip().splitlines()[-1:][0] if err else "")
        log.info("git ls-remote failed", repo=_redact(repo_url), rc=rc)
        raise RepositoryUnreachable(
            f"could not read {_redact(repo_url)}: {tail[:300] or f'git exited with {rc}'}"
        )
    refs: dict[str, str] = {}
    for line in out.decode(errors="replace").splitlines():
        sha, _, name = line.partition("\t")
        if _SHA.match(sha):
            refs[name] = sha
    for full in patterns:
        if full in refs:
            kind: Literal["branch", "tag", "head", "ref"] = (
                "head"
                if full == "HEAD"
                else "branch"
                if full.startswith("refs/heads/")
                else "tag"
                if full.startswith("refs/tags/")
                else "ref"
            )
            # An annotated tag names a tag object; the commit is its peeled (^{}) line.
            commit = refs.get(f"{full}^{{}}", refs[full])
            return RefResolved(repo_url=repo_url, ref=ref, commit=commit, kind=kind, full_ref=full)
    raise UnknownRef(f"{_redact(repo_url)} has no branch or tag named {ref!r}", field="ref")


async def _run(
    argv: list[str], env: dict[str, str], timeout_s: float, repo_url: str
) -> tuple[bytes, bytes, int]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None

    async def bounded(stream: asyncio.StreamReader) -> bytes:
        buf = b""
        while chunk := await stream.read(65536):
            buf += chunk
            if len(buf) > MAX_OUTPUT:
                raise RepositoryUnreachable(
                    f"{_redact(repo_url)} advertises more than {MAX_OUTPUT} bytes of refs; give "
                    "the full commit id instead"
                )
        return buf

    try:
        async with asyncio.timeout(timeout_s):
            out, err = await asyncio.gather(bounded(proc.stdout), bounded(proc.stderr))
            rc = await proc.wait()
    except TimeoutError:
        raise RepositoryUnreachable(
            f"{_redact(repo_url)} did not answer within {timeout_s:g} s"
        ) from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            await proc.wait()
    return out, err, rc
