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


def test_the_log_mark_moves_only_with_cut_container_output() -> None:
    """``mark`` is where the numbered chunks reach in the container's log: output still
    pending does not move it, the agent's own lines (no mark) never do."""
    buf = AttemptLog("t", 1)
    buf.append("stdout", b"one\n", 1.0, 100)
    assert buf.mark == 0  # not cut yet: an adopting agent must read it again
    buf.cut()
    assert buf.mark == 100
    buf.append("system", b"[unidesk] note\n")
    buf.append("stdout", b"two\n", 2.0, 200)
    buf.append("stderr", b"", 2.5, 250)  # consumed output with nothing to show moves it too
    assert buf.mark == 100
    buf.cut()
    assert buf.mark == 250
