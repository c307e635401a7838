"""Pipeline specs: decode (JSON or YAML), check every step (listing every error), expand
matrices and build each point's task body.

Nothing here touches the database: ``check`` runs before anything is written, and the engine
builds the same task bodies (``task_body``) when a step becomes ready.
"""

from __future__ import annotations

import fnmatch
import itertools
import math
import posixpath
import re
from collections.abc import Callable
from typing import Any

import msgspec
import yaml

from unidesk.core.plugin_api import TaskCreate
from unidesk.errors import BadRequest, UnideskError
from unidesk.plugins.pipelines.schemas import STEP_NAME_PATTERN, WHEN, PipelineCreate

__all__ = [
    "YAML_TYPES",
    "check",
    "decode",
    "from_ref",
    "input_mount",
    "matrix_points",
    "output_matches",
    "task_body",
]

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
_STEP_NAME = re.compile(STEP_NAME_PATTERN)
_MATRIX_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_PLACEHOLDER = re.compile(r"\{\{\s*matrix\.([^\s}]*)\s*\}\}")
_GLOB = re.compile(r"[*?\[]")


def decode(raw: bytes, content_type: str) -> PipelineCreate:
    """The body as a PipelineCreate: YAML for a YAML media type, JSON otherwise (400 if bad)."""
    media = content_type.split(";", 1)[0].strip().lower()
    try:
        if media in YAML_TYPES:
            text = raw.decode("utf-8")
            # aliases let a small document expand exponentially ("billion laughs"): refused
            if any(
                isinstance(e, yaml.AliasEvent) for e in yaml.parse(text, Loader=yaml.SafeLoader)
            ):
                raise BadRequest("body: YAML aliases (*name) are not accepted", field="body")
            obj = yaml.safe_load(text)
            bad = _non_finite(obj, "body")
            if bad:
                raise BadRequest(f"{bad}: .nan and .inf are not numbers JSON can hold", field=bad)
            return msgspec.convert(obj, PipelineCreate)
        return msgspec.json.decode(raw, type=PipelineCreate)
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(f"body: not a YAML document ({str(exc)[:300]})", field="body") from None
    except msgspec.ValidationError as exc:
        raise BadRequest(f"body: {exc}", errors=[{"path": "body", "detail": str(exc)}]) from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"body: not a JSON document ({exc})", field="body") from None


def _non_finite(node: Any, path: str, depth: int = 0) -> str | None:
    """The path of a NaN or infinity in a decoded YAML document (JSON cannot hold them)."""
    if isinstance(node, float) and not math.isfinite(node):
        return path
    if depth > 64:
        return None
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for k, v in items:
        found = _non_finite(
            v, f"{path}.{k}" if isinstance(node, dict) else f"{path}[{k}]", depth + 1
        )
        if found:
            return found
    return None


def matrix_points(matrix: dict[str, list[Any]] | None) -> list[dict[str, Any]]:
    """Every combination of the matrix, in order (one empty point without a matrix)."""
    if not matrix:
        return [{}]
    keys = list(matrix)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*matrix.values())]


def _label(value: Any) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def _substitute(text: str, params: dict[str, Any]) -> str:
    def one(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in params:
            raise BadRequest(
                f"{{{{ matrix.{key[:64]} }}}} names no key of the step's matrix", field="matrix"
            )
        return _label(params[key])

    return _PLACEHOLDER.sub(one, text)


def from_ref(item: Any) -> tuple[str, str] | None:
    """``(step, path)`` of a ``{"from": "<step>/<path>"}`` input; None for a plain input."""
    if isinstance(item, dict) and "from" in item:
        ref = item["from"]
        if set(item) != {"from"} or not isinstance(ref, str) or "/" not in ref or len(ref) > 1100:
            raise BadRequest(
                'inputs: a "from" input is {"from": "<step>/<output path>"} (no other keys)',
                field="inputs",
            )
        step, path = ref.split("/", 1)
        if (
            not path
            or path.startswith("/")
            or "\x00" in path
            or any(p in ("", ".", "..") for p in path.split("/"))
        ):
            raise BadRequest(
                f"inputs: {ref[:200]!r}: the output path must be relative, without '..'",
                field="inputs",
            )
        return step, path
    return None


def input_mount(from_step: str, point: int, rel: str) -> str:
    """Where a file from another step appears: ``/inputs/<step>/<point>/<output path>``."""
    return posixpath.join("/inputs", from_step, str(point), rel)


def output_matches(pattern: str, rel: str) -> bool:
    """Whether output path ``rel`` (relative to /workspace/outputs) is what ``pattern`` names:
    the same path, a file under that directory, or a glob match."""
    pattern = pattern.rstrip("/")
    return rel == pattern or rel.startswith(pattern + "/") or fnmatch.fnmatchcase(rel, pattern)


def task_body(
    spec: dict[str, Any],
    step: dict[str, Any],
    params: dict[str, Any],
    from_inputs: list[dict[str, Any]],
) -> dict[str, Any]:
    """One point's TaskCreate body (unvalidated): the defaults, then the step's task (``env`` is
    merged key by key), ``from`` inputs replaced by ``from_inputs``, placeholders filled; a
    ``research`` extension without ``params`` gets the matrix point as its params."""
    defaults = spec.get("defaults") or {}
    body: dict[str, Any] = {**defaults, **step["task"]}
    if isinstance(defaults.get("env"), dict) and isinstance(step["task"].get("env"), dict):
        body["env"] = {**defaults["env"], **step["task"]["env"]}
    inputs = body.get("inputs")
    if isinstance(inputs, list):
        body["inputs"] = [i for i in inputs if from_ref(i) is None] + from_inputs
    elif from_inputs:
        body["inputs"] = from_inputs
    command = body.get("command")
    if isinstance(command, str):
        body["command"] = _substitute(command, params)
    elif isinstance(command, list):
        body["command"] = [_substitute(a, params) if isinstance(a, str) else a for a in command]
    if isinstance(body.get("env"), dict):
        body["env"] = {
            k: _substitute(v, params) if isinstance(v, str) else v for k, v in body["env"].items()
        }
        if params:
            body["env"]["UNIDESK_MATRIX"] = msgspec.json.encode(params).decode()
    elif params:
        body["env"] = {"UNIDESK_MATRIX": msgspec.json.encode(params).decode()}
    research = (body.get("extensions") or {}).get("research")
    if params and isinstance(research, dict) and "params" not in research:
        # a matrix step linked to an experiment: each point's run carries the point as its params
        body["extensions"] = {**body["extensions"], "research": {**research, "params": params}}
    name = body.get("name")
    label = " ".join(f"{k}={_label(v)}" for k, v in params.items())
    if isinstance(name, str) and name:
        body["name"] = _substitute(name, params)[:200]
    else:
        body["name"] = f"{spec.get('name', '')}/{step['name']}{f' {label}' if label else ''}"[:200]
    return body


def _cycle(deps: dict[str, list[str]]) -> list[str] | None:
    """One cycle of the dependency graph (names in order, first repeated), or None."""
    color: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        color[n] = 1
        stack.append(n)
        for d in deps.get(n, []):
            if d not in deps:
                continue
            if color.get(d) == 1:
                return [*stack[stack.index(d) :], d]
            if d not in color:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        color[n] = 2
        return None

    for n in deps:
        if n not in color:
            found = visit(n)
            if found:
                return found
    return None


def _ancestors(deps: dict[str, list[str]], name: str) -> set[str]:
    seen: set[str] = set()
    todo = list(deps.get(name, []))
    while todo:
        d = todo.pop()
        if d in seen or d not in deps:
            continue
        seen.add(d)
        todo.extend(deps[d])
    return seen


def _task_path(prefix: str, exc: msgspec.ValidationError) -> tuple[str, str]:
    text = str(exc)
    m = re.search(r" - at `\$(.*)`$", text)
    if m:
        path = re.sub(r"\.?\[", "[", m.group(1).replace("$", ""))
        return f"{prefix}{path}", text[: m.start()]
    return prefix, text


def check(
    data: PipelineCreate,
    validate_task: Callable[[TaskCreate], Any],
    *,
    max_points: int,
    max_tasks: int,
) -> None:
    """Refuse (400, every problem in ``errors``) a pipeline that cannot run as given."""
    errors: list[dict[str, str]] = []

    def err(path: str, detail: str) -> None:
        item = {"path": path, "detail": detail}
        if item not in errors and len(errors) < 200:
            errors.append(item)

    spec = msgspec.to_builtins(data)
    names = [s.name for s in data.steps]
    deps: dict[str, list[str]] = {}
    for st in data.steps:
        deps.setdefault(st.name, list(st.depends_on))
    seen: set[str] = set()
    for i, step in enumerate(data.steps):
        if not _STEP_NAME.match(step.name):
            err(f"steps[{i}].name", f"{step.name[:80]!r} must match {STEP_NAME_PATTERN}")
        if step.name in seen:
            err(f"steps[{i}].name", f"duplicate step name {step.name!r}")
        seen.add(step.name)
        for j, d in enumerate(step.depends_on):
            if d == step.name:
                err(f"steps[{i}].depends_on[{j}]", "a step cannot depend on itself")
            elif d not in names:
                err(f"steps[{i}].depends_on[{j}]", f"unknown step {d[:80]!r}")
        if len(set(step.depends_on)) != len(step.depends_on):
            err(f"steps[{i}].depends_on", "a step is named twice")
        if step.when not in WHEN:
            err(f"steps[{i}].when", f"{step.when[:64]!r} is not one of {', '.join(WHEN)}")
        elif step.when != "on_success" and not step.depends_on:
            err(f"steps[{i}].when", f"{step.when} needs depends_on (it reacts to other steps)")
    cycle = _cycle(deps)
    if cycle:
        err("steps", f"dependency cycle: {' -> '.join(cycle)}")
    outputs = {
        s.name: [o for o in s.task.get("outputs") or [] if isinstance(o, str)] for s in data.steps
    }
    total = 0
    for i, step in enumerate(data.steps):
        prefix = f"steps[{i}]"
        count = 1
        if step.matrix is not None:
            if not step.matrix:
                err(f"{prefix}.matrix", "give at least one key (or leave the matrix out)")
            for k, values in step.matrix.items():
                if not _MATRIX_KEY.match(k):
                    err(f"{prefix}.matrix", f"key {k[:64]!r} must match {_MATRIX_KEY.pattern}")
                if not values:
                    err(f"{prefix}.matrix.{k[:64]}", "give at least one value")
                for v in values:
                    if not isinstance(v, (str, int, float, bool)) or (
                        isinstance(v, float) and not math.isfinite(v)
                    ):
                        err(
                            f"{prefix}.matrix.{k[:64]}",
                            "values are strings, finite numbers or booleans",
                        )
                        break
            count = math.prod(len(v) for v in step.matrix.values())
            if count > max_points:
                err(
                    f"{prefix}.matrix",
                    f"{count} points, over the cap of {max_points} per step "
                    "(setting pipelines_max_points_per_step)",
                )
        total += count
        # the step's own inputs: "from" references to an upstream step's outputs
        inputs = step.task.get("inputs")
        if isinstance(inputs, list):
            for j, item in enumerate(inputs):
                try:
                    ref = from_ref(item)
                except BadRequest as exc:
                    err(f"{prefix}.task.inputs[{j}]", exc.detail)
                    continue
                if ref is None:
                    continue
                src, path = ref
                if src not in names:
                    err(f"{prefix}.task.inputs[{j}].from", f"unknown step {src[:80]!r}")
                elif src not in _ancestors(deps, step.name):
                    err(
                        f"{prefix}.task.inputs[{j}].from",
                        f"step {src!r} is not among this step's dependencies (depends_on)",
                    )
                elif not _GLOB.search(path) and not any(
                    output_matches(o, path) for o in outputs.get(src, [])
                ):
                    err(
                        f"{prefix}.task.inputs[{j}].from",
                        f"step {src!r} declares no output {path[:200]!r} (its outputs: "
                        f"{', '.join(outputs.get(src, [])) or 'none'})",
                    )
        if count > max_points or any(not v for v in (step.matrix or {}).values()):
            continue
        step_dict = spec["steps"][i]
        for params in matrix_points(step.matrix)[:max_points]:
            try:
                body = task_body(spec, step_dict, params, [])
                validate_task(msgspec.convert(body, TaskCreate))
            except msgspec.ValidationError as exc:
                err(*_task_path(f"{prefix}.task", exc))
            except UnideskError as exc:
                if exc.status >= 500:
                    raise
                field = exc.context.get("field")
                err(f"{prefix}.task{f'.{field}' if field else ''}", exc.detail)
    if total > max_tasks:
        err("steps", f"{total} tasks in all, over the cap of {max_tasks} (pipelines_max_tasks)")
    if errors:
        first = errors[0]
        raise BadRequest(
            f"{len(errors)} problem{'s' if len(errors) > 1 else ''} in the pipeline (first: "
            f"{first['path']}: {first['detail']}); nothing was created",
            errors=errors,
        )
