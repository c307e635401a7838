"""``unidesk``: log in, submit tasks (optionally waiting on them), list tasks and nodes, cancel,
read logs.

Exit codes: 0 success; 1 an error (the server's problem ``detail`` is printed); ``submit --wait``
and ``logs --follow`` end with the task's outcome: 0 succeeded, the command's own exit code when
it exited non-zero, 3 cancelled, 1 any other failure; 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .accounts import add_account_parser, run_account
from .api import ApiClient, ApiError
from .files import add_files_parser, run_files
from .follow import Follower, exit_code_for
from .plugin_commands import add_plugin_commands
from .quotas import add_quota_parser, run_quota
from .render import node_rows, task_detail, task_rows, trace_lines, usage_rows
from .secrets import add_secrets_parser, run_secrets
from .settings import ClientSettings, NotLoggedIn, load_settings, save_settings
from .submit import add_submit_arguments, task_create_body

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p = argparse.ArgumentParser(prog="unidesk", description="UniDesk command-line client.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    s = sub.add_parser("login", parents=[common], help="store the server URL and an API token")
    s.add_argument("--server", required=True, help="server URL, e.g. https://unidesk.example.org")
    s.add_argument("--token", required=True, help="personal API token (udk_...)")

    s = sub.add_parser(
        "submit", parents=[common], help="submit a task: unidesk submit [options] -- COMMAND..."
    )
    add_submit_arguments(s)
    s.add_argument(
        "--wait", action="store_true", help="follow state and output until the task is final"
    )

    s = sub.add_parser(
        "submit-batch",
        parents=[common],
        help="submit up to 10,000 tasks in one request, all or none "
        "(a JSON array or JSON lines of task bodies; '-' reads stdin)",
    )
    s.add_argument("file", help="path of the task bodies, or - for stdin")

    s = sub.add_parser("tasks", parents=[common], help="list tasks, newest first")
    s.add_argument("--state", action="append", help="only tasks in this state (repeatable)")
    s.add_argument("--mine", action="store_true", help="only my tasks")
    s.add_argument("--name", dest="q", help="name contains")
    s.add_argument("--limit", type=int, default=50)

    s = sub.add_parser("task", parents=[common], help="show one task, its attempts and its trace")
    s.add_argument("id")

    s = sub.add_parser("cancel", parents=[common], help="cancel a task")
    s.add_argument("id")

    sub.add_parser("nodes", parents=[common], help="list compute nodes")

    s = sub.add_parser(
        "usage",
        parents=[common],
        help="resource-hours per user and per account per day, and fair-share keys",
    )
    s.add_argument("--days", type=int, default=7, help="days back, today included (default 7)")
    s.add_argument("--mine", action="store_true", help="only my usage")
    s.add_argument("--account", help="only this account's tasks")
    add_quota_parser(sub, common)
    add_account_parser(sub, common)

    add_secrets_parser(sub, common)

    s = sub.add_parser("logs", parents=[common], help="print a task's output")
    s.add_argument("id")
    s.add_argument("--attempt", type=int, help="attempt number (default: latest)")
    s.add_argument(
        "--follow", "-f", action="store_true", help="keep printing until the task is final"
    )

    add_files_parser(sub, common)
    add_plugin_commands(sub)
    return p


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _login(ns: argparse.Namespace) -> int:
    server = ns.server.rstrip("/")
    with ApiClient(server, ns.token) as api:
        me = api.get("/api/auth/me")
    path = save_settings(ClientSettings(server=server, token=ns.token))
    if ns.json:
        _print_json({"server": server, "user": me, "config": str(path)})
    else:
        print(f"Logged in to {server} as {me.get('username')} ({me.get('role')}); saved to {path}")
    return 0


def _submit(api: ApiClient, ns: argparse.Namespace, command: list[str]) -> int:
    task = api.post("/api/tasks", task_create_body(ns, command))
    if ns.json and not ns.wait:
        _print_json(task)
        return 0
    print(
        task["id"] if ns.json or not sys.stdout.isatty() else f"Submitted task {task['id']}",
        file=sys.stderr if ns.wait else sys.stdout,
    )
    if not ns.wait:
        return 0
    final = Follower(api, task["id"]).run()
    if ns.json:
        _print_json(final)
    return exit_code_for(final)


def read_task_bodies(text: str) -> list[Any]:
    """Task bodies from a JSON array, or from JSON lines (one body per non-empty line)."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        bodies = json.loads(stripped)
        if not isinstance(bodies, list):
            raise ValueError("expected a JSON array of task bodies")
        return bodies
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _submit_batch(api: ApiClient, ns: argparse.Namespace) -> int:
    text = sys.stdin.read() if ns.file == "-" else Path(ns.file).read_text()
    try:
        bodies = read_task_bodies(text)
    except ValueError as exc:
        print(f"unidesk: {ns.file}: not JSON task bodies ({exc})", file=sys.stderr)
        return 1
    result = api.post("/api/task-batches", {"tasks": bodies})
    if ns.json:
        _print_json(result)
    else:
        print("\n".join(result["task_ids"]))
    return 0


def _run(api: ApiClient, ns: argparse.Namespace, command: list[str]) -> int:
    if ns.cmd == "submit":
        return _submit(api, ns, command)
    if ns.cmd == "submit-batch":
        return _submit_batch(api, ns)
    if ns.cmd == "tasks":
        page = api.get(
            "/api/tasks", state=ns.state, owner="me" if ns.mine else None, q=ns.q, limit=ns.limit
        )
        _print_json(page) if ns.json else print(task_rows(page["items"]))
    elif ns.cmd == "task":
        task = api.get(f"/api/tasks/{ns.id}")
        trace = api.get(f"/api/tasks/{ns.id}/trace")["items"]
        if ns.json:
            _print_json({**task, "trace": trace})
        else:
            print(task_detail(task) + "\n\nTrace\n" + trace_lines(trace))
    elif ns.cmd == "cancel":
        task = api.post(f"/api/tasks/{ns.id}/cancel")
        _print_json(task) if ns.json else print(f"Task {task['id']} is {task['state']}")
    elif ns.cmd == "nodes":
        page = api.get("/api/nodes")
        _print_json(page) if ns.json else print(node_rows(page["items"]))
    elif ns.cmd == "usage":
        usage = api.get(
            "/api/usage", days=ns.days, owner="me" if ns.mine else None, account=ns.account
        )
        _print_json(usage) if ns.json else print(usage_rows(usage))
    elif ns.cmd == "logs":
        return _logs(api, ns)
    elif ns.cmd == "secrets":
        return run_secrets(api, ns, _print_json)
    elif ns.cmd == "quota":
        return run_quota(api, ns, _print_json)
    elif ns.cmd == "account":
        return run_account(api, ns, _print_json)
    elif ns.cmd == "files":
        return run_files(api, ns, _print_json)
    elif callable(getattr(ns, "func", None)):  # a plugin's command
        return int(ns.func(ns, api))
    return 0


def _logs(api: ApiClient, ns: argparse.Namespace) -> int:
    if ns.follow:
        return exit_code_for(Follower(api, ns.id, show_states=False).run())
    after, items = 0, []
    while True:
        page = api.get(f"/api/tasks/{ns.id}/logs", attempt=ns.attempt, after=after, limit=1000)
        items += page["items"]
        if not page["items"] or page["next_after"] == after:
            break
        after = page["next_after"]
    if ns.json:
        _print_json(items)
    else:
        for line in items:
            (sys.stdout if line.get("stream") == "stdout" else sys.stderr).write(
                line.get("data", "")
            )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in args:
        cut = args.index("--")
        args, command = args[:cut], args[cut + 1 :]
    ns = build_parser().parse_args(args)
    try:
        if ns.cmd == "login":
            return _login(ns)
        settings = load_settings()
        with ApiClient(settings.server, settings.token) as api:
            return _run(api, ns, command)
    except (ApiError, NotLoggedIn, ValueError) as exc:
        print(f"unidesk: error: {getattr(exc, 'detail', None) or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "\nunidesk: interrupted (the task keeps running; follow it with `unidesk logs -f ID`)",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
