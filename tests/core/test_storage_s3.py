"""The s3 backend's protocol round-trips over real HTTP against ``moto_server`` on loopback.

moto does not check signatures or checksums (TESTING.md), so signature and expiry enforcement
is tested on the local backend; here: presigned PUT/GET, multipart with resume, size check at
completion (mismatch removed), delete, health, and the artifacts API on the s3 backend.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import boto3
import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from tests.conftest import free_port, login
from tests.core.storage_helpers import sha
from unidesk.core.app import create_app
from unidesk.core.storage.s3 import S3Store
from unidesk.errors import Conflict

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="k",
        aws_secret_access_key="s",
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            client.list_buckets()
            break
        except Exception:
            assert time.monotonic() < deadline and proc.poll() is None, "moto_server did not start"
            time.sleep(0.3)
    client.create_bucket(Bucket="unit-bucket")
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
async def store(moto):
    s = S3Store(
        bucket="unit-bucket",
        endpoint_url=moto,
        region="us-east-1",
        access_key_id="k",
        secret_access_key="s",
        multipart_threshold=6 * MIB,
        part_size=5 * MIB,
    )
    yield s
    await s.close()


async def test_presigned_put_get_stat_delete(store):
    data = b"dataset bytes\n" * 100
    plan = await store.plan_upload("artifacts/a1", size=len(data), sha256=sha(data), expires_s=60)
    assert plan.url and plan.upload_id is None and "x-amz-checksum-sha256" in plan.headers
    async with httpx.AsyncClient() as http:
        assert (await http.put(plan.url, content=data, headers=plan.headers)).status_code == 200
        stat = await store.complete_upload(
            "artifacts/a1", size=len(data), sha256=sha(data), upload_id=None, parts=[]
        )
        assert stat.size == len(data)
        url = await store.presign_get("artifacts/a1", expires_s=60, filename="a1.txt")
        got = await http.get(url)
        assert got.content == data and "a1.txt" in got.headers.get("content-disposition", "")
        part = await http.get(url, headers={"Range": "bytes=0-6"})
        assert part.status_code == 206 and part.content == data[:7]
    await store.delete("artifacts/a1")
    assert await store.stat("artifacts/a1") is None
    assert await store.check() is None


async def test_multipart_resumes_and_completes(store):
    data = bytes(range(256)) * (11 * MIB // 256 + 7)
    plan = await store.plan_upload("artifacts/big", size=len(data), sha256=sha(data), expires_s=60)
    assert (
        plan.upload_id
        and plan.part_size == 5 * MIB
        and [p.part_number for p in plan.parts] == [1, 2, 3]
    )
    async with httpx.AsyncClient(timeout=60) as http:
        first = plan.parts[0]
        assert (await http.put(first.url, content=data[: 5 * MIB])).status_code == 200
        again = await store.plan_upload(
            "artifacts/big",
            size=len(data),
            sha256=sha(data),
            expires_s=60,
            upload_id=plan.upload_id,
        )
        assert again.done_parts == [1] and [p.part_number for p in again.parts] == [2, 3]
        for p in again.parts:
            start = (p.part_number - 1) * 5 * MIB
            assert (await http.put(p.url, content=data[start : start + 5 * MIB])).status_code == 200
    stat = await store.complete_upload(
        "artifacts/big", size=len(data), sha256=sha(data), upload_id=plan.upload_id, parts=[]
    )
    assert stat.size == len(data)
    async with httpx.AsyncClient(timeout=60) as http:
        got = await http.get(await store.presign_get("artifacts/big", expires_s=60))
    assert hashlib.sha256(got.content).hexdigest() == sha(data)


async def test_size_mismatch_at_completion_is_removed(store):
    plan = await store.plan_upload(
        "artifacts/short", size=100, sha256=sha(b"x" * 100), expires_s=60
    )
    async with httpx.AsyncClient() as http:
        await http.put(plan.url, content=b"x" * 40, headers=plan.headers)
    with pytest.raises(Conflict) as exc:
        await store.complete_upload(
            "artifacts/short", size=100, sha256=sha(b"x" * 100), upload_id=None, parts=[]
        )
    assert exc.value.context.get("removed") is True
    assert await store.stat("artifacts/short") is None


async def test_missing_bucket_is_reported_by_health(moto):
    s = S3Store(
        bucket="no-such-bucket",
        endpoint_url=moto,
        region="us-east-1",
        access_key_id="k",
        secret_access_key="s",
        multipart_threshold=6 * MIB,
        part_size=5 * MIB,
    )
    assert "no-such-bucket" in (await s.check() or "")


async def test_artifacts_api_on_s3(settings, moto):
    s3 = msgspec.structs.replace(
        settings,
        storage_backend="s3",
        s3_endpoint_url=moto,
        s3_bucket="unit-bucket",
        s3_access_key_id="k",
        s3_secret_access_key="s",
    )
    async with AsyncTestClient(app=create_app(s3, components=[])) as client:
        headers = await login(client, "admin", s3.admin_password)  # type: ignore[arg-type]
        data = b"on s3"
        r = await client.post(
            "/api/files",
            json={"name": "s3/one.txt", "size": len(data), "sha256": sha(data)},
            headers=headers,
        )
        assert r.status_code == 201 and r.json()["artifact"]["backend"] == "s3"
        plan = r.json()["upload"]
        async with httpx.AsyncClient() as http:
            assert (
                await http.put(plan["url"], content=data, headers=plan["headers"])
            ).status_code == 200
            done = await client.post(
                f"/api/files/{r.json()['artifact']['id']}/complete", json={}, headers=headers
            )
            assert done.status_code == 200 and done.json()["state"] == "ready"
            link = (
                await client.get(
                    f"/api/files/{r.json()['artifact']['id']}/download", headers=headers
                )
            ).json()
            assert (await http.get(link["url"])).content == data
        assert (await client.get("/health")).json()["checks"]["storage"] == "ok"
        signed = await client.get("/api/files/signed/artifacts/x?exp=1&sig=00")
        assert signed.status_code == 404  # the local backend's routes are not served for s3
        assert (
            await client.delete(f"/api/files/{r.json()['artifact']['id']}", headers=headers)
        ).status_code == 204
        async with httpx.AsyncClient() as http:
            assert (await http.get(link["url"])).status_code in (
                403,
                404,
            )  # S3 answers 403 for a missing key
        assert (
            await client.app.state.object_store.stat(f"artifacts/{r.json()['artifact']['id']}")
            is None
        )
