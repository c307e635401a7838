"""Dialing the ingress: backoff bounds, close-code meaning, HTTP refusal before the upgrade."""

from __future__ import annotations

import http

import pytest
from websockets.asyncio.server import serve

from unidesk.gateway_agent.config import load_config
from unidesk.gateway_agent.connection import (
    EXIT_AUTH_REFUSED,
    EXIT_INCOMPATIBLE,
    EXIT_REPLACED,
    FinalRefusal,
    backoff_delay,
    dial,
    final_refusal_for,
)


def test_backoff_full_jitter_bounds():
    for failures in range(12):
        ceiling = min(60.0, 0.5 * 2**failures)
        assert backoff_delay(failures, rand=lambda: 0.0) == 0.0
        assert backoff_delay(failures, rand=lambda: 0.999999) == pytest.approx(ceiling, rel=1e-5)
        for _ in range(200):
            assert 0.0 <= backoff_delay(failures) <= ceiling


def test_backoff_is_capped_and_jittered():
    assert backoff_delay(10_000, rand=lambda: 1.0) == 60.0
    assert backoff_delay(3, cap_s=2.0, rand=lambda: 1.0) == 2.0
    assert backoff_delay(-5, rand=lambda: 1.0) == 0.5
    delays = {round(backoff_delay(8), 6) for _ in range(50)}
    assert len(delays) > 40, "full jitter spreads reconnects"


@pytest.mark.parametrize(
    "code,exit_code",
    [
        (4401, EXIT_AUTH_REFUSED),
        (4403, EXIT_AUTH_REFUSED),
        (4426, EXIT_INCOMPATIBLE),
        (4409, EXIT_REPLACED),
    ],
)
def test_final_close_codes(code, exit_code):
    refusal = final_refusal_for(code, "why")
    assert refusal is not None and refusal.exit_code == exit_code and "why" in str(refusal)


@pytest.mark.parametrize("code", [None, 1000, 1001, 1006, 1011, 4400, 1009])
def test_retryable_close_codes(code):
    assert final_refusal_for(code) is None


@pytest.mark.parametrize("status,exit_code", [(401, EXIT_AUTH_REFUSED), (403, EXIT_AUTH_REFUSED)])
async def test_http_refusal_before_upgrade_is_final(status, exit_code):
    seen: list[str | None] = []

    def refuse(connection, request):
        seen.append(request.headers.get("Authorization"))
        return connection.respond(http.HTTPStatus(status), "no\n")

    async def never(ws):  # pragma: no cover - the upgrade is refused
        raise AssertionError

    async with serve(never, "127.0.0.1", 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        config = load_config({"server_url": f"http://127.0.0.1:{port}/", "token": "udn_t"}, env={})
        with pytest.raises(FinalRefusal) as info:
            await dial(config)
    assert info.value.exit_code == exit_code
    assert "udn_t" not in str(info.value)
    assert seen == ["Bearer udn_t"]


async def test_server_error_before_upgrade_is_retryable():
    def fail(connection, request):
        return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "busy\n")

    async def never(ws):  # pragma: no cover
        raise AssertionError

    async with serve(never, "127.0.0.1", 0, process_request=fail) as server:
        port = server.sockets[0].getsockname()[1]
        config = load_config({"server_url": f"ws://127.0.0.1:{port}", "token": "t"}, env={})
        with pytest.raises(Exception) as info:
            await dial(config)
    assert not isinstance(info.value, FinalRefusal)
