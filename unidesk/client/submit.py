"""``unidesk submit``'s flags and how they become a ``TaskCreate`` request body."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_submit_arguments", "parse_pairs", "task_create_body"]


def add_submit_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--code-repo", required=True, help="repository URL of the code")
    p.add_argument(
        "--code-commit", required=True, help="full commit SHA of the code (40 or 64 hex)"
    )
    p.add_argument("--env-repo", required=True, help="repository URL holding the Dockerfile")
    p.add_argument(
        "--env-commit", required=True, help="full commit SHA of the environment repository"
    )
    p.add_argument(
        "--dockerfile", required=True, help="Dockerfile path inside the environment repository"
    )
    p.add_argument("--name", default="", help="a name to find the task by")
    p.add_argument("--cpus", type=float, default=1.0)
    p.add_argument("--memory-mb", type=int, default=512)
    p.add_argument("--gpus", type=int, default=0)
    p.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="run only on nodes with this label (repeatable)",
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment variable for the command (repeatable)",
    )
    p.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="ENV=NAME",
        help="put secret NAME (yours, project:<id>/NAME or global/NAME) in variable ENV "
        "(repeatable; the value never passes through the command line)",
    )
    p.add_argument(
        "--code-credential", metavar="NAME", help="secret to fetch a private code repository"
    )
    p.add_argument(
        "--env-credential", metavar="NAME", help="secret to fetch a private env repository"
    )
    p.add_argument("--known-hosts", metavar="NAME", help="secret holding ssh known_hosts lines")
    p.add_argument(
        "--registry-credential",
        action="append",
        default=[],
        metavar="HOST=NAME",
        help="user:password secret for FROM pulls from registry HOST (repeatable)",
    )
    p.add_argument(
        "--timeout", type=int, default=3600, help="seconds before the attempt is stopped"
    )
    p.add_argument("--priority", type=int, default=0, help="higher runs first")
    p.add_argument(
        "--account",
        help="the account the task's use is charged to (fair share, quotas, usage); you must "
        "be one of its members (unidesk account list)",
    )
    p.add_argument("--max-attempts", type=int, default=3, help="tries when a node is lost")
    p.add_argument(
        "--retry-on-failure", action="store_true", help="also retry when the command exits non-zero"
    )
    p.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME[:PATH]",
        help="artifact (name or id) mounted read-only at PATH (default /inputs/<name>) "
        "(repeatable)",
    )
    p.add_argument(
        "--output",
        action="append",
        default=[],
        metavar="PATH",
        help="path or glob under /workspace/outputs uploaded as an artifact after success "
        "(repeatable)",
    )


def parse_pairs(items: list[str], what: str) -> dict[str, str]:
    """``["K=V", ...]`` → dict; raises ``ValueError`` naming the bad item."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} {item!r} must be KEY=VALUE")
        out[key] = value
    return out


def task_create_body(ns: argparse.Namespace, command: list[str]) -> dict[str, Any]:
    """One argument after ``--`` is a shell command line (``/bin/sh -c``); several are exec'd
    as-is."""
    if not command:
        raise ValueError(
            "no command: put it after `--`, e.g. unidesk submit ... -- python train.py"
        )
    return {
        "name": ns.name,
        "code_repo_url": ns.code_repo,
        "code_commit_id": ns.code_commit,
        "env_repo_url": ns.env_repo,
        "env_commit_id": ns.env_commit,
        "dockerfile_path": ns.dockerfile,
        "command": command[0] if len(command) == 1 else command,
        "env": parse_pairs(ns.env, "--env"),
        "resources": {
            "cpus": ns.cpus,
            "memory_mb": ns.memory_mb,
            "gpus": ns.gpus,
            "labels": parse_pairs(ns.label, "--label"),
        },
        "timeout_s": ns.timeout,
        "priority": ns.priority,
        **({"account": ns.account} if ns.account else {}),
        "max_attempts": ns.max_attempts,
        "retry_on_failure": ns.retry_on_failure,
        **_files(ns),
        **_secrets(ns),
    }


def _secrets(ns: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    refs = parse_pairs(getattr(ns, "secret", None) or [], "--secret")
    if refs:
        out["secrets"] = refs
    creds: dict[str, Any] = {}
    for key, attr in (
        ("code_repo", "code_credential"),
        ("env_repo", "env_credential"),
        ("known_hosts", "known_hosts"),
    ):
        if getattr(ns, attr, None):
            creds[key] = getattr(ns, attr)
    registries = parse_pairs(
        getattr(ns, "registry_credential", None) or [], "--registry-credential"
    )
    if registries:
        creds["registries"] = registries
    if creds:
        out["credentials"] = creds
    return out


def _files(ns: argparse.Namespace) -> dict[str, Any]:
    """``--input NAME[:PATH]`` and ``--output PATH`` → the ``inputs``/``outputs`` of the body."""
    out: dict[str, Any] = {}
    inputs = []
    for item in getattr(ns, "input", None) or []:
        name, sep, path = item.partition(":")
        if not name:
            raise ValueError(f"--input {item!r} must be NAME or NAME:PATH")
        inputs.append({"artifact": name, **({"path": path} if sep else {})})
    if inputs:
        out["inputs"] = inputs
    if getattr(ns, "output", None):
        out["outputs"] = list(ns.output)
    return out
