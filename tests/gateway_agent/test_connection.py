"""Dialing the ingress: backoff bounds, close-code meaning, HTTP refusal before the upgrade, the
restart window and a busy server's Retry-After."""

from __future__ import annotations

import http

import pytest
from websockets.asyncio.server import serve

from unidesk.gateway_agent.config import load_config
from unidesk.gateway_agent.connection import (
    EXIT_AUTH_REFUSED,
    EXIT_INCOMPATIBLE,
    EXIT_REPLACED,
    RETRY_AFTER_MAX_S,
    RETRYABLE,
    FinalRefusal,
    Redial,
    backoff_delay,
    dial,
    final_refusal_for,
    retry_after_of,
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


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_redial_backs_off_to_the_cap_and_resets_on_connect():
    redial = Redial(cap_s=60.0, rand=lambda: 1.0, clock=_Clock())
    delays = [redial.next_delay() for _ in range(10)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0] and delays[-1] == 60.0
    redial.connected()
    assert redial.next_delay() == 0.5


@pytest.mark.parametrize("code", [1001, 1012])
def test_redial_after_a_restart_close_stays_short_for_the_window(code):
    clock = _Clock()
    redial = Redial(
        cap_s=60.0, restart_cap_s=5.0, restart_window_s=120.0, rand=lambda: 1.0, clock=clock
    )
    redial.connected()
    redial.closed(code)
    assert redial.restarting
    delays = [redial.next_delay() for _ in range(20)]  # the port stays closed: many dials
    assert delays[:3] == [1.0, 2.0, 4.0] and max(delays) == 5.0
    clock.now += 121.0  # past the window: the usual backoff, from where it got to
    assert not redial.restarting
    assert redial.next_delay() == 60.0


@pytest.mark.parametrize("code", [None, 1006, 1011, 1013, 4408])
def test_redial_after_other_closes_uses_the_usual_backoff(code):
    redial = Redial(cap_s=60.0, rand=lambda: 1.0, clock=_Clock())
    redial.closed(code)
    assert not redial.restarting
    assert [redial.next_delay() for _ in range(9)][-1] == 60.0


async def _refused_with(status: int, retry_after: str | None) -> Exception:
    def refuse(connection, request):
        response = connection.respond(http.HTTPStatus(status), "busy\n")
        if retry_after is not None:
            response.headers["Retry-After"] = retry_after
        return response

    async def never(ws):  # pragma: no cover - the upgrade is refused
        raise AssertionError

    async with serve(never, "127.0.0.1", 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        config = load_config({"server_url": f"ws://127.0.0.1:{port}", "token": "t"}, env={})
        with pytest.raises(Exception) as info:
            await dial(config)
    assert not isinstance(info.value, FinalRefusal)
    assert isinstance(info.value, RETRYABLE)
    return info.value


async def test_a_503_retry_after_sets_the_next_delay():
    exc = await _refused_with(503, "7")
    assert retry_after_of(exc) == 7.0
    redial = Redial(cap_s=60.0, rand=lambda: 0.5, clock=_Clock())
    redial.refused(exc)
    assert redial.next_delay() == 7.5  # the hint plus up to 1 s of jitter
    assert redial.next_delay() == 0.25  # then the usual backoff again


@pytest.mark.parametrize(
    "status,header,expected",
    [(503, "100000", RETRY_AFTER_MAX_S), (503, "soon", None), (503, None, None), (502, "5", None)],
)
async def test_retry_after_hints_are_bounded_and_only_from_a_503(status, header, expected):
    assert retry_after_of(await _refused_with(status, header)) == expected
