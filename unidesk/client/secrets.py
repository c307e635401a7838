"""``unidesk secrets``: set (value from stdin or a file, never an argument), list, rm."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .api import ApiClient
from .render import format_time, table

__all__ = ["add_secrets_parser", "run_secrets", "secret_path"]


def add_secrets_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("secrets", parents=[common], help="manage secrets (values are write-only)")
    acts = p.add_subparsers(dest="secrets_cmd", required=True, metavar="ACTION")
    for name, text in (("set", "create or replace a secret"), ("rm", "delete a secret")):
        s = acts.add_parser(name, parents=[common], help=text)
        s.add_argument("name")
        where = s.add_mutually_exclusive_group()
        where.add_argument("--project", metavar="ID", help="a project's secret (its members')")
        where.add_argument(
            "--global", dest="is_global", action="store_true", help="global (admins)"
        )
        if name == "set":
            s.add_argument(
                "--from-file",
                metavar="PATH",
                help="read the value from this file (default: stdin; one trailing newline dropped)",
            )
    acts.add_parser("list", parents=[common], help="names, scopes, who changed them and when")


def secret_path(ns: argparse.Namespace) -> str:
    name = quote(ns.name, safe="")
    if ns.project:
        return f"/api/secrets/project/{quote(ns.project, safe='')}/{name}"
    return f"/api/secrets/{'global' if ns.is_global else 'user'}/{name}"


def _read_value(ns: argparse.Namespace) -> str:
    if ns.from_file:
        value = Path(ns.from_file).read_text()
    else:
        if sys.stdin.isatty():
            print("value (end with Ctrl-D):", file=sys.stderr)
        value = sys.stdin.read()
    value = value[:-1] if value.endswith("\n") and value.count("\n") == 1 else value
    if not value:
        raise ValueError("empty value: pass it on stdin or with --from-file")
    return value


def run_secrets(api: ApiClient, ns: argparse.Namespace, print_json: Callable[[Any], None]) -> int:
    if ns.secrets_cmd == "list":
        items = api.get("/api/secrets")["items"]
        if ns.json:
            print_json(items)
            return 0
        print(
            table(
                ["REFERENCE", "SCOPE", "UPDATED BY", "UPDATED (Beijing)"],
                [
                    (s["ref"], s["scope"], s["updated_by"], format_time(s["updated_at"]))
                    for s in items
                ],
            )
        )
        return 0
    if ns.secrets_cmd == "set":
        secret = api.request("PUT", secret_path(ns), json={"value": _read_value(ns)})
        if ns.json:
            print_json(secret)
        else:
            print(f"secret saved; tasks name it as {secret['ref']}")
        return 0
    api.request("DELETE", secret_path(ns))
    if not ns.json:
        print(f"secret {ns.name} deleted")
    return 0
