"""``unidesk-agent`` as a process: auth refusal exits non-zero at once, SIGTERM stops gracefully."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.gateway_agent.fake_ingress import FakeIngress
from tests.gateway_agent.test_agent import dispatch, finals_of
from unidesk.protocol import AttemptState


async def start_agent(ingress: FakeIngress, tmp_path: Path) -> asyncio.subprocess.Process:
    token = tmp_path / "token"
    token.write_text("udn_cli_secret\n")
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "unidesk.gateway_agent.cli",
        "run",
        "--server",
        ingress.url,
        "--token-file",
        str(token),
        "--runner",
        "subprocess-test",
        "--state-dir",
        str(tmp_path / "st"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--shutdown-grace",
        "5",
        env={**os.environ, "UNIDESK_AGENT_BACKOFF_CAP_S": "0.2"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_auth_refusal_exits_nonzero_without_retrying(tmp_path: Path):
    async with FakeIngress(refuse_with=4401) as ingress:
        proc = await start_agent(ingress, tmp_path)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 77
        assert len(ingress.sessions) == 1
        text = err.decode()
        assert "refused the node token" in text and "not retrying" in text
        assert "udn_cli_secret" not in text


async def test_sigterm_finishes_running_work_reports_and_closes(tmp_path: Path):
    async with FakeIngress() as ingress:
        proc = await start_agent(ingress, tmp_path)
        try:
            await ingress.wait_for(lambda: ingress.sessions and ingress.current.hello, 30)
            await ingress.send(dispatch("t-term", "sleep 1; echo finished"))
            await ingress.wait_for(
                lambda: any(m.phase == "running" for m in ingress.current.of(AttemptState))
            )
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, err.decode()
        final = finals_of(ingress, "t-term")
        assert [(f.reason, f.exit_code) for f in final] == [("succeeded", 0)]
        await ingress.wait_for(lambda: ingress.current.close_code is not None)
        assert ingress.current.close_code == 1000
        assert len(ingress.sessions) == 1
