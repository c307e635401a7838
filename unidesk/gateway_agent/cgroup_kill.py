"""The last step of a stop: kill a container's processes through its cgroup, without Docker.

Used only when Docker did not confirm a stop (SIGTERM, grace, SIGKILL): the Docker Engine or the
container's shim is stuck, e.g. a fork bomb took the host to load 30 and the kill "did not receive
an exit event". The container's cgroup is found under ``cgroup_root`` from ``/proc/<pid>/cgroup``
of its main process (when this agent sees the host's pids) and from Docker's default layouts
(``docker/<id>``, ``system.slice/docker-<id>.scope``; cgroup v2, or v1 with its ``unified``
hierarchy). On cgroup v2 it writes ``1`` to ``cgroup.kill`` (the kernel kills every process,
forks included); on a v1-only host it freezes the ``freezer`` cgroup, sends SIGKILL to every
process and thaws it. It then waits for the cgroup to empty. Any failure raises ``CgroupKillFailed``
with the reason; the runner then ends the attempt as ``infra_error`` and reports the node unhealthy.

An agent that runs in a container needs the host's ``/sys/fs/cgroup`` (``cgroup_root``) and the
host's pid namespace for this step; without them it fails visibly as above.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

__all__ = ["CgroupKillFailed", "container_cgroups", "kill_cgroup"]

_POLL_S = 0.1


class CgroupKillFailed(Exception):
    """The container's processes could not be killed through its cgroup; ``str()`` says why."""


def _from_proc(root: Path, pid: int | None) -> list[Path]:
    if not pid:
        return []
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return []
    found: list[Path] = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        rel = path.lstrip("/")
        if not controllers:  # the v2 (unified) hierarchy
            found += [root / rel, root / "unified" / rel]
        else:
            names = controllers.split(",")
            found += [root / c / rel for c in ("freezer", "pids") if c in names]
    return found


def container_cgroups(root: Path, container_id: str, pid: int | None = None) -> list[Path]:
    """The existing cgroup directories of the container (v2 first, then v1 freezer/pids)."""
    layouts = [f"docker/{container_id}", f"system.slice/docker-{container_id}.scope"]
    candidates = _from_proc(root, pid)
    for rel in layouts:
        candidates += [root / rel, root / "unified" / rel]
        candidates += [root / c / rel for c in ("freezer", "pids")]
    seen: list[Path] = []
    for path in candidates:
        if path not in seen and (path / "cgroup.procs").is_file():
            seen.append(path)
    return seen


def _pids(cgroup: Path) -> set[int]:
    pids: set[int] = set()
    for dirpath, _, files in os.walk(cgroup):
        if "cgroup.procs" in files:
            try:
                text = Path(dirpath, "cgroup.procs").read_text()
            except OSError:
                continue
            pids.update(int(p) for p in text.split() if p.strip() and p.strip() != "0")
    return pids


def _signal_all(cgroups: list[Path]) -> None:
    for cgroup in cgroups:
        for pid in _pids(cgroup):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _kill_v1(cgroups: list[Path]) -> str:
    freezer = next((c for c in cgroups if (c / "freezer.state").is_file()), None)
    if freezer is None:
        _signal_all(cgroups)
        return "SIGKILL to every process in the cgroup"
    (freezer / "freezer.state").write_text("FROZEN")
    try:
        _signal_all(cgroups)  # frozen: nothing forks meanwhile; the kills land on thaw
    finally:
        (freezer / "freezer.state").write_text("THAWED")
    return "freezer, SIGKILL to every process, thaw"


async def kill_cgroup(
    root: Path, container_id: str, pid: int | None = None, *, wait_s: float = 10.0
) -> str:
    """Kill every process of the container through its cgroup and wait (at most ``wait_s``)
    until none is left. Returns how it was done; raises ``CgroupKillFailed``."""
    cgroups = container_cgroups(root, container_id, pid)
    if not cgroups:
        raise CgroupKillFailed(f"no cgroup of container {container_id[:12]} found under {root}")
    try:
        v2 = next((c for c in cgroups if (c / "cgroup.kill").is_file()), None)
        if v2 is not None:
            (v2 / "cgroup.kill").write_text("1")
            how = f"cgroup.kill in {v2}"
        else:
            how = _kill_v1(cgroups)
    except OSError as exc:
        raise CgroupKillFailed(f"cannot kill through {cgroups[0]}: {exc.strerror or exc}") from exc
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        left = set().union(*(_pids(c) for c in cgroups))
        if not left:
            return how
        if loop.time() >= deadline:
            raise CgroupKillFailed(
                f"{len(left)} process(es) still in {cgroups[0]} {wait_s:g} s after {how}"
            )
        if v2 is None:
            _signal_all(cgroups)
        await asyncio.sleep(_POLL_S)
