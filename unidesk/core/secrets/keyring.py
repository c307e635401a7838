"""The secret store's encryption keys: AES-GCM keys kept in a key file outside the database.

The key file (``secrets_key_file``, default ``<data_dir>/secrets.key``, mode 0600, made on first
start) holds one key per line as ``<key id> <base64 key>``; the first line is the current key
(new values are encrypted with it), the others are older keys still readable during a rotation.
Each stored value records the id of the key that sealed it and is bound to its secret's identity
(AES-GCM associated data), so a ciphertext copied onto another secret's row does not decrypt.
A pg_dump never contains the key: back the file up separately; losing it makes every secret
unreadable.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from unidesk.errors import Unavailable

__all__ = ["Keyring", "key_file_path"]

_NONCE = 12


def key_file_path(configured: str, data_dir: Path) -> Path:
    """The configured key file, else ``<data_dir>/secrets.key``."""
    return Path(configured).expanduser().resolve() if configured else data_dir / "secrets.key"


def _new_line() -> str:
    key_id = secrets.token_hex(4)
    return f"{key_id} {base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


def _write(path: Path, lines: list[str]) -> None:
    """Replace the key file atomically; the new file is mode 0600 from its creation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class Keyring:
    """Seals and opens values with the keys of one key file (re-read when a key is missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: dict[str, AESGCM] = {}
        self.current_id = ""
        if not path.exists():
            _write(path, [_new_line()])
        self.reload()

    def key_ids(self) -> set[str]:
        return set(self._keys)

    def reload(self) -> None:
        try:
            text = self.path.read_text()
        except OSError as exc:
            raise Unavailable(
                f"secret key file {self.path} is unreadable: {exc.strerror}"
            ) from None
        keys: dict[str, AESGCM] = {}
        first = ""
        for line in text.splitlines():
            if not line.strip():
                continue
            key_id, _, raw = line.strip().partition(" ")
            try:
                keys[key_id] = AESGCM(base64.b64decode(raw, validate=True))
            except ValueError:
                raise Unavailable(f"secret key file {self.path} has a malformed line") from None
            first = first or key_id
        if not keys:
            raise Unavailable(f"secret key file {self.path} holds no key")
        self._keys, self.current_id = keys, first

    def seal(self, value: str, identity: str) -> tuple[str, bytes]:
        """Encrypt ``value`` for the secret ``identity`` with the file's current key (re-read now,
        so a rotation in another process is seen); returns (key id, nonce + ciphertext)."""
        self.reload()
        nonce = os.urandom(_NONCE)
        sealed = self._keys[self.current_id].encrypt(nonce, value.encode(), identity.encode())
        return self.current_id, nonce + sealed

    def open(self, key_id: str, blob: bytes, identity: str) -> str:
        if key_id not in self._keys:
            self.reload()  # another process (rotate-key) may have changed the file
        key = self._keys.get(key_id)
        if key is None:
            raise Unavailable(
                f"secret was sealed with key {key_id}, which is not in {self.path}; "
                "restore that key file from its backup"
            )
        try:
            return key.decrypt(blob[:_NONCE], blob[_NONCE:], identity.encode()).decode()
        except InvalidTag:
            raise Unavailable(
                f"a stored secret does not decrypt with key {key_id} "
                "(wrong key file or tampered row)"
            ) from None

    def add_current(self) -> str:
        """Put a new key first in the file (old ones stay readable); returns its id."""
        lines = [line for line in self.path.read_text().splitlines() if line.strip()]
        line = _new_line()
        _write(self.path, [line, *lines])
        self.reload()
        return line.split(" ", 1)[0]

    def keep_only_current(self) -> None:
        """Drop every key but the current one (after every value was re-sealed with it)."""
        lines = [line for line in self.path.read_text().splitlines() if line.strip()]
        _write(self.path, lines[:1])
        self.reload()
