"""Auth: sessions, personal tokens, node tokens, roles, disabled users, login rate limit."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import psycopg
import pytest
from litestar.testing import AsyncTestClient
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import ADMIN_PASSWORD
from unidesk import protocol
from unidesk.core.app import create_app
from unidesk.core.db.engine import libpq_url
from unidesk.core.settings import Settings

PROBLEM = "application/problem+json"
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def new_token(
    client: AsyncTestClient, headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    r = await client.post("/api/tokens", json={"name": "script", **body}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def all_text_in(database_url: str, table: str) -> str:
    with psycopg.connect(libpq_url(database_url)) as conn:
        return "\n".join(str(row) for row in conn.execute(f"SELECT * FROM {table}"))


async def test_login_sets_httponly_cookie_that_opens_me_until_logout(
    client: AsyncTestClient,
) -> None:
    r = await client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    assert r.json()["user"]["username"] == "admin" and r.json()["user"]["role"] == "admin"
    set_cookie = r.headers["set-cookie"]
    assert set_cookie.startswith("unidesk_session=")
    assert (
        "HttpOnly" in set_cookie
        and "SameSite=strict" in set_cookie.replace("samesite", "SameSite")
        and "Path=/" in set_cookie
    )
    cookie = r.cookies["unidesk_session"]
    client.cookies.clear()

    me = await client.get("/api/auth/me", cookies={"unidesk_session": cookie})
    assert me.status_code == 200 and me.json()["username"] == "admin"

    out = await client.post(
        "/api/auth/logout", cookies={"unidesk_session": cookie}, headers=SAME_ORIGIN
    )
    assert out.status_code == 204
    assert "unidesk_session=" in out.headers.get("set-cookie", "")
    client.cookies.clear()
    replay = await client.get("/api/auth/me", cookies={"unidesk_session": cookie})
    assert replay.status_code == 401, "a logged-out session must not work when replayed"
    assert replay.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize(
    "username, password", [("admin", "wrong-password"), ("nobody", ADMIN_PASSWORD)]
)
async def test_bad_login_is_401_with_the_same_message(
    client: AsyncTestClient, username: str, password: str
) -> None:
    r = await client.post("/api/auth/login", json={"username": username, "password": password})
    assert r.status_code == 401 and r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["detail"] == "wrong username or password"
    assert "set-cookie" not in r.headers


async def test_personal_token_secret_shown_once_and_stored_hashed(
    client: AsyncTestClient, admin_headers: dict[str, str], database_url: str
) -> None:
    created = await new_token(client, admin_headers, name="laptop", expires_in_days=30)
    secret = created["secret"]
    assert secret.startswith("udk_") and len(secret) > 30
    assert created["token"]["name"] == "laptop" and created["token"]["expires_at"]
    assert secret.startswith(created["token"]["prefix"])

    listing = await client.get("/api/tokens", headers=admin_headers)
    assert listing.status_code == 200
    assert secret not in listing.text and "secret" not in listing.text
    assert created["token"]["id"] in {t["id"] for t in listing.json()["items"]}
    assert (await client.get("/api/auth/me", headers=bearer(secret))).json()["username"] == "admin"

    table = all_text_in(database_url, "api_tokens")
    assert secret not in table and secret[8:] not in table, (
        "only a hash of the secret may be stored"
    )
    events = all_text_in(database_url, "events")
    assert secret not in events


async def test_revoked_token_is_401(client: AsyncTestClient, admin_headers: dict[str, str]) -> None:
    created = await new_token(client, admin_headers)
    h = bearer(created["secret"])
    assert (await client.get("/api/tasks", headers=h)).status_code == 200
    assert (
        await client.delete(f"/api/tokens/{created['token']['id']}", headers=admin_headers)
    ).status_code == 204
    r = await client.get("/api/tasks", headers=h)
    assert r.status_code == 401 and r.headers["content-type"].startswith(PROBLEM)
    listed = (await client.get("/api/tokens", headers=admin_headers)).json()["items"]
    assert next(t for t in listed if t["id"] == created["token"]["id"])["revoked_at"]


async def test_expired_token_is_401(
    client: AsyncTestClient, admin_headers: dict[str, str], database_url: str
) -> None:
    created = await new_token(client, admin_headers, expires_in_days=1)
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute(
            "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = %s",
            (created["token"]["id"],),
        )
    r = await client.get("/api/tasks", headers=bearer(created["secret"]))
    assert r.status_code == 401 and "expired" in r.json()["detail"]


@pytest.mark.parametrize(
    "header",
    ["Basic YWRtaW46cGFzcw==", "Bearer", "Bearer ", "udk_abc", "Bearer udk_not-a-real-token"],
)
async def test_malformed_or_unknown_credentials_are_401(
    client: AsyncTestClient, header: str
) -> None:
    r = await client.get("/api/tasks", headers={"Authorization": header})
    assert r.status_code == 401 and r.headers["content-type"].startswith(PROBLEM)


async def test_members_token_cannot_be_revoked_by_another_member(
    client: AsyncTestClient,
    admin_headers: dict[str, str],
    member_headers: dict[str, str],
    counts: Any,
) -> None:
    r = await client.post(
        "/api/users",
        json={"username": "otto", "password": "otto-password", "role": "member"},
        headers=admin_headers,
    )
    assert r.status_code == 201
    login = await client.post(
        "/api/auth/login", json={"username": "otto", "password": "otto-password"}
    )
    otto = {"unidesk_session": login.cookies["unidesk_session"]}
    client.cookies.clear()
    mias = (await client.get("/api/tokens", headers=member_headers)).json()["items"][0]
    before = counts()
    r = await client.delete(f"/api/tokens/{mias['id']}", cookies=otto, headers=SAME_ORIGIN)
    assert r.status_code == 404
    assert counts() == before
    assert (await client.get("/api/auth/me", headers=member_headers)).status_code == 200


ADMIN_ROUTES = [
    ("GET", "/api/users", None),
    ("POST", "/api/users", {"username": "eve2", "password": "eve-password", "role": "admin"}),
    ("PATCH", "/api/users/{admin_id}", {"role": "member"}),
    ("GET", "/api/node-tokens", None),
    ("POST", "/api/node-tokens", {"name": "rogue"}),
    ("DELETE", "/api/node-tokens/{node_token_id}", None),
    ("POST", "/api/nodes/{node_id}/drain", None),
    ("POST", "/api/nodes/{node_id}/undrain", None),
    ("POST", "/api/nodes/{node_id}/clear-caches", None),
    ("DELETE", "/api/nodes/{node_id}", None),
]


async def test_member_calling_admin_routes_is_403_and_changes_nothing(
    client: AsyncTestClient,
    admin_headers: dict[str, str],
    member_headers: dict[str, str],
    counts: Any,
) -> None:
    admin_id = (await client.get("/api/auth/me", headers=admin_headers)).json()["id"]
    nt = (
        await client.post("/api/node-tokens", json={"name": "gpu-box"}, headers=admin_headers)
    ).json()["token"]["id"]
    ids = {"admin_id": admin_id, "node_token_id": nt, "node_id": str(uuid.uuid4())}
    before = counts()
    for method, path, body in ADMIN_ROUTES:
        r = await client.request(method, path.format(**ids), json=body, headers=member_headers)
        assert r.status_code == 403, f"{method} {path}: {r.status_code} {r.text}"
        assert r.headers["content-type"].startswith(PROBLEM) and "admin" in r.json()["detail"]
    assert counts() == before
    me = (await client.get("/api/auth/me", headers=admin_headers)).json()
    assert me["role"] == "admin"
    assert (await client.get("/api/node-tokens", headers=admin_headers)).json()["items"][0][
        "revoked_at"
    ] is None


async def test_node_token_is_not_a_user_credential(
    client: AsyncTestClient, admin_headers: dict[str, str], database_url: str
) -> None:
    created = (
        await client.post("/api/node-tokens", json={"name": "gpu-box"}, headers=admin_headers)
    ).json()
    secret = created["secret"]
    assert secret.startswith("udn_")
    for path in ("/api/tasks", "/api/auth/me", "/api/nodes", "/api/events"):
        r = await client.get(path, headers=bearer(secret))
        assert r.status_code == 401, path
    listing = await client.get("/api/node-tokens", headers=admin_headers)
    assert secret not in listing.text
    assert secret not in all_text_in(database_url, "node_tokens")
    assert (
        await client.delete(f"/api/node-tokens/{created['token']['id']}", headers=admin_headers)
    ).status_code == 204
    assert (await client.get("/api/node-tokens", headers=admin_headers)).json()["items"][0][
        "revoked_at"
    ]
    assert (
        await client.delete(f"/api/node-tokens/{uuid.uuid4()}", headers=admin_headers)
    ).status_code == 404


def test_user_token_never_opens_the_agent_ingress(live_server: Any) -> None:
    import asyncio

    token = live_server.token()

    async def attempt() -> int | None:
        url = live_server.url.replace("http://", "ws://") + "/api/agent/ws"
        async with ws_connect(url, additional_headers=bearer(token), open_timeout=10) as ws:
            try:
                await asyncio.wait_for(ws.recv(), 10)
            except ConnectionClosed as exc:
                return exc.rcvd.code if exc.rcvd else None
        return None

    assert asyncio.run(attempt()) == protocol.CLOSE_UNAUTHENTICATED


async def test_disabled_user_tokens_and_password_stop_working(
    client: AsyncTestClient, admin_headers: dict[str, str], member_headers: dict[str, str]
) -> None:
    me = (await client.get("/api/auth/me", headers=member_headers)).json()
    extra = await new_token(client, member_headers)
    r = await client.patch(f"/api/users/{me['id']}", json={"disabled": True}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["disabled"] is True
    for h in (member_headers, bearer(extra["secret"])):
        assert (await client.get("/api/tasks", headers=h)).status_code == 401
    login = await client.post(
        "/api/auth/login", json={"username": "mia", "password": "member-password"}
    )
    assert login.status_code == 401
    # Re-enabling lets them log in again, but the old tokens stay revoked.
    await client.patch(f"/api/users/{me['id']}", json={"disabled": False}, headers=admin_headers)
    assert (await client.get("/api/tasks", headers=member_headers)).status_code == 401
    assert (
        await client.post(
            "/api/auth/login", json={"username": "mia", "password": "member-password"}
        )
    ).status_code == 200
    client.cookies.clear()


async def test_role_change_takes_effect_on_existing_tokens(
    client: AsyncTestClient, admin_headers: dict[str, str], member_headers: dict[str, str]
) -> None:
    me = (await client.get("/api/auth/me", headers=member_headers)).json()
    assert (await client.get("/api/users", headers=member_headers)).status_code == 403
    await client.patch(f"/api/users/{me['id']}", json={"role": "admin"}, headers=admin_headers)
    assert (await client.get("/api/users", headers=member_headers)).status_code == 200


@pytest.fixture
async def limited_client(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    app = create_app(
        msgspec.structs.replace(settings, login_max_failures=3, login_window_s=60), components=[]
    )
    async with AsyncTestClient(app=app) as c:
        yield c


async def test_login_rate_limit_429_with_retry_after(limited_client: AsyncTestClient) -> None:
    c = limited_client
    bad = {"username": "admin", "password": "wrong-password"}
    assert (await c.post("/api/auth/login", json=bad)).status_code == 401
    # A success forgives earlier failures.
    assert (
        await c.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    ).status_code == 200
    c.cookies.clear()
    for _ in range(3):
        assert (await c.post("/api/auth/login", json=bad)).status_code == 401
    r = await c.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 429, "even the right password is refused while limited"
    assert r.headers["content-type"].startswith(PROBLEM)
    retry_after = int(r.headers["retry-after"])
    assert 1 <= retry_after <= 61
    assert "set-cookie" not in r.headers


async def test_cookie_authenticated_unsafe_requests_need_a_same_origin(
    client: AsyncTestClient, counts: Any
) -> None:
    r = await client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    cookie = {"unidesk_session": r.cookies["unidesk_session"]}
    client.cookies.clear()
    before = counts()
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "https://sub.testserver.local"},
    ):
        r = await client.post("/api/tokens", json={"name": "x"}, cookies=cookie, headers=headers)
        assert r.status_code == 403, (headers, r.text)
        assert r.headers["content-type"].startswith(PROBLEM)
        assert "cross-site request refused" in r.json()["detail"]
    assert counts() == before
    # reads with the cookie are not affected
    assert (await client.get("/api/tokens", cookies=cookie)).status_code == 200
    host = (
        client.base_url.netloc.decode()
        if isinstance(client.base_url.netloc, bytes)
        else client.base_url.netloc
    )
    # the page's own requests pass; so does a non-browser client (no Origin, no Sec-Fetch-Site)
    for headers in (SAME_ORIGIN, {"Origin": f"http://{host}"}, {}):
        r = await client.post("/api/tokens", json={"name": "ok"}, cookies=cookie, headers=headers)
        assert r.status_code == 201, (headers, r.text)
        client.cookies.clear()
    # a bearer token is exempt whatever the Origin
    secret = r.json()["secret"]
    r = await client.post(
        "/api/tokens",
        json={"name": "b"},
        headers={**bearer(secret), "Origin": "https://evil.example"},
    )
    assert r.status_code == 201, r.text
