"""Secrets through an in-process agent (fake ingress, subprocess runner): the value reaches the
command's environment, never a log chunk or a report; bad secret dispatches fail only themselves."""

from __future__ import annotations

import msgspec
import pytest

from tests.gateway_agent.test_agent import agents, dispatch, finals_of, ingress, stored_log  # noqa: F401
from unidesk.protocol import AttemptState, LogChunk

VALUE = "agent-side-s3cret-77"


async def test_secret_env_reaches_the_command_and_is_masked(ingress, agents):  # noqa: F811
    agents(ingress)
    await ingress.wait_for(lambda: ingress.sessions and ingress.current.hello)
    d = msgspec.structs.replace(
        dispatch("t-sec", 'echo "v=$TOKEN"; printf %s "$TOKEN" | base64; echo "$TOKEN" >&2'),
        secret_env={"TOKEN": VALUE},
    )
    await ingress.send(d)
    await ingress.wait_for(lambda: finals_of(ingress, "t-sec"))
    assert finals_of(ingress, "t-sec")[0].reason == "succeeded"
    text = stored_log(ingress, "t-sec")
    assert "v=***" in text and VALUE not in text and "YWdlbnQtc2lkZS1zM2NyZXQtNzc" not in text
    # Nothing the agent sent carries the value, in any frame.
    sent = [m for m in ingress.all_received() if isinstance(m, (LogChunk, AttemptState))]
    assert VALUE not in repr(sent)


async def test_a_deleted_secret_fails_the_attempt_naming_it(ingress, agents):  # noqa: F811
    agents(ingress)
    await ingress.wait_for(lambda: ingress.sessions and ingress.current.hello)
    await ingress.send(
        msgspec.structs.replace(dispatch("t-gone", "echo never"), missing_secrets=["wandb"])
    )
    await ingress.wait_for(lambda: finals_of(ingress, "t-gone"))
    final = finals_of(ingress, "t-gone")[0]
    assert final.reason == "infra_error" and "wandb" in (final.message or "")
    assert "never" not in stored_log(ingress, "t-gone")


async def test_an_attempt_the_agent_cannot_accept_fails_alone(
    ingress,  # noqa: F811
    agents,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
):
    agents(ingress)
    await ingress.wait_for(lambda: ingress.sessions and ingress.current.hello)
    session = ingress.current

    def broken(values: object) -> None:
        raise RecursionError(f"cannot handle {VALUE}")

    monkeypatch.setattr("unidesk.gateway_agent.attempt.SecretMasker", broken)
    await ingress.send(
        msgspec.structs.replace(dispatch("t-bad", "echo x"), secret_env={"T": VALUE})
    )
    await ingress.wait_for(lambda: finals_of(ingress, "t-bad"))
    final = finals_of(ingress, "t-bad")[0]
    assert final.reason == "infra_error" and "RecursionError" in (final.message or "")
    assert VALUE not in (final.message or "")
    monkeypatch.undo()
    await ingress.send(dispatch("t-next", "echo next"))
    await ingress.wait_for(lambda: finals_of(ingress, "t-next"))
    assert ingress.current is session  # the same connection: the agent did not drop it
    assert stored_log(ingress, "t-next") == "next\n"
