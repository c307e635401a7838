"""Execution on a node: cold vs warm task start, and incremental fetch vs a fresh clone.

    .venv/bin/python bench/bench_exec.py [--warm-runs 5] [--commits 3000]

Needs the Docker engine (scripts/setup.sh) and git. Everything runs on loopback/file://
repositories made here; nothing is left behind (temp dirs, containers, env images removed).

1. Start latency, from ``run(dispatch)`` to the container running, by stage:
   cold = new env commit (image build) + new code repo (first fetch);
   warm = same env (tag exists: no build) + a new code commit (one-commit fetch).
   Baseline: creating and starting the same hardened container directly with aiodocker.
2. Incremental fetch: a repository with ``--commits`` commits (made with git fast-import);
   one new commit fetched into a warm cache vs a fresh clone of the same commit (time and the
   bytes the cache grew by).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiodocker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from tests.docker_images import ensure_busybox_image
from tests.gateway_agent.gitrepos import GitRepo
from unidesk.gateway_agent.docker_runner import DockerRunner
from unidesk.gateway_agent.envbuild import env_tag
from unidesk.gateway_agent.exec_config import ExecConfig
from unidesk.gateway_agent.gitcache import GitCache
from unidesk.protocol import Dispatch

NODE = "bench-exec"


class TimingReporter:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.marks: dict[str, float] = {}
        self.running_at: float | None = None

    async def stage(self, stage: str) -> None:
        self.marks[stage] = time.monotonic() - self.t0

    async def running(self) -> None:
        self.running_at = time.monotonic() - self.t0

    def log(self, stream: str, data: bytes) -> None:
        if stream == "system" and b"env image" in data and "env_ready" not in self.marks:
            self.marks["env_ready"] = time.monotonic() - self.t0


async def baseline_start(docker: aiodocker.Docker, image: str, workdir: Path) -> float:
    """create + start of the same hardened container straight through aiodocker."""
    body = {
        "Image": image,
        "Cmd": ["true"],
        "WorkingDir": "/workspace",
        "Labels": {"unidesk.node": NODE},
        "HostConfig": {
            "Binds": [f"{workdir}:/workspace:rw"],
            "NetworkMode": "none",
            "PidsLimit": 4096,
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges:true"],
            "Init": True,
            "Memory": 512 * 1024 * 1024,
        },
    }
    t0 = time.monotonic()
    container = await docker.containers.create(body)
    await container.start()
    took = time.monotonic() - t0
    await container.wait()
    await container.delete(force=True)
    return took


def fast_import_repo(path: Path, commits: int) -> GitRepo:
    repo = GitRepo(path)
    lines = []
    mark = 0
    for i in range(commits):
        files = []
        for f in range(3):
            name = f"src/mod{(i * 3 + f) % 200:03d}.py"
            body = "".join(
                f"def f_{i}_{f}_{k}(x):\n    return x * {k} + {i}\n" for k in range(20)
            ).encode()
            mark += 1
            lines.append(b"blob\nmark :%d\ndata %d\n%s\n" % (mark, len(body), body))
            files.append((name, mark))
        msg = f"commit {i}\n".encode()
        lines.append(
            b"commit refs/heads/main\ncommitter B <b@example.invalid> %d +0000\ndata %d\n%s"
            % (1700000000 + i, len(msg), msg)
        )
        for name, m in files:
            lines.append(b"M 100644 :%d %s\n" % (m, name.encode()))
        lines.append(b"\n")
    subprocess.run(
        ["git", "-C", str(path), "fast-import", "--quiet"], input=b"".join(lines), check=True
    )
    repo.git("reset", "--quiet", "--hard", "main")
    return repo


def objects_bytes(bare: Path) -> int:
    return sum(p.stat().st_size for p in (bare / "objects").rglob("*") if p.is_file())


async def bench_start(tmp: Path, warm_runs: int) -> None:
    image = ensure_busybox_image()
    code, env = GitRepo(tmp / "code"), GitRepo(tmp / "env")
    code.commit({"main.sh": "echo hi\n"})
    env_sha = env.commit({"Dockerfile": f"FROM {image}\nRUN echo {time.time_ns()} > /stamp\n"})
    config = ExecConfig(cache_dir=str(tmp / "cache"), allow_file_urls=True)
    runner = DockerRunner(config, node_name=NODE)

    def dispatch(code_sha: str, n: int) -> Dispatch:
        return Dispatch(
            task_id=f"bench{n}",
            attempt_no=1,
            code_repo_url=code.url,
            code_commit_id=code_sha,
            env_repo_url=env.url,
            env_commit_id=env_sha,
            dockerfile_path="Dockerfile",
            command=["true"],
        )

    async def one(n: int) -> dict[str, float]:
        sha = code.commit({"main.sh": f"echo {n}\n"})
        reporter = TimingReporter()
        outcome = await runner.run(dispatch(sha, n), reporter)
        if outcome.reason != "succeeded":
            raise SystemExit(f"bench task failed: {outcome}")
        m, end = reporter.marks, reporter.running_at or float("nan")
        return {
            "fetch_code": m["fetch_env"] - m["fetch_code"],
            "env_image": m["env_ready"] - m["fetch_env"],
            "start": end - m["env_ready"],
            "total": end,
        }

    tag = env_tag(env.url, env_sha, "Dockerfile")
    warm, bases = [], []
    work = tmp / "basews"
    work.mkdir()
    try:
        cold = await one(0)
        async with aiodocker.Docker(url=config.docker_url) as docker:
            for n in range(1, warm_runs + 1):  # interleaved, so drift hits both alike
                warm.append(await one(n))
                bases.append(await baseline_start(docker, tag, work))
    finally:
        await runner.close()
        async with aiodocker.Docker(url=config.docker_url) as docker:
            with contextlib.suppress(aiodocker.DockerError):
                await docker.images.delete(tag, force=True)
    base = statistics.median(bases)
    med = {k: statistics.median(w[k] for w in warm) for k in warm[0]}
    print("== start latency: dispatch -> container running (seconds)")
    print(f"{'':12}{'fetch_code':>12}{'env_image':>12}{'create+start':>14}{'total':>10}")
    for name, row in (("cold", cold), ("warm (med)", med)):
        print(
            f"{name:12}{row['fetch_code']:12.3f}{row['env_image']:12.3f}{row['start']:14.3f}{row['total']:10.3f}"
        )
    print(f"(env_image: tag check, plus env fetch and build when cold; warm n={warm_runs})")
    print(f"baseline: bare create+start of the same container via aiodocker: {base:.3f} s (median)")
    print(
        f"warm overhead beyond the container's own start: {med['total'] - base:.3f} s (goal <= "
        "0.5 s)"
    )
    print(
        f"ratio cold/warm: {cold['total'] / med['total']:.1f}x; warm/baseline: "
        f"{med['total'] / base:.2f}x"
    )


async def bench_fetch(tmp: Path, commits: int) -> None:
    t0 = time.monotonic()
    repo = fast_import_repo(tmp / "history", commits)
    print(
        f"\n== incremental fetch: repository with {commits} commits (made in "
        f"{time.monotonic() - t0:.1f} s)"
    )
    warm_cache = GitCache(ExecConfig(cache_dir=str(tmp / "warm"), allow_file_urls=True))
    head = repo.git("rev-parse", "HEAD")
    await warm_cache.ensure_commit(repo.url, head)
    bare = warm_cache.repo_dir(repo.url)
    before = objects_bytes(bare)
    new = repo.commit({"src/mod000.py": "def changed():\n    return 1\n"}, message="one more")
    inc = await warm_cache.ensure_commit(repo.url, new)
    inc_bytes = objects_bytes(bare) - before
    fresh_cache = GitCache(ExecConfig(cache_dir=str(tmp / "fresh"), allow_file_urls=True))
    fresh = await fresh_cache.ensure_commit(repo.url, new)
    fresh_bytes = objects_bytes(fresh_cache.repo_dir(repo.url))
    cached = await warm_cache.ensure_commit(repo.url, new)
    print(f"{'':26}{'seconds':>10}{'bytes':>14}")
    print(f"{'one new commit, warm':26}{inc.seconds:10.3f}{inc_bytes:14,d}")
    print(f"{'fresh clone of it':26}{fresh.seconds:10.3f}{fresh_bytes:14,d}")
    print(f"{'already cached (no-op)':26}{cached.seconds:10.3f}{0:14,d}")
    print(
        f"ratio fresh/incremental: time {fresh.seconds / inc.seconds:.1f}x, "
        f"bytes {fresh_bytes / max(inc_bytes, 1):.0f}x"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm-runs", type=int, default=5)
    parser.add_argument("--commits", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-exec-") as tmp:
        await bench_start(Path(tmp), max(1, min(args.warm_runs, 50)))
        await bench_fetch(Path(tmp), max(10, min(args.commits, 20000)))


if __name__ == "__main__":
    asyncio.run(main())
