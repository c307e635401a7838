"""Resource detection: GPUs through nvidia-smi's CSV, WSL detection, declared limits, usage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from unidesk.gateway_agent.resources import (
    detect_os,
    detect_resources,
    gpu_labels,
    parse_gpu_csv,
    parse_gpu_usage_csv,
    sample_usage,
)
from unidesk.protocol import Gpu

NVIDIA_CSV = (
    "0, NVIDIA H100 80GB HBM3, 81559, GPU-1b6e3a1c-0000-1111-2222-333344445555\n"
    "1, NVIDIA GeForce RTX 4090, 24564, GPU-aaaa\n"
)


def test_parse_gpu_csv():
    assert parse_gpu_csv(NVIDIA_CSV) == [
        Gpu(
            index=0,
            model="NVIDIA H100 80GB HBM3",
            memory_mb=81559,
            uuid="GPU-1b6e3a1c-0000-1111-2222-333344445555",
        ),
        Gpu(index=1, model="NVIDIA GeForce RTX 4090", memory_mb=24564, uuid="GPU-aaaa"),
    ]
    assert parse_gpu_csv("") == []
    assert parse_gpu_csv("No devices were found\n") == []
    assert parse_gpu_csv("0, X, [N/A], GPU-x\n")[0].memory_mb == 0


def test_parse_gpu_usage_csv():
    usage = parse_gpu_usage_csv("0, 87, 40000\n1, [N/A], 3\n")
    assert [(u.index, u.util_percent, u.memory_used_mb) for u in usage] == [(0, 87.0, 40000)]


def test_detect_os():
    wsl = "Linux version 5.15.153.1-microsoft-standard-WSL2 (root@1c602f52c2e4)"
    assert detect_os(wsl, "Linux") == "WSL"
    assert (
        detect_os("Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org)", "Linux")
        == "Linux"
    )
    assert detect_os(None, "Windows") == "Windows"
    assert detect_os(None, "Linux") in ("Linux", "WSL")


def test_declared_limits_only_lower_what_was_found():
    found = detect_resources(node_name="n")
    assert found.cpus == len(os.sched_getaffinity(0)) and found.memory_mb > 0
    lower = detect_resources(node_name="n", cpus=0.5, memory_mb=100, labels={"a": "b"})
    assert (lower.cpus, lower.memory_mb, lower.labels) == (0.5, 100, {"a": "b"})
    higher = detect_resources(node_name="n", cpus=10_000, memory_mb=10**9)
    assert (higher.cpus, higher.memory_mb) == (found.cpus, found.memory_mb)


async def test_sample_usage(tmp_path: Path):
    usage = await sample_usage(str(tmp_path))
    assert 0 < usage.memory_used_mb <= usage.memory_total_mb
    assert usage.disk_free_mb > 0 and 0.0 <= usage.cpu_percent <= 100.0


def _print_resources(env_extra: dict[str, str]) -> dict:
    env = {**os.environ, **env_extra}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "unidesk.gateway_agent.cli",
            "--print-resources",
            "--node-name",
            "box",
            "--label",
            "zone=lab",
            "--label",
            "gpu=h100",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_print_resources_prints_json():
    out = _print_resources({"PATH": "/usr/bin:/bin"})
    assert out["node_name"] == "box" and out["labels"] == {"zone": "lab", "gpu": "h100"}
    assert out["cpus"] >= 1 and out["memory_mb"] > 0 and out["os"] in ("Linux", "WSL")
    assert out["runtimes"] == ["docker"] and isinstance(out["gpus"], list)


def test_print_resources_reads_gpus_from_nvidia_smi(tmp_path: Path):
    # No GPU on this machine (a boundary we cannot run here): a stand-in nvidia-smi on PATH prints
    # the CSV that this query documents (csv, noheader, nounits), so the whole detection path runs.
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    args_file = tmp_path / "args"
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {args_file}\ncat <<'CSV'\n{NVIDIA_CSV}CSV\n")
    fake.chmod(0o755)
    out = _print_resources({"PATH": f"{fake.parent}:/usr/bin:/bin"})
    assert [g["model"] for g in out["gpus"]] == ["NVIDIA H100 80GB HBM3", "NVIDIA GeForce RTX 4090"]
    assert out["gpus"][0] == {
        "index": 0,
        "model": "NVIDIA H100 80GB HBM3",
        "memory_mb": 81559,
        "uuid": "GPU-1b6e3a1c-0000-1111-2222-333344445555",
    }
    assert args_file.read_text().split() == [
        "--query-gpu=index,name,memory.total,uuid",
        "--format=csv,noheader,nounits",
    ]


def test_gpu_labels_from_detected_gpus():
    a100 = parse_gpu_csv(
        "0, NVIDIA A100-SXM4-80GB, 81920, GPU-a\n1, NVIDIA A100-SXM4-80GB, 81920, GPU-b\n"
    )
    assert gpu_labels(a100) == {
        "gpu.count": "2",
        "gpu.model": "NVIDIA A100-SXM4-80GB",
        "gpu.memory_mb": "81920",
    }
    mixed = parse_gpu_csv("0, NVIDIA A100-SXM4-80GB, 81920, GPU-a\n1, Tesla T4, 15360, GPU-b\n")
    assert gpu_labels(mixed) == {"gpu.count": "2"}
    assert gpu_labels([]) == {}
