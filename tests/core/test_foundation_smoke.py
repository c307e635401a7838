"""A first smoke test: the app starts on a fresh database and reports healthy."""

from litestar.testing import AsyncTestClient


async def test_health_ok(client: AsyncTestClient) -> None:
    r = await client.get("/health")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok"
    assert {"database", "migrations", "event_stream", "plugins", "backup"} <= set(body["checks"])
    # No backup and no schedule on a fresh server: a warning, not a failure (test_health.py).
    assert {v for k, v in body["checks"].items() if k != "backup"} == {"ok"}
    assert body["checks"]["backup"].startswith("warning: ")


async def test_api_requires_auth(client: AsyncTestClient) -> None:
    r = await client.get("/api/tasks")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_admin_can_list_tasks(client: AsyncTestClient, admin_headers: dict[str, str]) -> None:
    r = await client.get("/api/tasks", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"items": [], "next_cursor": None, "prev_cursor": None, "total": None}
