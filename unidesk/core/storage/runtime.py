"""Pick the object store from settings (the one factory) and hang it on the app state with its
health check."""

from __future__ import annotations

from pathlib import Path

from litestar.datastructures import State

from unidesk.core.settings import Settings
from unidesk.core.storage.local import LocalStore
from unidesk.core.storage.protocol import ObjectStore
from unidesk.core.storage.s3 import S3Store
from unidesk.core.storage.signing import Signer, load_signing_key

__all__ = ["install_storage", "make_store"]


def make_store(settings: Settings) -> ObjectStore:
    """``local`` (files under ``storage_dir``) or ``s3``, as ``settings.storage_backend`` says."""
    if settings.storage_backend == "s3":
        return S3Store(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
            multipart_threshold=settings.s3_multipart_threshold_bytes,
            part_size=settings.s3_part_size_bytes,
        )
    root = (
        Path(settings.storage_dir).expanduser().resolve()
        if settings.storage_dir
        else settings.data_path / "files"
    )
    signer = Signer(
        load_signing_key(settings.storage_signing_key, settings.data_path), settings.base_url
    )
    return LocalStore(root, signer)


def install_storage(state: State) -> None:
    """``state.object_store`` and the ``storage`` health check (the store answers and takes
    writes)."""
    store = make_store(state.settings)
    state.object_store = store
    state.health_checks.register("storage", store.check)
