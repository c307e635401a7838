"""The browser's typed API client (web/src/api) checked against the server's own OpenAPI
document."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__: list[str] = []

API_DIR = Path(__file__).resolve().parents[2] / "web" / "src" / "api"
ENDPOINT_LINE = re.compile(r'^\s*(\w+):\s*\["(GET|POST|PATCH|PUT|DELETE)",\s*"([^"]+)"\],?\s*$')
# TypeScript interface in web/src/api/types.ts -> schema name in the server's OpenAPI components.
TYPE_TO_SCHEMA = {
    "User": "User",
    "ApiToken": "ApiToken",
    "NodeToken": "NodeToken",
    "Task": "Task",
    "Attempt": "Attempt",
    "TaskCreate": "TaskCreate",
    "Resources": "Resources",
    "LogLine": "LogLine",
    "LogPage": "LogPage",
    "Node": "Node",
    "NodeSample": "Sample",
    "UnideskEvent": "EventOut",
    "EventPage": "EventPage",
    "Stats": "Stats",
    "Health": "Health",
    "Artifact": "Artifact",
    "ArtifactCreate": "ArtifactCreate",
    "UploadPlan": "UploadPlan",
    "PartUrl": "PartUrl",
    "ArtifactUpload": "ArtifactUpload",
    "DownloadUrl": "DownloadUrl",
    "TaskInput": "TaskInput",
    "MaintenanceCreate": "MaintenanceCreate",
}


def client_endpoints() -> tuple[dict[str, tuple[str, str]], set[str]]:
    text = (API_DIR / "endpoints.ts").read_text(encoding="utf-8")
    found = {m[1]: (m[2], m[3]) for line in text.splitlines() if (m := ENDPOINT_LINE.match(line))}
    optional = re.search(r"OPTIONAL_ENDPOINTS[^=]*=\s*\[([^\]]*)\]", text, re.S)
    assert optional, "OPTIONAL_ENDPOINTS not found in endpoints.ts"
    return found, set(re.findall(r'"(\w+)"', optional[1]))


def ts_interfaces() -> dict[str, set[str]]:
    text = (API_DIR / "types.ts").read_text(encoding="utf-8")
    out: dict[str, set[str]] = {}
    for m in re.finditer(r"export interface (\w+)(?:<[^>]*>)?\s*\{(.*?)\n\}", text, re.S):
        body = m[2]
        fields = set(re.findall(r"^\s{2}(\w+)\??:", body, re.M))
        out[m[1]] = fields
    return out


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


async def _openapi(client: Any) -> dict[str, Any]:
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200, r.text
    return r.json()


def test_parsers_read_the_client() -> None:
    endpoints, optional = client_endpoints()
    assert len(endpoints) >= 30 and {
        "taskLogStream",
        "fileCreate",
        "fileResume",
        "nodeMaintenance",
    } <= set(endpoints)
    assert optional <= set(endpoints)
    types = ts_interfaces()
    assert {"code_commit_id", "attempts", "resources"} <= types["Task"]


async def test_every_endpoint_the_ui_calls_exists(client: Any) -> None:
    doc = await _openapi(client)
    server = {
        (method.upper(), _shape(path))
        for path, ops in doc["paths"].items()
        for method in ops
        if method.upper() in {"GET", "POST", "PATCH", "PUT", "DELETE"}
    }
    endpoints, optional = client_endpoints()
    missing = [
        f"{name}: {method} {path}"
        for name, (method, path) in endpoints.items()
        if name not in optional and (method, _shape(path)) not in server
    ]
    assert not missing, "the UI calls routes the server does not have:\n" + "\n".join(missing)


async def test_client_types_only_use_fields_the_server_declares(client: Any) -> None:
    doc = await _openapi(client)
    schemas = doc["components"]["schemas"]
    types = ts_interfaces()
    problems = []
    for ts_name, schema_name in TYPE_TO_SCHEMA.items():
        assert schema_name in schemas, f"server schema {schema_name} (for {ts_name}) is missing"
        declared = set(schemas[schema_name].get("properties", {}))
        extra = types[ts_name] - declared
        if extra:
            problems.append(f"{ts_name} reads {sorted(extra)} that {schema_name} does not declare")
    assert not problems, "\n".join(problems)


async def test_task_create_covers_the_required_fields(client: Any) -> None:
    doc = await _openapi(client)
    required = set(doc["components"]["schemas"]["TaskCreate"].get("required", []))
    assert required <= ts_interfaces()["TaskCreate"], required - ts_interfaces()["TaskCreate"]
