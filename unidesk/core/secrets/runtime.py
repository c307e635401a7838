"""Wiring of the secret store into the server: the keyring, the dispatch extender, log masking."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar.datastructures import State
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk import protocol
from unidesk.core.secrets.keyring import Keyring, key_file_path
from unidesk.core.secrets.masks import AttemptMasks
from unidesk.core.secrets.models import SecretRow
from unidesk.core.secrets.services import SecretService
from unidesk.core.tasks.models import AttemptRow, TaskRow
from unidesk.errors import Unavailable

__all__ = ["attach_secrets", "install_keyring", "keyring_check", "resolve_into_dispatch"]

log = structlog.get_logger("unidesk.secrets")


def install_keyring(state: State) -> None:
    """``state.keyring`` (the key file is made on first start) and ``state.secret_masks``."""
    settings = state.settings
    state.keyring = Keyring(key_file_path(settings.secrets_key_file, settings.data_path))
    state.secret_masks = AttemptMasks(state.keyring)
    state.health_checks.register("secrets", keyring_check(state))


def keyring_check(state: State) -> Any:
    """Health: the key file is readable, and holds every key the stored secrets were sealed
    with (a lost or replaced key file makes them unreadable: say so, not only at use)."""

    async def check() -> str | None:
        try:
            state.keyring.reload()
        except Unavailable as exc:
            return exc.detail
        async with state.sessions() as s:
            used = set((await s.scalars(select(SecretRow.key_id).distinct())).all())
        lost = used - state.keyring.key_ids()
        if lost:
            return (
                f"secrets sealed with key(s) {', '.join(sorted(lost))} missing from "
                f"{state.keyring.path}: restore that key file from its backup"
            )
        return None

    return check


async def resolve_into_dispatch(
    session: AsyncSession, keyring: Keyring, task: TaskRow, dispatch: protocol.Dispatch
) -> protocol.Dispatch:
    """Put the values of the task's secret references into this attempt's Dispatch (only there)."""
    refs: dict[str, Any] = task.extra.get("secrets") or {}
    creds: dict[str, Any] = task.extra.get("credentials") or {}
    if not refs and not creds:
        return dispatch
    registries: dict[str, Any] = creds.get("registries") or {}
    ids = [r["id"] for r in refs.values()]
    ids += [creds[k]["id"] for k in ("code_repo", "env_repo", "known_hosts") if k in creds]
    ids += [r["id"] for r in registries.values()]
    try:
        values = await SecretService(session, keyring).values(ids)
    except Unavailable as exc:
        # One unreadable value must not stop delivery to every node: this attempt fails, named.
        log.error(
            "secrets of a dispatch cannot be decrypted", task_id=str(task.id), error=exc.detail
        )
        values = {}
    missing = sorted(
        {r["ref"] for r in [*refs.values(), *registries.values()] if r["id"] not in values}
        | {
            creds[k]["ref"]
            for k in ("code_repo", "env_repo", "known_hosts")
            if k in creds and creds[k]["id"] not in values
        }
    )

    def value(k: str) -> str:
        return values.get(creds[k]["id"], "") if k in creds else ""

    return msgspec.structs.replace(
        dispatch,
        secret_env={env: values[r["id"]] for env, r in refs.items() if r["id"] in values},
        code_repo_credential=value("code_repo"),
        env_repo_credential=value("env_repo"),
        git_known_hosts=value("known_hosts"),
        registry_auth={h: values[r["id"]] for h, r in registries.items() if r["id"] in values},
        missing_secrets=missing,
    )


def attach_secrets(state: State) -> None:
    """Component factory (after the ingress one): secrets into dispatches; starts nothing."""
    ingress = getattr(state, "ingress", None)
    if ingress is None:
        return

    async def extend(
        session: AsyncSession, task: TaskRow, attempt: AttemptRow, dispatch: protocol.Dispatch
    ) -> protocol.Dispatch:
        return await resolve_into_dispatch(session, state.keyring, task, dispatch)

    ingress.delivery.extenders.append(extend)
