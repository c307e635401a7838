"""Benchmark: server cold start (embedded PostgreSQL included) and GET /api/tasks throughput with
wrk.

    .venv/bin/python bench/bench_api.py [--duration 10] [--connections 32] [--threads 2]
                                        [--tasks 10000] [--workers 2]

Starts a real ``unidesk-server serve --workers N`` (embedded database in a temporary data dir,
no local agent), measures process start -> ``/health`` ok on a fresh data dir (initdb included)
and again on the existing one, fills ``--tasks`` tasks through ``POST /api/task-batches`` (the
batch submit rate is printed), then runs
``wrk`` on loopback against ``GET /api/tasks`` (a page of 50, personal token): first uncached
(every request misses the read cache: a wrk script cycles through the default order's 200
cursors, then through 44 sorts/filters/cursors, adding a ``nocache=`` parameter no other request
has), then the same page repeated (the cache answers); as baselines
in the same run, against ``GET /health`` and a bare Litestar JSON route (one process, uvicorn),
a second time with ``If-None-Match`` (a polling client: 304 while nothing changed), and last
``POST /api/tasks`` (one task a request: the REST submit rate); before those, each ``sort=``
order is walked page by page (first visits, so the read cache does not answer) against the
default order, with a jump to the last page by ``offset``. Next to each server run it
prints the server's CPU per request (the worker processes' user+system time over the run
divided by the requests answered) and the embedded PostgreSQL's: on a shared, loaded machine the
rates move with the load, CPU per request much less.
Prints figures and ratios. Every loop is bounded in count and time. Needs ``wrk``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench-admin-password"
TASK = {
    "name": "bench",
    "code_repo_url": "https://git.example.org/lab/code.git",
    "code_commit_id": "a" * 40,
    "env_repo_url": "https://git.example.org/lab/env.git",
    "env_commit_id": "b" * 40,
    "dockerfile_path": "Dockerfile",
    "command": ["python", "train.py"],
    "env": {"SEED": "1"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, data_dir: Path, port: int, log_path: Path, workers: int = 1) -> None:
        self.data_dir = data_dir
        self.workers = workers
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("UNIDESK_")}
        self.env.update(
            UNIDESK_DATA_DIR=str(data_dir),
            UNIDESK_PORT=str(port),
            UNIDESK_HOST="127.0.0.1",
            UNIDESK_LOCAL_AGENT="false",
            UNIDESK_ADMIN_PASSWORD=PASSWORD,
            UNIDESK_LOG_FORMAT="json",
            UNIDESK_LOG_LEVEL="warning",
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> float:
        """Start the process; seconds until /health answers 200."""
        log = open(self.log_path, "ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "unidesk.core.cli", "serve"]
            + (["--workers", str(self.workers)] if self.workers != 1 else []),
            env=self.env,
            stdout=log,
            stderr=log,
            cwd=ROOT,
        )
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        self.stop()
        raise SystemExit(f"server not healthy after {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def server_cpu_s(pid: int) -> float:
    """User+system CPU seconds of the server's Python processes so far (PostgreSQL excluded)."""
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    total = 0.0
    for p in procs:
        try:
            if "python" in p.name():
                t = p.cpu_times()
                total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def postgres_cpu_s(data_dir: Path) -> float:
    """User+system CPU seconds of the embedded PostgreSQL (postmaster and its backends) so far;
    backends that exited are not counted (the server's pools keep theirs)."""
    pid_file = data_dir / "pg" / "postmaster.pid"
    try:
        root = psutil.Process(int(pid_file.read_text().split()[0]))
        procs = [root, *root.children(recursive=True)]
    except (OSError, ValueError, psutil.NoSuchProcess):
        return float("nan")
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def personal_token(url: str) -> str:
    with httpx.Client(base_url=url, timeout=30) as c:
        c.post(
            "/api/auth/login", json={"username": "admin", "password": PASSWORD}
        ).raise_for_status()
        r = c.post("/api/tokens", json={"name": "bench"})
        r.raise_for_status()
        return r.json()["secret"]


def fill_tasks(url: str, token: str, n: int) -> float:
    """Submit n tasks through ``POST /api/task-batches`` (batches of up to 10,000); seconds."""
    specs = [{**TASK, "name": f"bench-{i}"} for i in range(n)]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=300) as c:
        t0 = time.perf_counter()
        for i in range(0, n, 10_000):
            c.post("/api/task-batches", json={"tasks": specs[i : i + 10_000]}).raise_for_status()
        took = time.perf_counter() - t0
        total = 0
        cursor = None
        for _ in range(n // 500 + 2):  # bounded: count them through the API
            page = c.get(
                "/api/tasks", params={"limit": 500, **({"cursor": cursor} if cursor else {})}
            ).json()
            total += len(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                break
    if total != n:
        raise SystemExit(f"expected {n} tasks, found {total}")
    return took


BARE_APP = """
from litestar import Litestar, get

@get("/")
async def index() -> dict[str, str]:
    return {"status": "ok"}

app = Litestar([index])
"""


def start_bare(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    """A bare Litestar JSON route under uvicorn (one process): the framework's own ceiling."""
    (tmp / "bare_app.py").write_text(BARE_APP)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(tmp), "--port", str(port),
         "--log-level", "warning", "--no-access-log", "bare_app:app"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("bare Litestar app did not start")


SORTS = ("-created_at", "created_at", "name", "-name", "state", "-priority", "-started_at",
         "-finished_at")  # fmt: skip


def sort_walk(url: str, token: str, pages: int = 20) -> dict[str, dict[str, float]]:
    """Per ``sort=``: the median time of a first (uncached) visit to each of ``pages`` pages of
    50 walked by ``next_cursor``, and of one page jump to the last page by ``offset``, in ms."""
    out: dict[str, dict[str, float]] = {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
        total = c.get("/api/tasks", params={"total": "true", "limit": 1}).json()["total"]
        for sort in SORTS:
            times: list[float] = []
            cursor = None
            for _ in range(pages):
                params = {"sort": sort, "limit": 50, **({"cursor": cursor} if cursor else {})}
                t0 = time.perf_counter()
                r = c.get("/api/tasks", params=params)
                times.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
                cursor = r.json()["next_cursor"]
                if not cursor:
                    break
            t0 = time.perf_counter()
            last = c.get(
                "/api/tasks",
                params={"sort": sort, "limit": 50, "offset": max(0, (total - 1) // 50 * 50)},
            )
            last.raise_for_status()
            times.sort()
            out[sort] = {
                "page_ms": times[len(times) // 2],
                "last_ms": (time.perf_counter() - t0) * 1000,
            }
    return out


def cache_defeating_paths(url: str, token: str, pages: int = 200) -> tuple[list[str], list[str]]:
    """Query strings for runs the read cache cannot answer: every page of the default order
    (cursors walked by ``next_cursor``, at most ``pages``), and a mix of sorts, filters and
    cursors (every ``sort=`` order's first pages, ``state=``, ``owner=me``, ``q=``)."""
    default: list[str] = ["/api/tasks?limit=50"]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
        cursor = c.get("/api/tasks", params={"limit": 50}).json()["next_cursor"]
        while cursor and len(default) < pages:
            default.append(f"/api/tasks?limit=50&cursor={cursor}")
            cursor = c.get("/api/tasks", params={"limit": 50, "cursor": cursor}).json()[
                "next_cursor"
            ]
        mixed: list[str] = []
        for sort in SORTS:
            cursor = None
            for _ in range(5):
                q = f"/api/tasks?limit=50&sort={sort}" + (f"&cursor={cursor}" if cursor else "")
                mixed.append(q)
                cursor = c.get(q).json()["next_cursor"]
                if not cursor:
                    break
        mixed += [
            "/api/tasks?limit=50&state=pending",
            "/api/tasks?limit=50&owner=me",
            "/api/tasks?limit=50&q=bench-1",
            "/api/tasks?limit=50&state=pending&sort=-priority",
        ]
    return default, mixed


def cycling_lua(path: Path, token: str, queries: list[str]) -> Path:
    """A wrk script that cycles through ``queries`` and adds a parameter no request repeats
    (``nocache=<thread>-<n>``, ignored by the route): every request misses the read cache."""
    listing = ",\n".join(f'  "{q}"' for q in queries)
    path.write_text(
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        f"queries = {{\n{listing}\n}}\n"
        "local threads = 0\n"
        "function setup(thread)\n"
        "  threads = threads + 1\n"
        '  thread:set("thread_no", threads)\n'
        "end\n"
        "local n = 0\n"
        "function request()\n"
        "  n = n + 1\n"
        "  local q = queries[(n + thread_no * 7) % #queries + 1]\n"
        '  return wrk.format(nil, q .. "&nocache=" .. thread_no .. "-" .. n)\n'
        "end\n"
    )
    return path


def wrk(url: str, script: Path | None, args: argparse.Namespace) -> dict[str, float]:
    cmd = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--latency",
        url,
    ]
    if script:
        cmd[1:1] = ["-s", str(script)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 60)
    if out.returncode != 0:
        raise SystemExit(f"wrk failed: {out.stderr}")
    text = out.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", text)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors:.*", text)

    def ms(m: re.Match[str] | None) -> float:
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    total = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    bad = int(non2xx.group(1)) if non2xx else 0
    if bad > total // 2:
        raise SystemExit(
            f"{url}: {bad} of {total} responses not 2xx; is the token header set?\n{text}"
        )
    return {
        "rps": rps,
        "p50_ms": ms(p50),
        "p99_ms": ms(p99),
        "non_2xx": float(bad),
        "total": float(total),
        "socket_errors": 1.0 if errors else 0.0,
    }


def figures(r: dict[str, float]) -> str:
    cpu = f"  server CPU {r['cpu_ms']:.2f} ms/req" if "cpu_ms" in r else ""
    if "pg_cpu_ms" in r:
        cpu += f", PostgreSQL {r['pg_cpu_ms']:.2f}"
    return f"{r['rps']:8.0f} req/s  p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms{cpu}"


def idle_cpu(server: Server, seconds: float = 3.0) -> tuple[float, float]:
    """CPU the server and PostgreSQL use per second with no request (scheduler passes over the
    pending tasks, event hub): spent during every run too, so a slow run's CPU per request
    carries more of it."""
    assert server.proc is not None
    before, pg_before = server_cpu_s(server.proc.pid), postgres_cpu_s(server.data_dir)
    time.sleep(seconds)
    return (
        (server_cpu_s(server.proc.pid) - before) / seconds,
        (postgres_cpu_s(server.data_dir) - pg_before) / seconds,
    )


def wrk_server(
    url: str, script: Path | None, args: argparse.Namespace, server: Server
) -> dict[str, float]:
    """``wrk`` against the server, with its CPU (and PostgreSQL's) per request over the run."""
    assert server.proc is not None
    before, pg_before = server_cpu_s(server.proc.pid), postgres_cpu_s(server.data_dir)
    r = wrk(url, script, args)
    n = max(r["total"], 1)
    r["cpu_ms"] = (server_cpu_s(server.proc.pid) - before) * 1000 / n
    r["pg_cpu_ms"] = (postgres_cpu_s(server.data_dir) - pg_before) * 1000 / n
    return r


def profiler(pid: int, args: argparse.Namespace) -> subprocess.Popen[bytes] | None:
    """py-spy recording every server process for ``--duration`` seconds (``--profile``)."""
    if not args.profile:
        return None
    fmt = {".json": "speedscope", ".txt": "raw"}.get(Path(args.profile).suffix, "flamegraph")
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--subprocesses",
         "--pid", str(pid), "--format", fmt, "--output", args.profile,
         "--duration", str(args.duration), "--rate", "200", "--nonblocking"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def only_submit(server: Server, args: argparse.Namespace) -> int:
    """``--only-submit``: single submits against ``GET /health`` in the same run."""
    tmp = server.data_dir.parent
    server.start()
    assert server.proc is not None
    pid = server.proc.pid
    token = personal_token(server.url)
    post_lua = tmp / "post.lua"
    post_lua.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        f"wrk.body = [[{json.dumps(TASK)}]]\n"
    )
    health = wrk_server(f"{server.url}/health", None, args, server)
    spy = profiler(pid, args)
    submits = wrk_server(f"{server.url}/api/tasks", post_lua, args, server)
    if spy is not None:
        spy.wait(60)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as c:
        pending = c.get("/api/tasks", params={"limit": 1, "total": True}).json()["total"]
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"UniDesk submit benchmark  (wrk -t{args.threads} -c{args.connections} "
        f"-d{args.duration}s, loopback, {os.cpu_count()} CPUs, --workers {args.workers}, "
        "no nodes)"
    )
    print(f"  GET /health      (baseline)                   : {figures(health)}")
    print(f"  POST /api/tasks  (one task a request)         : {figures(submits)}")
    print(f"  tasks stored                                  : {pending} of {submits['total']:.0f}")
    if submits["non_2xx"] or submits["socket_errors"]:
        print(f"  WARNING: {submits['non_2xx']:.0f} responses not 2xx; socket errors")
    print(f"  ratio POST /api/tasks : /health               : {submits['rps'] / health['rps']:.2f}")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run (bounded)")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tasks", type=int, default=10_000)
    p.add_argument("--workers", type=int, default=2, help="unidesk-server serve --workers N")
    p.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    p.add_argument(
        "--only-submit",
        action="store_true",
        help="only single POST /api/tasks (with GET /health as the baseline): no cold starts, "
        "fill, sort walk or list reads; --profile then records the submit run",
    )
    p.add_argument(
        "--profile",
        metavar="FILE",
        help="record the server (all workers) with py-spy during the uncached /api/tasks run; "
        "FILE gets a flame graph (.svg) or speedscope (.json)",
    )
    args = p.parse_args()
    if not shutil.which("wrk"):
        print("wrk not found; run scripts/setup.sh (installs the Debian package)", file=sys.stderr)
        return 1

    tmp = Path(tempfile.mkdtemp(prefix="unidesk-bench-"))
    tmp.chmod(0o755)  # the embedded PostgreSQL runs as its own user when started by root
    port = free_port()
    server = Server(tmp / "data", port, tmp / "server.log", args.workers)
    bare: subprocess.Popen[bytes] | None = None
    try:
        if args.only_submit:
            return only_submit(server, args)
        cold_fresh = server.start()
        server.stop()
        cold_existing = server.start()
        token = personal_token(server.url)
        batch_s = fill_tasks(server.url, token, args.tasks)
        sorts = sort_walk(server.url, token)
        default_pages, mixed_pages = cache_defeating_paths(server.url, token)
        uncached_lua = cycling_lua(tmp / "uncached.lua", token, default_pages)
        mixed_lua = cycling_lua(tmp / "mixed.lua", token, mixed_pages)
        post_lua = tmp / "post.lua"
        post_lua.write_text(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {token}"\n'
            f"wrk.body = [[{json.dumps(TASK)}]]\n"
        )
        lua = tmp / "auth.lua"
        lua.write_text(f'wrk.headers["Authorization"] = "Bearer {token}"\n')
        first = httpx.get(f"{server.url}/api/tasks", headers={"Authorization": f"Bearer {token}"})
        tasks_size = len(first.content)
        etag_lua = tmp / "etag.lua"
        etag_lua.write_text(
            f'wrk.headers["Authorization"] = "Bearer {token}"\n'
            f"wrk.headers[\"If-None-Match\"] = '{first.headers['etag']}'\n"
        )
        bare_port = free_port()
        bare = start_bare(tmp, bare_port)
        bare_rps = wrk(f"http://127.0.0.1:{bare_port}/", None, args)
        bare.terminate()
        bare.wait(30)
        health = wrk_server(f"{server.url}/health", None, args, server)
        assert server.proc is not None
        idle = idle_cpu(server)
        spy = profiler(server.proc.pid, args)
        uncached = wrk_server(f"{server.url}/api/tasks", uncached_lua, args, server)
        if spy is not None:
            spy.wait(60)
            spy = None
        mixed = wrk_server(f"{server.url}/api/tasks", mixed_lua, args, server)
        tasks = wrk_server(f"{server.url}/api/tasks", lua, args, server)
        polls = wrk_server(f"{server.url}/api/tasks", etag_lua, args, server)
        submits = wrk_server(f"{server.url}/api/tasks", post_lua, args, server)
        if spy is not None:
            spy.wait(60)
    finally:
        server.stop()
        if bare is not None and bare.poll() is None:
            bare.kill()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"UniDesk API benchmark  (wrk -t{args.threads} -c{args.connections} -d{args.duration}s, "
        f"loopback, {os.cpu_count()} CPUs, --workers {args.workers})"
    )
    print(f"  cold start, fresh data dir (initdb + migrate) : {cold_fresh:6.2f} s  to /health ok")
    print(
        f"  cold start, existing data dir                 : {cold_existing:6.2f} s  to /health ok"
    )
    print(f"  bare Litestar JSON (baseline, 1 process)      : {figures(bare_rps)}")
    print(f"  GET /health      (baseline)                   : {figures(health)}")
    print(
        f"  GET /api/tasks   ({args.tasks} tasks, page of 50, {tasks_size} B, Bearer)"
        f" : {figures(tasks)}"
    )
    print(f"  GET /api/tasks   (same, If-None-Match: 304)   : {figures(polls)}")
    print(
        f"  GET /api/tasks   uncached: {len(default_pages)} pages by cursor, every request "
        f"a cache miss : {figures(uncached)}"
    )
    print(
        f"  GET /api/tasks   uncached: {len(mixed_pages)} sorts/filters/cursors, every "
        f"request a miss : {figures(mixed)}"
    )
    print(
        f"  idle (no requests): server {idle[0] * 100:.0f} % of a core, PostgreSQL "
        f"{idle[1] * 100:.0f} % (also spent during each run; uncached by cursor net of it: "
        f"server {uncached['cpu_ms'] - idle[0] * 1000 / max(uncached['rps'], 1):.2f} ms/req)"
    )
    base = sorts["-created_at"]["page_ms"]
    print(
        f"  GET /api/tasks?sort=…  ({args.tasks} tasks; median of 20 first visits of a page "
        "walked by cursor, one request at a time; ratio to the default order; and the last page "
        "by offset)"
    )
    for sort, f in sorts.items():
        print(
            f"    {sort:13s}: page {f['page_ms']:6.1f} ms  x{f['page_ms'] / base:4.1f}"
            f"   last page by offset {f['last_ms']:6.1f} ms"
        )
    print(
        f"  POST /api/task-batches ({args.tasks} tasks)      : {args.tasks / batch_s:8.0f} tasks/s"
        f"  ({batch_s:.2f} s)"
    )
    print(f"  POST /api/tasks  (one task a request)         : {figures(submits)}")
    runs = (
        ("/health", health),
        ("/api/tasks", tasks),
        ("/api/tasks uncached", uncached),
        ("/api/tasks mixed", mixed),
        ("POST /api/tasks", submits),
    )
    for name, r in runs:
        if r["non_2xx"] or r["socket_errors"]:
            print(
                f"  WARNING {name}: {r['non_2xx']:.0f} of {r['total']:.0f} responses not 2xx; "
                f"socket errors: {bool(r['socket_errors'])}"
            )
    print(f"  ratio /api/tasks : /health                    : {tasks['rps'] / health['rps']:.2f}")
    print(f"  ratio /api/tasks : bare Litestar              : {tasks['rps'] / bare_rps['rps']:.2f}")
    print(f"  ratio 304 polls : bare Litestar               : {polls['rps'] / bare_rps['rps']:.2f}")
    print(
        f"  ratio uncached /api/tasks : /health           : {uncached['rps'] / health['rps']:.2f}"
    )
    print(
        f"  ratio uncached /api/tasks : bare Litestar     : {uncached['rps'] / bare_rps['rps']:.2f}"
    )
    print(f"  ratio POST /api/tasks : /health               : {submits['rps'] / health['rps']:.2f}")
    print(f"  ratio cold start fresh : existing             : {cold_fresh / cold_existing:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
