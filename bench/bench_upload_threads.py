"""Server CPU per GiB of repeated single-stream uploads, split by server thread.

Starts a real ``unidesk-server`` (embedded PostgreSQL, local backend), makes one SIZE file,
then uploads it RUNS times with curl through a signed URL, deleting each object right after
(so every run but the first writes into page-cache pages just freed). For each run: MB/s, the
server's CPU per GiB, and the user/system CPU per GiB of each server thread that used some
(sampled from /proc every 50 ms): with ``storage.rawbody`` the reader thread (``recv_into`` +
write, kernel time) and the digest thread (SHA-256, user time). The baseline is the same
harness on an older commit (``git archive`` it and run with ``PYTHONPATH`` set to the copy).

    .venv/bin/python bench/bench_upload_threads.py [--size-mib 512] [--runs 3]
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_storage import PASSWORD, cpu_s, free_port, start_server, timed, write_source


def thread_times(pid: int) -> dict[str, tuple[int, int]]:
    """(utime, stime) in clock ticks of each live thread, keyed by tid and name."""
    out = {}
    for f in glob.glob(f"/proc/{pid}/task/*/stat"):
        try:
            text = Path(f).read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        out[f"{f.split('/')[4]} {name}"] = (int(fields[11]), int(fields[12]))
    return out


def sample(pid: int, last: dict[str, tuple[int, int]], stop: threading.Event) -> None:
    """Keep the latest times of every thread (threads that end keep their last sample)."""
    while not stop.is_set():
        last.update(thread_times(pid))
        time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--runs", type=int, default=3)
    ns = ap.parse_args()
    print(f"command: {Path(sys.executable).name} {' '.join(sys.argv)}")
    work = Path(tempfile.mkdtemp(prefix="bench-upload-threads-"))
    server = None
    try:
        src = work / "src.bin"
        digest = write_source(src, ns.size_mib)
        size = src.stat().st_size
        gib = size / 2**30
        port = free_port()
        server = start_server(work, port)
        tick = os.sysconf("SC_CLK_TCK")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as api:
            api.post(
                "/api/auth/login", json={"username": "admin", "password": PASSWORD}
            ).raise_for_status()
            for i in range(ns.runs):
                r = api.post(
                    "/api/files", json={"name": f"run-{i}", "size": size, "sha256": digest}
                )
                r.raise_for_status()
                aid, url = r.json()["artifact"]["id"], r.json()["upload"]["url"]
                base = thread_times(server.pid)
                last: dict[str, tuple[int, int]] = {}
                stop = threading.Event()

                sampler = threading.Thread(target=sample, args=(server.pid, last, stop))
                sampler.start()
                cpu0 = cpu_s(server.pid)
                wall = timed([["-T", str(src), url]])
                used = cpu_s(server.pid) - cpu0
                stop.set()
                sampler.join()
                print(
                    f"run {i + 1}: {size / 1e6 / wall:.0f} MB/s, server CPU {used / gib:.2f} s/GiB"
                )
                for key, (u, s) in sorted(last.items()):
                    u0, s0 = base.get(key, (0, 0))
                    if (u - u0) + (s - s0) > 1:
                        print(
                            f"    thread {key}: user {(u - u0) / tick / gib:.2f} "
                            f"sys {(s - s0) / tick / gib:.2f} s/GiB"
                        )
                api.post(f"/api/files/{aid}/complete", json={}).raise_for_status()
                api.delete(f"/api/files/{aid}").raise_for_status()
        print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
