"""Secrets: store, replace, delete and list (never read back), and resolve task references.

Scopes: a ``user`` secret is used only by its owner's tasks; a ``project`` secret by tasks of
the project's members (membership is asked of the plugins through ``unidesk_project_member``;
without a plugin that answers, project secrets are refused); a ``global`` secret (admins create
it) by any task. Every change is an event carrying the name, never the value.
"""

from __future__ import annotations

import builtins
import re
import uuid
from typing import Any

from sqlalchemy import delete, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.auth.schemas import Principal
from unidesk.core.events.writer import NewEvent, append
from unidesk.core.secrets.keyring import Keyring
from unidesk.core.secrets.models import SecretRow
from unidesk.core.secrets.schemas import NAME_PATTERN, Secret
from unidesk.errors import BadRequest, Forbidden, NotFound

__all__ = ["SecretService", "parse_ref", "secret_out"]

_NAME = re.compile(NAME_PATTERN)


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise BadRequest(
            f"secret name {name[:80]!r}: 1-128 of letters, digits, '_', '.', '-' "
            "(starting with a letter or digit)",
            field="name",
        )
    return name


def parse_ref(ref: str) -> tuple[str, str | None, str]:
    """``NAME`` → (``user``, None, NAME); ``global/NAME``; ``project:<id>/NAME``."""
    head, sep, name = ref.rpartition("/")
    check_name(name)
    if not sep:
        return "user", None, name
    if head == "global":
        return "global", None, name
    if head.startswith("project:") and _NAME.match(head[8:]):
        return "project", head[8:], name
    raise BadRequest(f"secret reference {ref[:120]!r}: NAME, global/NAME or project:<id>/NAME")


def scope_key(scope: str, *, owner_id: uuid.UUID | None = None, project: str | None = None) -> str:
    if scope == "user":
        return f"user:{owner_id}"
    if scope == "project":
        return f"project:{project}"
    return "global"


def ref_of(row: SecretRow) -> str:
    if row.scope == "user":
        return row.name
    if row.scope == "project":
        return f"project:{row.project}/{row.name}"
    return f"global/{row.name}"


def secret_out(row: SecretRow) -> Secret:
    return Secret(
        id=row.id,
        scope=row.scope,
        name=row.name,
        project=row.project,
        owner_id=row.owner_id,
        ref=ref_of(row),
        created_by=row.created_by,
        updated_by=row.updated_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SecretService:
    def __init__(
        self, session: AsyncSession, keyring: Keyring | None = None, plugins: Any = None
    ) -> None:
        self.s = session
        self.keyring = keyring
        self.plugins = plugins

    @classmethod
    def of(cls, session: AsyncSession, state: Any) -> SecretService:
        return cls(session, getattr(state, "keyring", None), getattr(state, "plugins", None))

    # -- permissions -------------------------------------------------------------------------

    async def is_member(self, project: str, user_id: uuid.UUID) -> bool:
        answer = (
            await self.plugins.project_member(self.s, project, user_id)
            if self.plugins is not None
            else None
        )
        if answer is None:
            raise BadRequest(
                "project secrets need a plugin that knows project membership (projects); "
                "none is loaded",
                field="project",
            )
        return bool(answer)

    async def _check_manage(self, scope: str, project: str | None, principal: Principal) -> None:
        if scope == "global" and not principal.is_admin:
            raise Forbidden("only an admin may create, replace or delete global secrets")
        # Asked even for admins: without a plugin that knows projects, project secrets are refused.
        if (
            scope == "project"
            and not await self.is_member(project or "", principal.user_id)
            and not principal.is_admin
        ):
            raise Forbidden(
                f"only members of project {project} (or an admin) manage its secrets",
                project=project,
            )

    # -- writes ------------------------------------------------------------------------------

    async def _lock(self) -> None:
        """Writers hold ROW EXCLUSIVE on ``secrets`` before sealing: ``rotate-key`` takes
        EXCLUSIVE, so a value is never sealed with a key the rotation is about to drop."""
        await self.s.execute(text("LOCK TABLE secrets IN ROW EXCLUSIVE MODE"))

    async def put(
        self, scope: str, name: str, value: str, principal: Principal, *, project: str | None = None
    ) -> tuple[Secret, bool]:
        """Create or replace a secret; returns it (metadata only) and whether it was created."""
        check_name(name)
        if project is not None:
            check_name(project)
        await self._check_manage(scope, project, principal)
        if self.keyring is None:
            raise BadRequest("the secret store is not configured on this server")
        key = scope_key(scope, owner_id=principal.user_id, project=project)
        await self._lock()
        row = await self.s.scalar(
            select(SecretRow)
            .where(SecretRow.scope_key == key, SecretRow.name == name)
            .with_for_update()
        )
        created = row is None
        identity = f"{key}/{name}"
        key_id, sealed = self.keyring.seal(value, identity)
        if row is None:
            row = SecretRow(
                id=uuid.uuid4(),
                scope=scope,
                scope_key=key,
                owner_id=principal.user_id if scope == "user" else None,
                project=project,
                name=name,
                key_id=key_id,
                sealed=sealed,
                created_by=principal.username,
                updated_by=principal.username,
            )
            self.s.add(row)
        else:
            row.key_id, row.sealed, row.updated_by = key_id, sealed, principal.username
            row.updated_at = await self.s.scalar(select(text("now()")))
        await self.s.flush()
        await append(
            self.s,
            NewEvent(
                kind="secret.created" if created else "secret.replaced",
                subject_type="secret",
                subject_id=str(row.id),
                actor=principal.actor,
                payload={"scope": scope, "project": project, "name": name},
            ),
        )
        await self.s.commit()
        await self.s.refresh(row)
        return secret_out(row), created

    async def _find(
        self, scope: str, name: str, principal: Principal, project: str | None
    ) -> SecretRow:
        key = scope_key(scope, owner_id=principal.user_id, project=project)
        row = await self.s.scalar(
            select(SecretRow).where(SecretRow.scope_key == key, SecretRow.name == name)
        )
        if row is None:
            raise NotFound(f"no {scope} secret named {name!r}", name=name)
        return row

    async def delete(
        self,
        principal: Principal,
        *,
        secret_id: uuid.UUID | None = None,
        scope: str = "user",
        name: str = "",
        project: str | None = None,
    ) -> None:
        if secret_id is not None:
            row = await self.s.get(SecretRow, secret_id)
            if row is None:
                raise NotFound(f"secret {secret_id} not found")
            if row.scope == "user" and row.owner_id != principal.user_id and not principal.is_admin:
                raise Forbidden("only its owner (or an admin) deletes a user secret")
        else:
            check_name(name)
            row = await self._find(scope, name, principal, project)
        await self._check_manage(row.scope, row.project, principal)
        await append(
            self.s,
            NewEvent(
                kind="secret.deleted",
                subject_type="secret",
                subject_id=str(row.id),
                actor=principal.actor,
                payload={"scope": row.scope, "project": row.project, "name": row.name},
            ),
        )
        await self.s.execute(delete(SecretRow).where(SecretRow.id == row.id))
        await self.s.commit()

    # -- reads (metadata only) ---------------------------------------------------------------

    async def list(self, principal: Principal) -> list[Secret]:
        """Admins see every secret's metadata; members their own, the global ones and those of
        their projects."""
        stmt = select(SecretRow).order_by(SecretRow.scope, SecretRow.project, SecretRow.name)
        if not principal.is_admin:
            stmt = stmt.where(
                or_(
                    SecretRow.owner_id == principal.user_id,
                    SecretRow.scope.in_(("global", "project")),
                )
            )
        rows = (await self.s.scalars(stmt)).all()
        out, member_of = [], {}
        for row in rows:
            if row.scope == "project" and not principal.is_admin:
                if row.project not in member_of:
                    try:
                        member_of[row.project] = await self.is_member(
                            row.project or "", principal.user_id
                        )
                    except BadRequest:
                        member_of[row.project] = False
                if not member_of[row.project]:
                    continue
            out.append(secret_out(row))
        return out

    # -- task references ---------------------------------------------------------------------

    async def resolve_ref(self, ref: str, principal: Principal, what: str) -> dict[str, str]:
        """Check that ``principal`` may use the secret ``ref``; returns ``{"ref", "id"}``."""
        scope, project, name = parse_ref(ref)
        row = None
        if scope == "user":
            row = await self.s.scalar(
                select(SecretRow).where(
                    SecretRow.scope_key == scope_key("user", owner_id=principal.user_id),
                    SecretRow.name == name,
                )
            )
            if row is None:
                scope = "global"
        if row is None:
            row = await self.s.scalar(
                select(SecretRow).where(
                    SecretRow.scope_key == scope_key(scope, project=project),
                    SecretRow.name == name,
                )
            )
        if row is None:
            other = await self.s.scalar(
                select(SecretRow.id).where(SecretRow.name == name, SecretRow.scope == "user")
            )
            if other is not None and parse_ref(ref)[0] == "user":
                raise Forbidden(
                    f"{what}: secret {ref!r} is not yours; a task may use only its submitter's "
                    "secrets, its projects' and the global ones",
                    field=what,
                )
            raise BadRequest(f"{what}: no secret {ref!r} you may use", field=what)
        if row.scope == "project" and not await self.is_member(
            row.project or "", principal.user_id
        ):
            raise Forbidden(
                f"{what}: secret {ref!r} belongs to project {row.project}, which you are not a "
                "member of",
                field=what,
            )
        return {"ref": ref, "id": str(row.id)}

    async def values(self, ids: builtins.list[str]) -> dict[str, str]:
        """Decrypted values by secret id (ids no longer stored are left out)."""
        if not ids or self.keyring is None:
            return {}
        wanted = [uuid.UUID(i) for i in ids]
        rows = (await self.s.scalars(select(SecretRow).where(SecretRow.id.in_(wanted)))).all()
        return {str(r.id): self.keyring.open(r.key_id, r.sealed, r.identity) for r in rows}
