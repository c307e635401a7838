"""``unidesk files put|get|ls|rm``: artifacts through presigned URLs, with progress and resumption.

``put`` hashes the file, declares it, and sends it in chunks (``Content-Range`` on the local
backend, parts on S3); after a dropped connection it asks what the store holds and goes on
from there, and a later ``put`` of the same file under the same name resumes the unfinished
upload. ``get`` writes ``<dest>.part``, resumes it with ``Range``, checks the SHA-256, renames.
Presigned URLs are fetched without the API token (they are their own credential).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from unidesk.backoff import backoff_delay

from .api import ApiClient, ApiError

__all__ = ["CHUNK_BYTES", "add_files_parser", "run_files"]

CHUNK_BYTES = 64 * 1024 * 1024
RETRIES = 5


def add_files_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("files", help="artifacts: put, get, ls, rm")
    fs = p.add_subparsers(dest="files_cmd", required=True, metavar="ACTION")
    s = fs.add_parser("put", parents=[common], help="upload a file as an artifact (resumable)")
    s.add_argument("path")
    s.add_argument("--name", help="artifact name (default: the file name)")
    s.add_argument("--project")
    s.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument(
        "--chunk-mb",
        type=int,
        default=CHUNK_BYTES // (1024 * 1024),
        help="chunk size of resumable uploads",
    )
    s = fs.add_parser(
        "get", parents=[common], help="download an artifact (resumable, SHA-256 checked)"
    )
    s.add_argument("artifact", help="name or id")
    s.add_argument("-o", "--output", help="destination file (default: the artifact's file name)")
    s = fs.add_parser("ls", parents=[common], help="list artifacts")
    s.add_argument("--name", dest="q", help="name contains")
    s.add_argument("--limit", type=int, default=100)
    s = fs.add_parser("rm", parents=[common], help="delete an artifact")
    s.add_argument("artifact", help="name or id")


class Progress:
    """One updating stderr line when stderr is a terminal; silent otherwise."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.t0 = time.monotonic()
        self.on = sys.stderr.isatty()

    def add(self, n: int) -> None:
        self.done += n
        if self.on:
            pct = 100 * self.done / self.total if self.total else 100
            rate = self.done / max(time.monotonic() - self.t0, 1e-6) / 1e6
            sys.stderr.write(
                f"\r{self.label}: {pct:5.1f}% {self.done}/{self.total} bytes {rate:7.1f} MB/s"
            )
            sys.stderr.flush()

    def end(self) -> None:
        if self.on:
            sys.stderr.write("\n")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(8 * 1024 * 1024):
            h.update(block)
    return h.hexdigest()


def _resolve(api: ApiClient, ref: str) -> dict[str, Any]:
    """An artifact by id, else by name."""
    try:
        return api.get(f"/api/files/{uuid.UUID(ref)}")
    except ValueError:
        return api.get(f"/api/files/by-name/{ref}")


def _read(path: Path, start: int, length: int, progress: Progress) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        fh.seek(start)
        left = length
        while left > 0:
            block = fh.read(min(1024 * 1024, left))
            if not block:
                raise ApiError(f"{path} changed while uploading")
            left -= len(block)
            progress.add(len(block))
            yield block


def _check(r: httpx.Response, what: str) -> None:
    if r.status_code >= 400:
        raise ApiError(f"{what}: HTTP {r.status_code}: {r.text[:300]}", status=r.status_code)


def _put_local(
    http: httpx.Client, url: str, path: Path, size: int, offset: int, chunk: int, progress: Progress
) -> None:
    failures = 0
    progress.add(offset)
    while offset < size or size == 0:
        end = min(offset + chunk, size) - 1
        headers = {"Content-Range": f"bytes {offset}-{end}/{size}"} if size else {}
        try:
            r = http.put(
                url, content=_read(path, offset, end + 1 - offset, progress), headers=headers
            )
        except httpx.TransportError as exc:
            failures += 1
            if failures > RETRIES:
                raise ApiError(f"upload failed after {RETRIES} retries: {exc}") from None
            time.sleep(backoff_delay(failures, base_s=1.0, cap_s=30.0))
            q = http.put(url, headers={"Content-Range": f"bytes */{size}"})
            held = (
                int(q.headers.get("range", "bytes=0--1").rsplit("-", 1)[1]) + 1
                if q.status_code == 308
                else size
            )
            progress.done = held
            offset = held
            continue
        _check(r, "upload")
        if r.status_code == 201 or size == 0:
            return
        offset = int(r.headers["range"].rsplit("-", 1)[1]) + 1


def _put_parts(
    http: httpx.Client, plan: dict[str, Any], path: Path, size: int, progress: Progress
) -> list[dict[str, Any]]:
    part_size = int(plan["part_size"])
    progress.add(len(plan.get("done_parts") or []) * part_size)
    done = []
    for part in plan["parts"]:
        start = (part["part_number"] - 1) * part_size
        length = min(part_size, size - start)
        for attempt in range(RETRIES + 1):
            try:
                r = http.put(
                    part["url"],
                    content=_read(path, start, length, progress),
                    headers={"Content-Length": str(length)},
                )
                break
            except httpx.TransportError:
                if attempt == RETRIES:
                    raise
                progress.done -= length
                time.sleep(backoff_delay(attempt, base_s=1.0, cap_s=30.0))
        _check(r, f"upload of part {part['part_number']}")
        done.append({"part_number": part["part_number"], "etag": r.headers.get("etag", "")})
    return done


def put(
    api: ApiClient,
    path: Path,
    name: str,
    *,
    project: str | None,
    labels: dict[str, str],
    chunk: int,
) -> dict[str, Any]:
    size = path.stat().st_size
    sha = _sha256(path)
    try:
        found = api.get(f"/api/files/by-name/{name}")
    except ApiError as exc:
        if exc.status != 404:
            raise
        found = None
    if found and found["state"] == "uploading" and found["sha256"] == sha and found["size"] == size:
        grant = api.post(
            f"/api/files/{found['id']}/upload"
        )  # resume an unfinished upload of this file
    else:
        body: dict[str, Any] = {"name": name, "size": size, "sha256": sha, "labels": labels}
        if project:
            body["project"] = project
        grant = api.post("/api/files", body)
    plan, artifact = grant["upload"], grant["artifact"]
    progress = Progress(f"put {name}", size)
    parts: list[dict[str, Any]] = []
    with httpx.Client(timeout=httpx.Timeout(300.0, connect=10.0)) as http:
        if plan.get("url") and plan.get("headers"):  # S3 single PUT: exact body, signed headers
            r = http.put(
                plan["url"],
                content=_read(path, 0, size, progress),
                headers={**plan["headers"], "Content-Length": str(size)},
            )
            _check(r, "upload")
        elif plan.get("url"):
            _put_local(http, plan["url"], path, size, int(plan.get("offset") or 0), chunk, progress)
        else:
            parts = _put_parts(http, plan, path, size, progress)
    progress.end()
    return api.post(f"/api/files/{artifact['id']}/complete", {"parts": parts})


def get(api: ApiClient, ref: str, dest: Path | None) -> Path:
    artifact = _resolve(api, ref)
    link = api.get(f"/api/files/{artifact['id']}/download")
    dest = dest or Path(artifact["name"].rsplit("/", 1)[-1])
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if have > link["size"]:
        part.unlink()
        have = 0
    progress = Progress(f"get {artifact['name']}", link["size"])
    progress.add(have)
    with httpx.Client(timeout=httpx.Timeout(300.0, connect=10.0)) as http:
        headers = {"Range": f"bytes={have}-"} if have else {}
        with http.stream("GET", link["url"], headers=headers) as r:
            _check(r, "download")
            mode = "ab" if r.status_code == 206 else "wb"
            with open(part, mode) as fh:
                for block in r.iter_bytes(1024 * 1024):
                    fh.write(block)
                    progress.add(len(block))
    progress.end()
    if _sha256(part) != link["sha256"]:
        part.unlink()
        raise ApiError(
            f"downloaded content of {artifact['name']} does not match its SHA-256; removed"
        )
    os.replace(part, dest)
    return dest


def run_files(api: ApiClient, ns: argparse.Namespace, print_json: Any) -> int:
    if ns.files_cmd == "put":
        from .submit import parse_pairs

        path = Path(ns.path)
        if not path.is_file():
            raise ValueError(f"{path} is not a file")
        artifact = put(
            api,
            path,
            ns.name or path.name,
            project=ns.project,
            labels=parse_pairs(ns.label, "--label"),
            chunk=max(1, ns.chunk_mb) * 1024 * 1024,
        )
        print_json(artifact) if ns.json else print(
            f"{artifact['name']}  {artifact['id']}  {artifact['size']} bytes  ready"
        )
    elif ns.files_cmd == "get":
        dest = get(api, ns.artifact, Path(ns.output) if ns.output else None)
        print_json({"path": str(dest)}) if ns.json else print(f"saved {dest}")
    elif ns.files_cmd == "ls":
        page = api.get("/api/files", q=ns.q, limit=ns.limit)
        if ns.json:
            print_json(page)
        else:
            for a in page["items"]:
                print(f"{a['name']:<48} {a['size']:>14} {a['state']:<9} {a['id']}")
    elif ns.files_cmd == "rm":
        artifact = _resolve(api, ns.artifact)
        api.request("DELETE", f"/api/files/{artifact['id']}")
        print_json({"deleted": artifact["id"]}) if ns.json else print(f"deleted {artifact['name']}")
    return 0
