"""The browser's typed API client (web/src/api) checked against the server's own OpenAPI
document: the routes it calls exist, and its types are generated from the same document that
a running server serves (scripts/gen-api-types.sh; scripts/test.sh runs its --check, which
compares the committed web/src/api/schema.d.ts with a fresh generation)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from unidesk.core.openapi_doc import openapi_document

__all__: list[str] = []

ROOT = Path(__file__).resolve().parents[2]
API_DIR = ROOT / "web" / "src" / "api"
ENDPOINT_LINE = re.compile(r'^\s*(\w+):\s*\["(GET|POST|PATCH|PUT|DELETE)",\s*"([^"]+)"\],?\s*$')


def client_endpoints() -> tuple[dict[str, tuple[str, str]], set[str]]:
    text = (API_DIR / "endpoints.ts").read_text(encoding="utf-8")
    found = {m[1]: (m[2], m[3]) for line in text.splitlines() if (m := ENDPOINT_LINE.match(line))}
    optional = re.search(r"OPTIONAL_ENDPOINTS[^=]*=\s*\[([^\]]*)\]", text, re.S)
    assert optional, "OPTIONAL_ENDPOINTS not found in endpoints.ts"
    return found, set(re.findall(r'"(\w+)"', optional[1]))


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


async def test_the_offline_document_is_the_one_the_server_serves(client: Any) -> None:
    """The types are generated from ``openapi_document()`` (no database, no server); a running
    server with the built-in plugins must serve exactly that document."""
    assert openapi_document() == await _openapi(client)


def test_the_ui_types_come_from_the_generated_schema() -> None:
    """types.ts names the generated shapes instead of restating them (that schema.d.ts is
    current is checked by ``scripts/gen-api-types.sh --check``, run by scripts/test.sh)."""
    types = (API_DIR / "types.ts").read_text(encoding="utf-8")
    assert 'from "./schema"' in types
    for name in ("Task", "Attempt", "TaskCreate", "Artifact", "Secret", "Health", "Me", "Node"):
        assert re.search(rf"^export type {name}\b", types, re.M), name
        assert not re.search(rf"^export interface {name}\b", types, re.M), name
