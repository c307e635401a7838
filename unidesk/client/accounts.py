"""``unidesk account``: list scheduling accounts and their members; add and remove members
(admins)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from .api import ApiClient
from .quotas import user_id
from .render import format_time, table

__all__ = ["add_account_parser", "run_account"]


def add_account_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "account", parents=[common], help="who may charge tasks to a scheduling account"
    )
    acts = p.add_subparsers(dest="account_cmd", required=True, metavar="ACTION")
    acts.add_parser("list", parents=[common], help="every account with members, and them")
    for name, text in (
        ("add", "let a user charge tasks to an account (admin)"),
        ("remove", "stop a user charging new tasks to an account (admin)"),
    ):
        s = acts.add_parser(name, parents=[common], help=text)
        s.add_argument("account", metavar="ACCOUNT", help="the account, e.g. apollo")
        s.add_argument("--user", metavar="NAME|ID", required=True, help="a user, by name or id")


def run_account(api: ApiClient, ns: argparse.Namespace, print_json: Callable[[Any], None]) -> int:
    if ns.account_cmd == "list":
        items = api.get("/api/accounts")["items"]
        rows = [
            (a["account"], m["username"], format_time(m["added_at"]))
            for a in items
            for m in a["members"]
        ]
        print_json(items) if ns.json else print(
            table(["ACCOUNT", "MEMBER", "ADDED (Beijing)"], rows)
        )
        return 0
    path = f"/api/accounts/{quote(ns.account, safe='')}/members/{user_id(api, ns.user)}"
    if ns.account_cmd == "add":
        member = api.request("PUT", path)
        print_json(member) if ns.json else print(
            f"{member['username']} is a member of {ns.account}"
        )
        return 0
    api.request("DELETE", path)
    if not ns.json:
        print(f"{ns.user} is no longer a member of {ns.account}")
    return 0
