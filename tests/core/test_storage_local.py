"""The local backend's signed URLs over HTTP: streaming, Range, ETag, resumable chunks, and every
refusal."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from tests.conftest import login
from tests.core.storage_helpers import path_of, sha, upload
from unidesk.core.app import create_app
from unidesk.core.storage.protocol import check_key
from unidesk.core.storage.signing import Signer
from unidesk.errors import BadRequest


def _files(client: AsyncTestClient) -> list[Path]:
    """Every file the local store holds (objects and partials)."""
    root = client.app.state.object_store.root
    return [p for p in root.rglob("*") if p.is_file() and p.name != ".health-probe"]


async def _declare(
    client: AsyncTestClient, headers: dict[str, str], name: str, data: bytes
) -> dict:
    r = await client.post(
        "/api/files", json={"name": name, "size": len(data), "sha256": sha(data)}, headers=headers
    )
    assert r.status_code == 201, r.text
    return r.json()


def _with(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return f"{parts.path}?{urlencode(query)}"


async def test_upload_download_range_and_etag(client, admin_headers):
    data = bytes(range(256)) * 4096  # 1 MiB
    artifact = await upload(
        client, admin_headers, "datasets/bytes.bin", data, labels={"kind": "test"}
    )
    assert (
        artifact["state"] == "ready"
        and artifact["size"] == len(data)
        and artifact["sha256"] == sha(data)
    )
    link = (await client.get(f"/api/files/{artifact['id']}/download", headers=admin_headers)).json()
    whole = await client.get(path_of(link["url"]))
    assert whole.status_code == 200 and whole.content == data
    assert (
        whole.headers["content-length"] == str(len(data))
        and whole.headers["accept-ranges"] == "bytes"
    )
    etag = whole.headers["etag"]
    part = await client.get(path_of(link["url"]), headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == data[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
    tail = await client.get(path_of(link["url"]), headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    beyond = await client.get(path_of(link["url"]), headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(data)}"
    same = await client.get(path_of(link["url"]), headers={"If-None-Match": etag})
    assert same.status_code == 304
    head = await client.head(path_of(link["url"]))
    assert (
        head.status_code == 200
        and head.headers["content-length"] == str(len(data))
        and head.content == b""
    )
    events = await client.get(
        "/api/events",
        params={"subject_type": "artifact", "subject_id": artifact["id"]},
        headers=admin_headers,
    )
    assert [e["kind"] for e in events.json()["items"]] == [
        "artifact.upload_started",
        "artifact.created",
    ]


async def test_chunked_resumable_upload(client, admin_headers):
    data = b"0123456789" * 100_000
    grant = await _declare(client, admin_headers, "big/chunks.bin", data)
    url = path_of(grant["upload"]["url"])
    first = await client.put(
        url, content=data[:300_000], headers={"Content-Range": f"bytes 0-299999/{len(data)}"}
    )
    assert first.status_code == 308 and first.headers["range"] == "bytes=0-299999"
    status = await client.put(url, headers={"Content-Range": f"bytes */{len(data)}"})
    assert status.status_code == 308 and status.headers["range"] == "bytes=0-299999"
    gap = await client.put(
        url,
        content=data[400_000:500_000],
        headers={"Content-Range": f"bytes 400000-499999/{len(data)}"},
    )
    assert gap.status_code == 409 and gap.json()["offset"] == 300_000
    early = await client.post(
        f"/api/files/{grant['artifact']['id']}/complete", json={}, headers=admin_headers
    )
    assert early.status_code == 409
    resumed = await client.post(
        f"/api/files/{grant['artifact']['id']}/upload", headers=admin_headers
    )
    assert resumed.json()["upload"]["offset"] == 300_000
    rest = await client.put(
        url,
        content=data[300_000:],
        headers={"Content-Range": f"bytes 300000-{len(data) - 1}/{len(data)}"},
    )
    assert rest.status_code == 201, rest.text
    done = await client.post(
        f"/api/files/{grant['artifact']['id']}/complete", json={}, headers=admin_headers
    )
    assert done.status_code == 200 and done.json()["state"] == "ready"


async def test_expired_url_is_refused(client, admin_headers):
    artifact = await upload(client, admin_headers, "old.txt", b"old news")
    store = client.app.state.object_store
    past = Signer(store.signer._key, "http://x", clock=lambda: time.time() - 3600)
    url = past.get_url(store_key(client, artifact), expires_s=60)
    r = await client.get(path_of(url))
    assert r.status_code == 403 and "expired" in r.json()["detail"]
    put_url, _ = past.put_url("artifacts/x", size=3, sha256=sha(b"abc"), expires_s=60)
    r = await client.put(path_of(put_url), content=b"abc")
    assert r.status_code == 403 and "expired" in r.json()["detail"]
    assert not (store.objects / "artifacts" / "x").exists()


def store_key(client: AsyncTestClient, artifact: dict) -> str:
    return f"artifacts/{artifact['id']}"


async def test_tampered_signature_key_or_params_are_refused(client, admin_headers):
    artifact = await upload(client, admin_headers, "secret.txt", b"top secret")
    other = await upload(client, admin_headers, "other.txt", b"other")
    url = (await client.get(f"/api/files/{artifact['id']}/download", headers=admin_headers)).json()[
        "url"
    ]
    sig = dict(parse_qsl(urlsplit(url).query))["sig"]
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    for bad in (
        _with(url, sig=flipped),
        _with(url, exp=str(int(time.time()) + 10**6)),
        path_of(url).replace(artifact["id"], other["id"]),
        _with(url, sig=""),
    ):
        r = await client.get(bad)
        assert r.status_code == 403, (bad, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    grant = await _declare(client, admin_headers, "upload.bin", b"x" * 10)
    r = await client.put(_with(grant["upload"]["url"], size="11"), content=b"x" * 11)
    assert r.status_code == 403
    r = await client.put(_with(grant["upload"]["url"], sha256=sha(b"y" * 10)), content=b"y" * 10)
    assert r.status_code == 403
    assert _files(client) == [p for p in _files(client) if p.parent.name == "artifacts"]


async def test_download_url_used_for_upload_and_the_reverse(client, admin_headers):
    artifact = await upload(client, admin_headers, "keep.txt", b"keep me")
    get_url = (
        await client.get(f"/api/files/{artifact['id']}/download", headers=admin_headers)
    ).json()["url"]
    r = await client.put(path_of(get_url), content=b"overwritten")
    assert r.status_code == 403
    assert (await client.get(path_of(get_url))).content == b"keep me"
    grant = await _declare(client, admin_headers, "fresh.txt", b"fresh")
    r = await client.get(path_of(grant["upload"]["url"]))
    assert r.status_code == 403
    r = await client.delete(path_of(get_url))
    assert r.status_code == 405


def test_body_not_matching_size_or_hash_keeps_nothing(live_server):
    """Over real HTTP with a chunked body (no Content-Length), so the server must count and hash
    itself."""
    store = Path(live_server.env["UNIDESK_DATA_DIR"]) / "files"
    with live_server.api() as api, httpx.Client(timeout=30) as raw:
        for body, why in ((b"x" * 11, "longer"), (b"x" * 9, "has 9 bytes"), (b"y" * 10, "SHA-256")):
            r = api.post(
                "/api/files",
                json={"name": f"exact-{why[:3]}.bin", "size": 10, "sha256": sha(b"x" * 10)},
            )
            assert r.status_code == 201, r.text
            put = raw.put(r.json()["upload"]["url"], content=iter([body[:4], body[4:]]))
            assert put.status_code == 400, put.text
            assert why in put.json()["detail"] and "nothing was kept" in put.json()["detail"]
            assert [p for p in store.rglob("*") if p.is_file() and p.name != ".health-probe"] == []
            done = api.post(f"/api/files/{r.json()['artifact']['id']}/complete", json={})
            assert done.status_code == 409
            assert (
                api.get(f"/api/files/{r.json()['artifact']['id']}").json()["state"] == "uploading"
            )


async def test_declared_content_length_mismatch_is_refused_before_reading(client, admin_headers):
    grant = await _declare(client, admin_headers, "cl.bin", b"z" * 10)
    r = await client.put(path_of(grant["upload"]["url"]), content=b"z" * 12)
    assert r.status_code == 400 and "Content-Length" in r.json()["detail"]
    assert _files(client) == []


async def test_key_with_dot_dot_is_refused(client, admin_headers, tmp_path):
    secret = tmp_path / "data" / "storage" / "signing.key"
    assert secret.exists()
    store = client.app.state.object_store
    for bad in (
        "../storage/signing.key",
        "artifacts/../../storage/signing.key",
        "/etc/passwd",
        "a//b",
        "a/./b",
    ):
        with pytest.raises(BadRequest):
            check_key(bad)
        with pytest.raises(BadRequest):
            store.signer.get_url(bad, expires_s=60)
    for raw in (
        "/api/files/signed/artifacts/%2e%2e/%2e%2e/storage/signing.key?exp=9999999999&sig=00",
        "/api/files/signed/..%2Fstorage%2Fsigning.key?exp=9999999999&sig=00",
    ):
        r = await client.get(raw)
        assert r.status_code == 400, r.text
        assert "key" in r.json()["detail"]
    r = await client.post(
        "/api/files", json={"name": "a/../b", "size": 1, "sha256": sha(b"a")}, headers=admin_headers
    )
    assert r.status_code == 400


async def test_two_uploads_of_the_same_name_at_once(client, admin_headers):
    one, two = b"first writer", b"second writer"
    body = lambda d: {"name": "race/model.pt", "size": len(d), "sha256": sha(d)}  # noqa: E731
    r1, r2 = await asyncio.gather(
        client.post("/api/files", json=body(one), headers=admin_headers),
        client.post("/api/files", json=body(two), headers=admin_headers),
    )
    assert sorted([r1.status_code, r2.status_code]) == [201, 409], (r1.text, r2.text)
    winner, data = (r1, one) if r1.status_code == 201 else (r2, two)
    loser = r2 if winner is r1 else r1
    assert "exists or is being uploaded" in loser.json()["detail"]
    put = await client.put(path_of(winner.json()["upload"]["url"]), content=data)
    assert put.status_code == 201
    await client.post(
        f"/api/files/{winner.json()['artifact']['id']}/complete", json={}, headers=admin_headers
    )
    listed = (await client.get("/api/files", params={"q": "race/"}, headers=admin_headers)).json()[
        "items"
    ]
    assert [a["sha256"] for a in listed] == [sha(data)]


async def test_delete_owner_or_admin_and_nothing_left(client, admin_headers, member_headers):
    mine = await upload(client, member_headers, "mia/notes.txt", b"mia's notes")
    theirs = await upload(client, admin_headers, "admin/notes.txt", b"admin notes")
    r = await client.delete(f"/api/files/{theirs['id']}", headers=member_headers)
    assert r.status_code == 403
    link = (await client.get(f"/api/files/{mine['id']}/download", headers=member_headers)).json()[
        "url"
    ]
    assert (
        await client.delete(f"/api/files/{mine['id']}", headers=member_headers)
    ).status_code == 204
    assert (await client.get(f"/api/files/{mine['id']}", headers=member_headers)).status_code == 404
    assert (await client.get(path_of(link))).status_code == 404
    unfinished = await _declare(client, admin_headers, "half.bin", b"h" * 100)
    await client.put(
        path_of(unfinished["upload"]["url"]),
        content=b"h" * 50,
        headers={"Content-Range": "bytes 0-49/100"},
    )
    assert (
        await client.delete(f"/api/files/{theirs['id']}", headers=admin_headers)
    ).status_code == 204
    assert (
        await client.delete(f"/api/files/{unfinished['artifact']['id']}", headers=admin_headers)
    ).status_code == 204
    assert _files(client) == []
    assert (await client.get("/api/files", headers=admin_headers)).json()["items"] == []


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 1 MiB tmpfs mounted for the store: a real ENOSPC from the kernel (we run as root)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_disk_full_during_upload(settings, tiny_disk):
    full = msgspec.structs.replace(settings, storage_dir=str(tiny_disk))
    async with AsyncTestClient(app=create_app(full, components=[])) as client:
        headers = await login(client, "admin", full.admin_password)  # type: ignore[arg-type]
        data = b"D" * (3 * 1024 * 1024)
        grant = await _declare(client, headers, "too-big.bin", data)
        r = await client.put(path_of(grant["upload"]["url"]), content=data)
        assert r.status_code == 507, r.text
        assert "disk is full" in r.json()["detail"]
        assert [p for p in tiny_disk.rglob("*") if p.is_file()] == []
        small = await upload(client, headers, "fits.bin", b"fits")
        assert small["state"] == "ready"
