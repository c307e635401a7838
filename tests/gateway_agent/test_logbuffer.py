"""The attempt log buffer masks secret values before chunks are numbered, across cuts too."""

from __future__ import annotations

from unidesk.gateway_agent.logbuffer import AttemptLog
from unidesk.masking import SecretMasker
from unidesk.protocol import Dispatch

VALUE = "hunter2-token-XYZ"


def test_a_value_split_across_flushes_never_leaves_the_node() -> None:
    log = AttemptLog("t", 1, SecretMasker([VALUE]))
    sent = []
    log.append("stdout", b"key=" + VALUE[:6].encode())
    sent += log.cut()
    log.append("stdout", VALUE[6:].encode() + b"\nbye\n")
    sent += log.cut()
    log.append("stderr", VALUE.encode())
    sent += log.cut(final=True)
    text = "".join(c.data for c in sent)
    assert VALUE not in text and VALUE[:6] not in text
    assert "".join(c.data for c in sent if c.stream == "stdout") == "key=***\nbye\n"
    assert "".join(c.data for c in sent if c.stream == "stderr") == "***"
    assert [c.seq for c in sent] == list(range(1, len(sent) + 1))


def test_without_secrets_output_is_sent_unchanged_at_once() -> None:
    log = AttemptLog("t", 1, SecretMasker([]))
    log.append("stdout", b"abc")
    assert [c.data for c in log.cut()] == ["abc"]


def test_dispatch_lists_every_value_to_mask() -> None:
    d = Dispatch(
        task_id="t",
        attempt_no=1,
        code_repo_url="https://h/r",
        code_commit_id="a" * 40,
        env_repo_url="https://h/r",
        env_commit_id="a" * 40,
        dockerfile_path="Dockerfile",
        command=["true"],
        secret_env={"A": "value-a"},
        code_repo_credential="bot:token-b",
        registry_auth={"reg:5000": "user:pass-c"},
    )
    values = d.secret_values()
    assert {"value-a", "bot:token-b", "token-b", "user:pass-c", "pass-c"} <= set(values)
