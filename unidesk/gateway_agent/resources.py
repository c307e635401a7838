"""What this node declares (CPUs, memory, GPUs, OS) and what it currently uses."""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import socket
import subprocess
from pathlib import Path

import msgspec
import psutil

from unidesk import __version__
from unidesk.protocol import Gpu, GpuUsage, HostMount, Usage

__all__ = [
    "NodeResources",
    "detect_os",
    "detect_resources",
    "gpu_labels",
    "parse_gpu_csv",
    "parse_gpu_usage_csv",
    "sample_usage",
]

_GPU_QUERY = ["--query-gpu=index,name,memory.total,uuid", "--format=csv,noheader,nounits"]
_GPU_USAGE_QUERY = [
    "--query-gpu=index,utilization.gpu,memory.used",
    "--format=csv,noheader,nounits",
]
_NVIDIA_SMI_TIMEOUT_S = 10.0


class NodeResources(msgspec.Struct, frozen=True, kw_only=True):
    """The declaration sent in Hello (``--print-resources`` prints exactly this)."""

    node_name: str
    hostname: str
    os: str
    agent_version: str
    cpus: float
    memory_mb: int
    gpus: list[Gpu] = []
    labels: dict[str, str] = {}
    runtimes: list[str] = msgspec.field(default_factory=lambda: ["docker"])
    host_mounts: list[HostMount] = []
    """Named host directories (names and modes; the paths stay on the node)."""


def detect_os(proc_version: str | None = None, system: str | None = None) -> str:
    """``Linux``, ``WSL`` (a Linux kernel built by Microsoft), ``Windows``, or
    ``platform.system()``."""
    system = system or platform.system()
    if system == "Linux":
        if proc_version is None:
            try:
                proc_version = Path("/proc/version").read_text()
            except OSError:
                proc_version = ""
        return "WSL" if "microsoft" in proc_version.lower() else "Linux"
    return system


def parse_gpu_csv(text: str) -> list[Gpu]:
    """Parse ``nvidia-smi --query-gpu=index,name,memory.total,uuid`` CSV (noheader, nounits)."""
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4 or not parts[0].isdigit():
            continue
        index, name, memory, uuid = parts
        try:
            memory_mb = int(float(memory))
        except ValueError:
            memory_mb = 0
        gpus.append(Gpu(index=int(index), model=name, memory_mb=memory_mb, uuid=uuid))
    return gpus


def parse_gpu_usage_csv(text: str) -> list[GpuUsage]:
    """Parse ``nvidia-smi --query-gpu=index,utilization.gpu,memory.used`` CSV."""
    usage = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        try:
            usage.append(
                GpuUsage(
                    index=int(parts[0]),
                    util_percent=float(parts[1]),
                    memory_used_mb=int(float(parts[2])),
                )
            )
        except ValueError:
            continue
    return usage


def _nvidia_smi_sync(args: list[str]) -> str:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return ""
    try:
        done = subprocess.run(
            [exe, *args], capture_output=True, text=True, timeout=_NVIDIA_SMI_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout if done.returncode == 0 else ""


def _cpu_count() -> float:
    try:
        return float(len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return float(os.cpu_count() or 1)


def gpu_labels(gpus: list[Gpu]) -> dict[str, str]:
    """Labels derived from the detected GPUs (``gpu.count``, and ``gpu.model`` and
    ``gpu.memory_mb`` of the smallest when all match the first's model); labels the operator
    declares win over these."""
    if not gpus:
        return {}
    out = {"gpu.count": str(len(gpus))}
    if all(g.model == gpus[0].model for g in gpus):
        out["gpu.model"] = gpus[0].model[:128]
        out["gpu.memory_mb"] = str(min(g.memory_mb for g in gpus))
    return out


def detect_resources(
    *,
    node_name: str,
    labels: dict[str, str] | None = None,
    cpus: float | None = None,
    memory_mb: int | None = None,
) -> NodeResources:
    """Detect what this machine offers; ``cpus``/``memory_mb`` may only lower what was found."""
    found_cpus = _cpu_count()
    found_mem = psutil.virtual_memory().total // (1024 * 1024)
    gpus = parse_gpu_csv(_nvidia_smi_sync(_GPU_QUERY))
    return NodeResources(
        node_name=node_name,
        hostname=socket.gethostname(),
        os=detect_os(),
        agent_version=__version__,
        cpus=min(found_cpus, cpus) if cpus else found_cpus,
        memory_mb=min(found_mem, memory_mb) if memory_mb else found_mem,
        gpus=gpus,
        labels={**gpu_labels(gpus), **(labels or {})},
    )


async def sample_usage(disk_path: str = "/", *, with_gpus: bool = True) -> Usage:
    """Current CPU %, memory, free disk under ``disk_path`` and per-GPU utilisation."""
    mem = psutil.virtual_memory()
    try:
        # one statvfs of a local path (like psutil's /proc reads here): quick, not worth a thread
        disk = os.path.expanduser(disk_path)  # noqa: ASYNC240
        disk_free_mb = shutil.disk_usage(disk).free // (1024 * 1024)
    except OSError:
        disk_free_mb = 0
    gpus: list[GpuUsage] = []
    if with_gpus and shutil.which("nvidia-smi"):
        gpus = parse_gpu_usage_csv(await asyncio.to_thread(_nvidia_smi_sync, _GPU_USAGE_QUERY))
    return Usage(
        cpu_percent=psutil.cpu_percent(interval=None),
        memory_used_mb=(mem.total - mem.available) // (1024 * 1024),
        memory_total_mb=mem.total // (1024 * 1024),
        disk_free_mb=disk_free_mb,
        gpus=gpus,
    )
