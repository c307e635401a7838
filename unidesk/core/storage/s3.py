"""The ``s3`` backend: any S3-compatible service (MinIO, Ceph RGW, AWS) through boto3.

Presigned GET/PUT (SigV4) for whole objects; objects above ``multipart_threshold`` are put
as multipart uploads with one presigned URL per part, assembled by ``complete_upload``.
Network calls of boto3 run in threads; presigning is local computation.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import time
from typing import Any

import boto3
from botocore.client import Config
from botocore.exceptions import BotoCoreError, ClientError

from unidesk.core.storage.disposition import attachment
from unidesk.core.storage.protocol import ObjectStat, PartUrl, UploadPlan, check_key
from unidesk.errors import Conflict, Unavailable

__all__ = ["S3Store"]


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Store:
    backend = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None,
        region: str,
        access_key_id: str | None,
        secret_access_key: str | None,
        multipart_threshold: int,
        part_size: int,
    ) -> None:
        self.bucket = bucket
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
            ),
        )

    async def _call(self, name: str, **kw: Any) -> Any:
        try:
            return await asyncio.to_thread(getattr(self._client, name), **kw)
        except (BotoCoreError, ClientError) as exc:
            if isinstance(exc, ClientError) and _code(exc) in (
                "404",
                "NoSuchKey",
                "NoSuchUpload",
                "NotFound",
            ):
                raise
            raise Unavailable(f"object store: {name} failed: {str(exc)[:200]}") from None

    def _presign(self, op: str, expires_s: int, **params: Any) -> str:
        return str(
            self._client.generate_presigned_url(
                op, Params={"Bucket": self.bucket, **params}, ExpiresIn=expires_s
            )
        )

    async def presign_get(self, key: str, *, expires_s: int, filename: str | None = None) -> str:
        params: dict[str, Any] = {"Key": check_key(key)}
        if filename:
            params["ResponseContentDisposition"] = attachment(filename)
        return self._presign("get_object", expires_s, **params)

    async def plan_upload(
        self, key: str, *, size: int, sha256: str, expires_s: int, upload_id: str | None = None
    ) -> UploadPlan:
        check_key(key)
        exp = time.time() + expires_s
        if size <= self.multipart_threshold and upload_id is None:
            checksum = base64.b64encode(bytes.fromhex(sha256)).decode()
            url = self._presign("put_object", expires_s, Key=key, ChecksumSHA256=checksum)
            return UploadPlan(url=url, headers={"x-amz-checksum-sha256": checksum}, expires_at=exp)
        if upload_id is None:
            created = await self._call("create_multipart_upload", Bucket=self.bucket, Key=key)
            upload_id = str(created["UploadId"])
        done = await self._done_parts(key, upload_id)
        count = max(1, math.ceil(size / self.part_size))
        parts = [
            PartUrl(
                part_number=n,
                url=self._presign(
                    "upload_part", expires_s, Key=key, UploadId=upload_id, PartNumber=n
                ),
            )
            for n in range(1, count + 1)
            if n not in done
        ]
        return UploadPlan(
            upload_id=upload_id,
            part_size=self.part_size,
            parts=parts,
            done_parts=sorted(done),
            expires_at=exp,
        )

    async def _done_parts(self, key: str, upload_id: str) -> dict[int, str]:
        try:
            listed = await self._call("list_parts", Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError:
            raise Conflict(
                "the multipart upload no longer exists; start the upload again"
            ) from None
        return {int(p["PartNumber"]): str(p["ETag"]) for p in listed.get("Parts", [])}

    async def complete_upload(
        self,
        key: str,
        *,
        size: int,
        sha256: str,
        upload_id: str | None,
        parts: list[tuple[int, str]],
    ) -> ObjectStat:
        if upload_id is not None:
            if not parts:
                parts = sorted((await self._done_parts(key, upload_id)).items())
            try:
                await self._call(
                    "complete_multipart_upload",
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={
                        "Parts": [{"PartNumber": n, "ETag": e} for n, e in sorted(parts)]
                    },
                )
            except ClientError as exc:
                raise Conflict(f"the store refused to assemble the parts: {_code(exc)}") from None
        stat = await self.stat(key)
        if stat is None:
            raise Conflict("the upload is not complete: the store holds no object for it yet")
        if stat.size != size:
            await self.delete(key)
            raise Conflict(
                f"stored object has {stat.size} bytes, {size} were declared; removed", removed=True
            )
        return stat

    async def abort_upload(self, key: str, *, upload_id: str | None) -> None:
        if upload_id is None:
            return
        with contextlib.suppress(ClientError):
            await self._call(
                "abort_multipart_upload", Bucket=self.bucket, Key=key, UploadId=upload_id
            )

    async def stat(self, key: str) -> ObjectStat | None:
        try:
            head = await self._call("head_object", Bucket=self.bucket, Key=check_key(key))
        except ClientError:
            return None
        return ObjectStat(size=int(head["ContentLength"]), etag=str(head.get("ETag", "")))

    async def delete(self, key: str) -> None:
        with contextlib.suppress(ClientError):
            await self._call("delete_object", Bucket=self.bucket, Key=check_key(key))

    async def check(self) -> str | None:
        try:
            await self._call("head_bucket", Bucket=self.bucket)
        except (Unavailable, ClientError) as exc:
            return f"s3 bucket {self.bucket!r} unreachable: {getattr(exc, 'detail', exc)}"
        return None

    async def close(self) -> None:
        self._client.close()
