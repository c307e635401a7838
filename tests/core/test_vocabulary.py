"""One vocabulary: task/attempt states and event kinds are defined once and used as defined."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from unidesk.core.events.kinds import CORE_EVENT_KINDS
from unidesk.core.scheduler.service import WAKE_KINDS
from unidesk.core.tasks.states import (
    ATTEMPT_ACTIVE_STATES,
    ATTEMPT_FINAL_STATES,
    ATTEMPT_STATES,
    TASK_ACTIVE_STATES,
    TASK_FINAL_STATES,
    TASK_STATES,
)

CORE = Path(__file__).resolve().parents[2] / "unidesk" / "core"
_KIND = re.compile(
    r"^(task|node|user|api_token|node_token|artifact|backup|secrets?|quota|account)\.[a-z_]+$"
)
EVENT_HELPERS = {"task_event", "node_event", "artifact_event"}
EVENT_NAMES = {"ev", "e", "event", "last", "live"}
"""Names the core gives an ``EventOut`` it inspects."""


def _kinds_used(tree: ast.AST) -> set[str]:
    """Event kinds the code writes (``NewEvent(kind=…)``, ``*_event(id, kind, …)``) or compares
    against (``ev.kind == …``, ``ev.kind in (…)``)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name == "NewEvent":
                found |= {
                    k.value.value
                    for k in node.keywords
                    if k.arg == "kind" and isinstance(k.value, ast.Constant)
                }
            elif name in EVENT_HELPERS and len(node.args) > 1:
                arg = node.args[1]
                if isinstance(arg, ast.Constant):
                    found.add(arg.value)
        elif (
            isinstance(node, ast.Compare)
            and isinstance(node.left, ast.Attribute)
            and node.left.attr == "kind"
            and getattr(node.left.value, "id", "") in EVENT_NAMES
        ):
            for comp in node.comparators:
                for c in ast.walk(comp):
                    if isinstance(c, ast.Constant) and isinstance(c.value, str):
                        found.add(c.value)
    return found


def test_every_event_kind_the_core_writes_or_tests_is_declared() -> None:
    used: set[str] = set()
    for path in CORE.rglob("*.py"):
        used |= _kinds_used(ast.parse(path.read_text()))
    assert len(used) > 30, used
    assert sorted(used - CORE_EVENT_KINDS) == []
    assert all(_KIND.match(k) for k in CORE_EVENT_KINDS)
    assert WAKE_KINDS <= CORE_EVENT_KINDS


def test_the_checker_sees_a_typo() -> None:
    tree = ast.parse('if ev.kind == "task.asigned": pass\nNewEvent(kind="node.onlin")\n')
    assert _kinds_used(tree) - CORE_EVENT_KINDS == {"task.asigned", "node.onlin"}


def test_state_sets_are_subsets_of_the_states() -> None:
    assert set(TASK_FINAL_STATES) | set(TASK_ACTIVE_STATES) | {"pending"} == set(TASK_STATES)
    assert not set(TASK_FINAL_STATES) & set(TASK_ACTIVE_STATES)
    assert set(ATTEMPT_FINAL_STATES) | set(ATTEMPT_ACTIVE_STATES) == set(ATTEMPT_STATES)


def test_state_tuples_are_not_written_out_again() -> None:
    """Grep: no other module spells out a state set (the six copies this replaced)."""
    spelled = re.compile(r'\(\s*"succeeded",\s*"failed",\s*"cancelled"')
    offenders = [
        str(p.relative_to(CORE.parent.parent))
        for p in (CORE.parent).rglob("*.py")
        if spelled.search(p.read_text()) and p.name != "states.py"
    ]
    assert offenders == []
