"""A first smoke test: the app starts on a fresh database and reports healthy."""

from litestar.testing import AsyncTestClient


async def test_health_ok(client: AsyncTestClient) -> None:
    r = await client.get("/health")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok"
    assert {"database", "migrations", "event_stream", "plugins", "backup"} <= set(body["checks"])
    assert set(body["checks"].values()) == {"ok"}


async def test_api_requires_auth(client: AsyncTestClient) -> None:
    r = await client.get("/api/tasks")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_admin_can_list_tasks(client: AsyncTestClient, admin_headers: dict[str, str]) -> None:
    r = await client.get("/api/tasks", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"items": [], "next_cursor": None, "total": None}
