"""Reading a container's output: the Engine's log with timestamps (what the agent does, so stdout
and stderr come out in the order they were written) against an attach (the baseline, no times).

Runs a busybox container that writes ``--mb`` MB of 37-byte lines, reads it both ways and prints
the seconds and the ratio; ``--rounds`` repeats it. Needs the Docker engine and the test image.

    .venv/bin/python bench/bench_log_order.py --mb 5 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

import aiodocker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.docker_images import ensure_busybox_image
from unidesk.gateway_agent.docker_logs import follow_logs
from unidesk.gateway_agent.logcap import CappedReporter


class _Count:
    def __init__(self) -> None:
        self.bytes = 0

    async def stage(self, stage: str) -> None: ...

    async def running(self) -> None: ...

    def log(self, stream: str, data: bytes, ts: float | None = None) -> None:
        self.bytes += len(data)


async def _container(
    docker: aiodocker.Docker, image: str, size: int
) -> aiodocker.containers.DockerContainer:
    return await docker.containers.create(
        {
            "Image": image,
            "Cmd": ["sh", "-c", f"yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c {size}"],
            "AttachStdout": True,
            "AttachStderr": True,
            "HostConfig": {
                "NetworkMode": "none",
                "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
            },
        },
        name=f"bench-logs-{uuid.uuid4().hex[:8]}",
    )


async def _attach(docker: aiodocker.Docker, image: str, size: int) -> tuple[float, int]:
    c = await _container(docker, image, size)
    try:
        got = 0
        stream = c.attach(stdout=True, stderr=True, logs=False)
        async with stream:
            t0 = time.monotonic()
            await c.start()
            while (m := await stream.read_out()) is not None:
                got += len(m.data)
        return time.monotonic() - t0, got
    finally:
        await c.delete(force=True)


async def _logs(docker: aiodocker.Docker, image: str, size: int) -> tuple[float, int]:
    c = await _container(docker, image, size)
    try:
        count = _Count()
        t0 = time.monotonic()
        await c.start()
        await follow_logs(docker, c.id, CappedReporter(count, 1 << 40), bytearray())
        return time.monotonic() - t0, count.bytes
    finally:
        await c.delete(force=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    image = ensure_busybox_image()
    size = int(args.mb * 1_000_000)
    async with aiodocker.Docker() as docker:
        for n in range(1, min(args.rounds, 10) + 1):
            base_s, base_b = await _attach(docker, image, size)
            logs_s, logs_b = await _logs(docker, image, size)
            print(
                f"round {n}: attach {base_b} B in {base_s:.2f} s; log with timestamps "
                f"{logs_b} B in {logs_s:.2f} s; ratio {logs_s / base_s:.1f}x"
            )


if __name__ == "__main__":
    asyncio.run(main())
