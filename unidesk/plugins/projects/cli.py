"""``unidesk projects``: list projects, or one project's work items (the plugin's CLI command)."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_commands"]


def _run(ns: argparse.Namespace, api: Any) -> int:
    if ns.project:
        detail = api.get(f"/api/projects/{ns.project}")
        if ns.json:
            print(json.dumps(detail, indent=2))
            return 0
        for i in detail["items"]:
            dates = f"{i['start_date'] or '?'} → {i['due_date'] or '?'}"
            print(
                f"{i['id']}  {i['status']:<5}  {dates:<25}  "
                f"{'◆ ' if i['milestone'] else ''}{i['title']}"
            )
        return 0
    page = api.get("/api/projects")
    if ns.json:
        print(json.dumps(page, indent=2))
        return 0
    for p in page["items"]:
        print(f"{p['id']}  {p['done_count']}/{p['item_count']} done  {p['name']}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = subparsers.add_parser(
        "projects", help="list projects, or one project's work items (projects plugin)"
    )
    s.add_argument(
        "project",
        nargs="?",
        help="a project id: list its work items (dates are Beijing calendar days)",
    )
    s.add_argument("--json", action="store_true", help="print machine-readable JSON")
    s.set_defaults(func=_run)
