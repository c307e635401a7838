"""Throughput of the local object store over loopback beside nginx serving the same file.

Starts a real ``unidesk-server`` (embedded PostgreSQL, local backend) and Debian's nginx (static
files, PUT through the dav module) on loopback ports, then moves a SIZE file with curl (the
same client for both): one stream, then STREAMS concurrent streams, upload and download.
Prints MB/s for each (the single-stream upload: the better of two runs in alternating order,
each uploaded file deleted right after so both sides write into recycled page-cache pages; the
CPU per GiB of every run), the ratio UniDesk/nginx, and the server's RSS before, at peak and after
(flat = it does not grow with the file size). Our uploads also hash (SHA-256) on the way in;
nginx's do not.

    .venv/bin/python bench/bench_storage.py [--size-mib 1024] [--streams 8]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

PASSWORD = "bench-password-123"


def write_source(path: Path, size_mib: int) -> str:
    """Write ``size_mib`` MiB of random data to ``path``; its SHA-256 hex digest."""
    block = os.urandom(1024 * 1024)
    h = hashlib.sha256()
    with open(path, "wb") as fh:
        for _ in range(size_mib):
            fh.write(block)
            h.update(block)
    return h.hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not answer in {timeout}s")


def curl(args: list[str]) -> None:
    r = subprocess.run(
        ["curl", "-sS", "--fail", "-o", "/dev/null", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if r.returncode != 0:
        raise SystemExit(f"curl {' '.join(args[:3])} failed: {r.stderr.strip()}")


def timed(jobs: list[list[str]]) -> float:
    """Run curl jobs at once; seconds for all of them."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(jobs)) as pool:
        list(pool.map(curl, jobs))
    return time.perf_counter() - t0


class RssSampler:
    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        return self.proc.memory_info().rss + sum(
            c.memory_info().rss
            for c in self.proc.children(recursive=False)
            if "postgres" not in c.name()
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.05)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children so far (not PostgreSQL)."""
    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        if "postgres" in p.name():
            continue
        t = p.cpu_times()
        total += t.user + t.system
    return total


def start_nginx(root: Path, work: Path, port: int) -> subprocess.Popen:
    conf = work / "nginx.conf"
    conf.write_text(f"""
user root;
worker_processes 2;
error_log {work}/nginx-error.log warn;
pid {work}/nginx.pid;
events {{ worker_connections 256; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path {work}/nginx-body;
  client_max_body_size 0;
  server {{
    listen 127.0.0.1:{port};
    root {root};
    location / {{ dav_methods PUT DELETE; create_full_put_path on; }}
  }}
}}
""")
    (work / "nginx-body").mkdir(exist_ok=True)
    proc = subprocess.Popen(
        ["nginx", "-c", str(conf), "-p", str(work), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=open(work / "nginx.out", "wb"),
    )
    wait_http(f"http://127.0.0.1:{port}/", proc)
    return proc


def start_server(work: Path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIDESK_")}
    env.update(
        {
            "UNIDESK_DATA_DIR": str(work / "server"),
            "UNIDESK_PORT": str(port),
            "UNIDESK_HOST": "127.0.0.1",
            "UNIDESK_ADMIN_PASSWORD": PASSWORD,
            "UNIDESK_LOCAL_AGENT": "false",
            "UNIDESK_LOG_FORMAT": "json",
            "UNIDESK_LOG_LEVEL": "warning",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "unidesk.core.cli", "serve"],
        env=env,
        stdout=open(work / "server.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    wait_http(f"http://127.0.0.1:{port}/health", proc)
    return proc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument(
        "--profile",
        metavar="FILE",
        help="record the server with py-spy during the single-stream upload (.txt: raw stacks, "
        ".json: speedscope, else a flame graph .svg)",
    )
    ns = ap.parse_args()
    print(f"command: {Path(sys.executable).name} {' '.join(sys.argv)}")
    if not shutil.which("nginx") or not shutil.which("curl"):
        raise SystemExit("needs Debian's nginx (nginx-light or nginx) and curl")
    size = ns.size_mib * 1024 * 1024
    work = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    procs: list[subprocess.Popen] = []
    try:
        src = work / "src.bin"
        digest = write_source(src, ns.size_mib)
        www = work / "www"
        www.mkdir()
        os.link(src, www / "src.bin")

        nport, sport = free_port(), free_port()
        procs.append(start_nginx(www, work, nport))
        server = start_server(work, sport)
        procs.append(server)
        base = f"http://127.0.0.1:{sport}"
        with httpx.Client(base_url=base, timeout=60) as c:
            c.post(
                "/api/auth/login", json={"username": "admin", "password": PASSWORD}
            ).raise_for_status()
            api = httpx.Client(base_url=base, timeout=60, cookies=c.cookies)

        def declare(name: str) -> tuple[str, str]:
            r = api.post("/api/files", json={"name": name, "size": size, "sha256": digest})
            r.raise_for_status()
            return r.json()["artifact"]["id"], r.json()["upload"]["url"]

        sampler = RssSampler(server.pid)
        rss_before = sampler.proc.memory_info().rss
        results: dict[str, tuple[float, float]] = {}
        mb = size / 1e6
        n = ns.streams
        with sampler:
            # uploads, one stream: ours, nginx, nginx, ours, each file deleted right after, the
            # better of two for each side. Deleting keeps both writing into page-cache pages
            # just freed: on this VM a write into never-used pages costs several times more
            # kernel CPU, and more with every GiB kept (nginx alone, three PUTs in a row: 1.0,
            # 1.5, 3.6 s sys/GiB), so whichever side ran later would pay for the earlier files.
            scratch = work / "scratch.bin"
            shutil.copyfile(src, scratch)  # warm-up: pages the first measured run reuses
            scratch.unlink()
            spy = None
            if ns.profile:
                fmt = {".json": "speedscope", ".txt": "raw"}.get(
                    Path(ns.profile).suffix, "flamegraph"
                )
                spy = subprocess.Popen(
                    [str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                     str(server.pid), "--format", fmt, "--output", ns.profile, "--rate", "200",
                     "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                time.sleep(1)

            def ours_once(name: str) -> tuple[float, float]:
                aid, url = declare(name)
                cpu0 = cpu_s(server.pid)
                wall = timed([["-T", str(src), url]])
                used = cpu_s(server.pid) - cpu0
                api.post(f"/api/files/{aid}/complete", json={}).raise_for_status()
                api.delete(f"/api/files/{aid}").raise_for_status()
                return wall, used

            def theirs_once(name: str) -> tuple[float, float]:
                cpu0 = cpu_s(procs[0].pid)
                wall = timed([["-T", str(src), f"http://127.0.0.1:{nport}/up/{name}"]])
                used = cpu_s(procs[0].pid) - cpu0
                (www / "up" / name).unlink()
                return wall, used

            runs_ours = [ours_once("bench/single.bin")]
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            runs_theirs = [theirs_once("single.bin"), theirs_once("again.bin")]
            runs_ours.append(ours_once("bench/again.bin"))
            ours, ours_cpu = min(runs_ours)
            theirs, theirs_cpu = min(runs_theirs)
            results["upload, 1 stream"] = (mb / ours, mb / theirs)
            urls = [declare(f"bench/multi-{i}.bin") for i in range(n)]
            ours = timed([["-T", str(src), u] for _, u in urls])
            theirs = timed(
                [["-T", str(src), f"http://127.0.0.1:{nport}/up/multi-{i}.bin"] for i in range(n)]
            )
            results[f"upload, {n} streams"] = (n * mb / ours, n * mb / theirs)
            for i, (a, _) in enumerate(urls):
                api.delete(f"/api/files/{a}").raise_for_status()
                (www / "up" / f"multi-{i}.bin").unlink()
            # downloads (both from the page cache after a warm-up read)
            aid, url = declare("bench/download.bin")
            curl(["-T", str(src), url])
            api.post(f"/api/files/{aid}/complete", json={}).raise_for_status()
            link = api.get(f"/api/files/{aid}/download").json()["url"]
            curl([link])
            curl([f"http://127.0.0.1:{nport}/src.bin"])
            ours = timed([[link]])
            theirs = timed([[f"http://127.0.0.1:{nport}/src.bin"]])
            results["download, 1 stream"] = (mb / ours, mb / theirs)
            ours = timed([[link]] * n)
            theirs = timed([[f"http://127.0.0.1:{nport}/src.bin"]] * n)
            results[f"download, {n} streams"] = (n * mb / ours, n * mb / theirs)
        rss_after = sampler.proc.memory_info().rss
        print(f"file {ns.size_mib} MiB, loopback, client curl, CPUs {os.cpu_count()}")
        print(f"{'transfer':<22}{'UniDesk MB/s':>14}{'nginx MB/s':>12}{'ratio':>8}")
        for name, (a, b) in results.items():
            print(f"{name:<22}{a:>14.0f}{b:>12.0f}{a / b:>8.2f}")
        gib = size / 2**30
        print(
            f"CPU per GiB uploaded (one stream, the faster run): UniDesk {ours_cpu / gib:.2f} s, "
            f"nginx {theirs_cpu / gib:.2f} s (steadier than MB/s on a loaded machine)"
        )
        print(
            "  each run (MB/s, CPU s/GiB): UniDesk "
            + ", ".join(f"{mb / w:.0f} {c / gib:.2f}" for w, c in runs_ours)
            + "; nginx "
            + ", ".join(f"{mb / w:.0f} {c / gib:.2f}" for w, c in runs_theirs)
        )
        print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(
            f"server RSS: before {rss_before / 2**20:.0f} MiB, peak {sampler.peak / 2**20:.0f} "
            "MiB, "
            f"after {rss_after / 2**20:.0f} MiB (file {ns.size_mib} MiB; peak-before = "
            f"{(sampler.peak - rss_before) / 2**20:.0f} MiB)"
        )
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
