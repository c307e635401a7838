"""A stand-in agent process for restart tests: runs one dispatch with DockerRunner and prints
``RUNNING`` once the container started, and ``MARK <log position>`` after each piece of the
container's output, so a test can ``kill -9`` it mid-run (and adopt after that position).

    python -m tests.gateway_agent.runner_process <ExecConfig JSON> <node name> <Dispatch JSON>
"""

from __future__ import annotations

import asyncio
import sys

import msgspec

from unidesk.gateway_agent.docker_runner import DockerRunner
from unidesk.gateway_agent.exec_config import ExecConfig
from unidesk.protocol import Dispatch


class PrintingReporter:
    async def stage(self, stage: str) -> None:
        print("STAGE", stage, flush=True)

    async def running(self) -> None:
        print("RUNNING", flush=True)

    def log(
        self, stream: str, data: bytes, ts: float | None = None, mark: int | None = None
    ) -> None:
        if mark:
            print("MARK", mark, flush=True)


async def main() -> None:
    config = msgspec.json.decode(sys.argv[1], type=ExecConfig)
    dispatch = msgspec.json.decode(sys.argv[3], type=Dispatch)
    runner = DockerRunner(config, node_name=sys.argv[2])
    outcome = await runner.run(dispatch, PrintingReporter())
    print("OUTCOME", outcome.reason, flush=True)
    await runner.close()


if __name__ == "__main__":
    asyncio.run(main())
