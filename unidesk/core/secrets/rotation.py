"""Key rotation: re-seal every secret under a new key, safely while servers keep running.

Steps: (1) a new key is put first in the key file (older keys stay, so every value still opens);
(2) in one transaction holding an EXCLUSIVE lock on ``secrets`` (servers' writers wait: they take
ROW EXCLUSIVE, then re-read the key file and seal with its first key), every value not sealed
with the new key is opened and sealed again, and a ``secrets.key_rotated`` event is written;
(3) after commit, the older keys are dropped from the file. A crash before (3) leaves the old
keys in the file (harmless; run the command again).
"""

from __future__ import annotations

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unidesk.core.events.writer import NewEvent, append
from unidesk.core.secrets.keyring import Keyring
from unidesk.core.secrets.models import SecretRow

__all__ = ["rotate_key"]


async def rotate_key(
    sessions: async_sessionmaker[AsyncSession], keyring: Keyring, *, actor: str
) -> tuple[str, int]:
    """Returns the new key id and how many secrets were re-sealed."""
    new_id = keyring.add_current()
    async with sessions() as s:
        await s.execute(text("LOCK TABLE secrets IN EXCLUSIVE MODE"))
        rows = (await s.scalars(select(SecretRow).where(SecretRow.key_id != new_id))).all()
        for row in rows:
            value = keyring.open(row.key_id, row.sealed, row.identity)
            key_id, sealed = keyring.seal(value, row.identity)
            await s.execute(
                update(SecretRow).where(SecretRow.id == row.id).values(key_id=key_id, sealed=sealed)
            )
        await append(
            s,
            NewEvent(
                kind="secrets.key_rotated",
                subject_type="secret_store",
                subject_id="keyring",
                actor=actor,
                payload={"key_id": new_id, "resealed": len(rows)},
            ),
        )
        await s.commit()
    keyring.keep_only_current()
    return new_id, len(rows)
