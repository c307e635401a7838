"""Where the CLI finds its server and API token: ``UNIDESK_SERVER``/``UNIDESK_TOKEN`` over the
config file."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

import msgspec

__all__ = ["ClientSettings", "NotLoggedIn", "config_path", "load_settings", "save_settings"]


class NotLoggedIn(Exception):
    """No server or token is configured."""


class ClientSettings(msgspec.Struct, kw_only=True):
    server: str
    token: str

    def __repr__(self) -> str:
        return f"ClientSettings(server={self.server!r}, token='[redacted]')"


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$UNIDESK_CLI_CONFIG``, else ``$XDG_CONFIG_HOME/unidesk/config.toml``, else
    ``~/.config/unidesk/config.toml``."""
    env = os.environ if env is None else env
    if env.get("UNIDESK_CLI_CONFIG"):
        return Path(env["UNIDESK_CLI_CONFIG"]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "unidesk" / "config.toml"


def load_settings(env: Mapping[str, str] | None = None) -> ClientSettings:
    """Environment variables override the file; raises ``NotLoggedIn`` when either is missing."""
    env = os.environ if env is None else env
    stored: dict[str, object] = {}
    path = config_path(env)
    if path.exists():
        try:
            stored = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise NotLoggedIn(f"cannot read {path}: {exc}") from None
    server = env.get("UNIDESK_SERVER") or str(stored.get("server") or "")
    token = env.get("UNIDESK_TOKEN") or str(stored.get("token") or "")
    if not server or not token:
        raise NotLoggedIn(
            "not logged in: run `unidesk login --server URL --token TOKEN` "
            "or set UNIDESK_SERVER and UNIDESK_TOKEN"
        )
    return ClientSettings(server=server.rstrip("/"), token=token)


def save_settings(settings: ClientSettings, env: Mapping[str, str] | None = None) -> Path:
    """Write the config file readable by its owner only (0600), replacing any previous one."""
    path = config_path(env)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        # JSON string escapes are valid TOML basic strings.
        fh.write(f"server = {json.dumps(settings.server)}\ntoken = {json.dumps(settings.token)}\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path
