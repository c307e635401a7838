"""``unidesk pipeline submit FILE [--wait]``, ``unidesk pipeline ID``, ``unidesk pipelines``: the
pipelines plugin's CLI commands.

``submit`` reads a YAML or JSON pipeline spec from FILE (``-`` for stdin), or with ``--from-repo
[PATH] --commit REV`` the ``.unidesk/pipeline.yml`` of a local git checkout at that commit (``git
show``): the commit becomes the pipeline's ``code_commit_id`` and the checkout's ``origin`` its
``code_repo_url`` where the file's ``defaults`` do not pin them. ``--wait`` follows the pipeline
until it is final (see ``progress.py``); exit code 0 succeeded, 3 cancelled, 1 failed.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from unidesk.client.render import format_time, table
from unidesk.plugins.pipelines.progress import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    PipelineWatcher,
    counts_text,
)

__all__ = [
    "add_commands",
    "exit_code_for",
    "files_in",
    "pipeline_detail",
    "read_spec",
    "spec_from_repo",
]

REPO_SPEC_PATH = ".unidesk/pipeline.yml"
_FULL_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


class SpecError(ValueError):
    """The spec could not be read (bad file, not YAML/JSON, git could not show it)."""


def read_spec(text: str, source: str) -> dict[str, Any]:
    """A pipeline spec from YAML or JSON text (JSON is YAML); a mapping or ``SpecError``."""
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: not YAML or JSON ({exc})") from None
    if not isinstance(spec, dict):
        raise SpecError(f"{source}: a pipeline spec is a mapping with name and steps")
    return spec


def _git(checkout: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(checkout), *args], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SpecError(f"git {' '.join(args)}: {exc}") from None
    if done.returncode != 0:
        raise SpecError(f"git {' '.join(args)} in {checkout}: {done.stderr.strip()}")
    return done.stdout


def spec_from_repo(checkout: Path, rev: str) -> dict[str, Any]:
    """``.unidesk/pipeline.yml`` of ``checkout`` at ``rev``, pinned to that commit: the full SHA
    becomes ``defaults.code_commit_id`` and ``origin`` ``defaults.code_repo_url`` unless the file
    sets them."""
    sha = _git(checkout, "rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}").strip()
    if not _FULL_SHA.match(sha):
        raise SpecError(f"git could not resolve {rev!r} to a commit in {checkout}")
    text = _git(checkout, "show", f"{sha}:{REPO_SPEC_PATH}")
    spec = read_spec(text, f"{REPO_SPEC_PATH} at {sha[:12]}")
    defaults = spec.setdefault("defaults", {})
    if not isinstance(defaults, dict):
        raise SpecError(f"{REPO_SPEC_PATH} at {sha[:12]}: defaults must be a mapping")
    defaults.setdefault("code_commit_id", sha)
    if "code_repo_url" not in defaults:
        try:
            defaults["code_repo_url"] = _git(checkout, "remote", "get-url", "origin").strip()
        except SpecError:
            raise SpecError(
                f"{checkout} has no 'origin' remote and {REPO_SPEC_PATH} sets no "
                "defaults.code_repo_url: say where the code is"
            ) from None
    return spec


def exit_code_for(pipeline: dict[str, Any]) -> int:
    """0 succeeded; 3 cancelled; 1 failed (or anything else final)."""
    if pipeline["state"] == "succeeded":
        return 0
    return EXIT_CANCELLED if pipeline["state"] == "cancelled" else EXIT_FAILED


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _submit(ns: argparse.Namespace, api: Any) -> int:
    if ns.from_repo is not None:
        if ns.file:
            raise SpecError("give FILE or --from-repo, not both")
        if not ns.commit:
            raise SpecError("--from-repo needs --commit REV (the commit whose pipeline runs)")
        spec = spec_from_repo(Path(ns.from_repo), ns.commit)
    elif ns.file:
        if ns.commit:
            raise SpecError("--commit goes with --from-repo")
        try:
            text = sys.stdin.read() if ns.file == "-" else Path(ns.file).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(f"{ns.file}: {exc}") from None
        spec = read_spec(text, ns.file)
    else:
        raise SpecError("pipeline submit needs FILE, or --from-repo [PATH] --commit REV")
    created = api.post("/api/pipelines", spec)
    if ns.json and not ns.wait:
        _print_json(created)
        return 0
    interactive = sys.stdout.isatty()
    print(
        created["id"] if ns.json or not interactive else f"Submitted pipeline {created['id']}",
        file=sys.stderr if ns.wait else sys.stdout,
        flush=True,
    )
    if not ns.wait:
        return 0
    final = PipelineWatcher(api, created["id"], live=sys.stderr.isatty()).run()
    if ns.json:
        _print_json(final)
    return exit_code_for(final)


def files_in(spec: dict[str, Any], step: dict[str, Any]) -> list[str]:
    """``from_step/path`` of a step's inputs from other steps: resolved ones, then those its spec
    declares (``{"from": ...}``) that are not resolved yet (a step's inputs resolve as it
    starts)."""
    names = [f"{i['from_step']}/{i['path']}" for i in step.get("inputs") or []]
    for spec_step in spec.get("steps") or []:
        if isinstance(spec_step, dict) and spec_step.get("name") == step["name"]:
            for item in (spec_step.get("task") or {}).get("inputs") or []:
                ref = item.get("from") if isinstance(item, dict) else None
                if isinstance(ref, str) and ref not in names:
                    names.append(ref)
    return names


def pipeline_detail(p: dict[str, Any]) -> str:
    """One pipeline for a terminal: its summary, then one row per step point with its task."""
    head = [
        f"Pipeline {p['name']}  {p['state']}",
        f"  id        {p['id']}",
        f"  owner     {p.get('owner') or '-'}",
        f"  created   {format_time(p.get('created_at'))} (Beijing)",
        f"  finished  {format_time(p.get('finished_at'))}",
        f"  steps     {counts_text(p.get('step_counts') or {}) or '-'}",
    ]
    rows = []
    for s in p["steps"]:
        needs = ",".join(s.get("depends_on") or []) or None
        when = None if s.get("when", "on_success") == "on_success" else s["when"]
        ins = ", ".join(files_in(p.get("spec") or {}, s)) or None
        points = s.get("points") or [{"params": {}, "task_id": None, "task_state": None}]
        for i, pt in enumerate(points):
            params = " ".join(f"{k}={v}" for k, v in (pt.get("params") or {}).items())
            more = " "  # a step's further points leave its own columns blank
            rows.append(
                [
                    s["name"] if i == 0 else more,
                    s["state"] if i == 0 else more,
                    needs if i == 0 else more,
                    when if i == 0 else more,
                    params or None,
                    pt.get("task_id"),
                    pt.get("task_state"),
                    ins if i == 0 else more,
                ]
            )
    steps = table(
        ["STEP", "STATE", "NEEDS", "WHEN", "POINT", "TASK", "TASK STATE", "FILES IN"], rows
    )
    return "\n".join(head) + "\n\n" + steps


def _pipeline(ns: argparse.Namespace, api: Any) -> int:
    if ns.target == "submit":
        return _submit(ns, api)
    if ns.file or ns.from_repo is not None or ns.commit or ns.wait:
        raise SpecError("FILE, --from-repo, --commit and --wait go with 'pipeline submit'")
    p = api.get(f"/api/pipelines/{ns.target}")
    _print_json(p) if ns.json else print(pipeline_detail(p))
    return 0


def _pipelines(ns: argparse.Namespace, api: Any) -> int:
    page = api.get("/api/pipelines", state=ns.state, limit=ns.limit)
    if ns.json:
        _print_json(page)
        return 0
    rows = [
        [
            p["id"],
            p["name"],
            p["state"],
            p.get("owner"),
            counts_text(p.get("step_counts") or {}),
            format_time(p.get("created_at")),
        ]
        for p in page["items"]
    ]
    print(table(["ID", "NAME", "STATE", "OWNER", "STEPS", "CREATED (BEIJING)"], rows))
    if page.get("next_cursor"):
        print(f"(more: raise --limit above {ns.limit})")
    return 0


def _guarded(fn: Any) -> Any:
    def run(ns: argparse.Namespace, api: Any) -> int:
        try:
            return int(fn(ns, api))
        except SpecError as exc:
            print(f"unidesk: error: {exc}", file=sys.stderr)
            return 2

    return run


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = subparsers.add_parser(
        "pipeline",
        help="submit a pipeline (pipeline submit FILE [--wait]) or show one (pipeline ID)",
        description="unidesk pipeline submit FILE|--from-repo [PATH] --commit REV [--wait]; "
        "unidesk pipeline ID",
    )
    s.add_argument("target", metavar="submit|ID", help="'submit', or a pipeline id to show")
    s.add_argument("file", nargs="?", help="the spec to submit: YAML or JSON, - for stdin")
    s.add_argument(
        "--from-repo",
        nargs="?",
        const=".",
        metavar="PATH",
        help=f"read {REPO_SPEC_PATH} from this git checkout (default .) at --commit",
    )
    s.add_argument("--commit", metavar="REV", help="the commit (or branch, resolved to its SHA)")
    s.add_argument(
        "--wait", action="store_true", help="show the steps live until the pipeline is final"
    )
    s.add_argument("--json", action="store_true", help="print machine-readable JSON")
    s.set_defaults(func=_guarded(_pipeline))

    s = subparsers.add_parser("pipelines", help="list pipelines, newest first (pipelines plugin)")
    s.add_argument("--state", help="only pipelines in this state")
    s.add_argument("--limit", type=int, default=50)
    s.add_argument("--json", action="store_true", help="print machine-readable JSON")
    s.set_defaults(func=_guarded(_pipelines))
