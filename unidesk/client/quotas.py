"""``unidesk quota``: list, set and delete quotas of users and accounts (setting is for admins)."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from .api import ApiClient
from .render import format_time, table

__all__ = ["add_quota_parser", "quota_rows", "run_quota", "user_id"]


def add_quota_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "quota", parents=[common], help="limits on what a user or an account holds at once"
    )
    acts = p.add_subparsers(dest="quota_cmd", required=True, metavar="ACTION")
    acts.add_parser("list", parents=[common], help="every quota (members may read them)")
    for name, text in (
        ("set", "set a user's or an account's limits (admin); unset limits are no limit"),
        ("delete", "remove a user's or an account's quota (admin)"),
    ):
        s = acts.add_parser(name, parents=[common], help=text)
        who = s.add_mutually_exclusive_group(required=True)
        who.add_argument("--user", metavar="NAME|ID", help="a user, by name or id")
        who.add_argument("--account", metavar="ACCOUNT", help="an account (e.g. project:<id>)")
        s.add_argument(
            "--label",
            metavar="KEY=VALUE",
            help="only on nodes with this label, e.g. pool=a100 (default: all nodes)",
        )
        if name == "set":
            s.add_argument("--gpus", type=int, help="most GPUs held at once")
            s.add_argument("--cpus", type=float, help="most CPUs held at once")
            s.add_argument("--memory-mb", type=int, help="most memory (MB) held at once")


def quota_rows(items: list[dict[str, Any]]) -> str:
    return table(
        ["USER", "ACCOUNT", "NODES", "GPUS", "CPUS", "MEMORY MB", "UPDATED (Beijing)"],
        [
            (
                q.get("username") or q.get("user_id"),
                q.get("account"),
                q.get("label") or "all",
                q.get("max_gpus"),
                q.get("max_cpus"),
                q.get("max_memory_mb"),
                format_time(q["updated_at"]),
            )
            for q in items
        ],
    )


def user_id(api: ApiClient, name_or_id: str) -> str:
    """A user's id from their id or username."""
    try:
        return str(uuid.UUID(name_or_id))
    except ValueError:
        pass
    users = api.get("/api/users")["items"]
    match = [u["id"] for u in users if u["username"] == name_or_id]
    if not match:
        raise ValueError(f"no user named {name_or_id!r}")
    return str(match[0])


def _path(api: ApiClient, ns: argparse.Namespace) -> str:
    if ns.account is not None:
        return f"/api/quotas/accounts/{quote(ns.account, safe='')}"
    return f"/api/quotas/{user_id(api, ns.user)}"


def run_quota(api: ApiClient, ns: argparse.Namespace, print_json: Callable[[Any], None]) -> int:
    if ns.quota_cmd == "list":
        items = api.get("/api/quotas")["items"]
        print_json(items) if ns.json else print(quota_rows(items))
        return 0
    path = _path(api, ns)
    params = {"label": ns.label} if ns.label else None
    if ns.quota_cmd == "set":
        body = {"max_gpus": ns.gpus, "max_cpus": ns.cpus, "max_memory_mb": ns.memory_mb}
        quota = api.request("PUT", path, params=params, json=body)
        print_json(quota) if ns.json else print(quota_rows([quota]))
        return 0
    api.request("DELETE", path, params=params)
    if not ns.json:
        who = f"account {ns.account}" if ns.account is not None else f"user {ns.user}"
        print(f"quota of {who}{' on ' + ns.label if ns.label else ''} removed")
    return 0
