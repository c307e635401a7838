"""``unidesk-server``: serve (default), migrate, create-admin, node-token, settings, backup,
restore."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import secrets
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from unidesk.core.ops.backup_cli import add_backup_parsers, run_backup_command
from unidesk.core.settings import Settings, load_settings, settings_reference
from unidesk.errors import BadRequest, UnideskError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="unidesk-server", description="UniDesk main server (API, scheduler, ingress, UI)."
    )
    p.add_argument(
        "--config", help="TOML settings file (env UNIDESK_CONFIG); UNIDESK_* env vars override it"
    )
    sub = p.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the server (default)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--no-local-agent", action="store_true", help="do not run this machine as a compute node"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="server processes sharing the port and the database (0: one per CPU; default 1)",
    )
    sub.add_parser("migrate", help="apply database migrations and exit")
    ca = sub.add_parser("create-admin", help="create an admin user")
    ca.add_argument("username")
    ca.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from stdin instead of prompting",
    )
    nt = sub.add_parser("node-token", help="manage node tokens")
    nts = nt.add_subparsers(dest="action", required=True)
    c = nts.add_parser("create", help="issue a token (the secret is printed once)")
    c.add_argument("name")
    nts.add_parser("list", help="list tokens")
    r = nts.add_parser("revoke", help="revoke a token")
    r.add_argument("token_id")
    sub.add_parser(
        "settings", help="print every setting (the core's and loaded plugins') with its default"
    )
    sec = sub.add_parser("secrets", help="the secret store's key")
    secs = sec.add_subparsers(dest="action", required=True)
    secs.add_parser(
        "rotate-key",
        help="re-encrypt every secret under a new key (safe while servers run; "
        "back the new key file up afterwards)",
    )
    add_backup_parsers(sub)
    return p


def _with_db(settings: Settings, fn: Callable[[Any], Awaitable[int]]) -> int:
    from unidesk.core.db.bootstrap import open_database
    from unidesk.core.db.engine import make_engine, make_sessionmaker
    from unidesk.core.plugins.facade import Plugins
    from unidesk.core.plugins.manager import make_plugin_manager, parse_selection

    # The same schema the server keeps: core plus the selected plugins' migration branches.
    plugin_dirs = Plugins(
        make_plugin_manager(settings.plugins), enabled=parse_selection(settings.plugins) != set()
    ).migration_dirs()

    async def run() -> int:
        handle = await open_database(settings, plugin_dirs=plugin_dirs)
        engine = make_engine(handle.url, 2)
        try:
            return await fn(make_sessionmaker(engine))
        finally:
            await engine.dispose()
            handle.close()

    return asyncio.run(run())


def _create_admin(settings: Settings, username: str, password_stdin: bool) -> int:
    import msgspec

    from unidesk.core.auth.schemas import UserCreate
    from unidesk.core.auth.services import UserService

    password = (
        sys.stdin.readline().rstrip("\r\n")
        if password_stdin
        else getpass.getpass(f"password for {username}: ")
    )
    try:  # the same rules as the API (constructing the Struct directly would skip them)
        data = msgspec.convert(
            {"username": username, "password": password, "role": "admin"}, UserCreate
        )
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid admin: {exc}") from None

    async def go(sessions: Any) -> int:
        async with sessions() as s:
            user = await UserService(s).create(data, actor="cli:create-admin")
        print(f"admin {user.username} created ({user.id})")
        return 0

    return _with_db(settings, go)


def _node_token(settings: Settings, args: argparse.Namespace) -> int:
    import uuid

    from unidesk.core.auth.services import NodeTokenService

    async def go(sessions: Any) -> int:
        async with sessions() as s:
            svc = NodeTokenService(s)
            if args.action == "create":
                if not 1 <= len(args.name) <= 128:
                    raise BadRequest("node token name: 1 to 128 characters")
                created = await svc.create(args.name, actor="cli:node-token", created_by=None)
                print(
                    f"node token {created.token.id} ({created.token.name}); the secret is shown "
                    "only now:"
                )
                print(created.secret)
                print(
                    f"\nstart a node with:\n  unidesk-agent --server {settings.base_url} --token "
                    f"{created.secret}"
                )
            elif args.action == "list":
                for t in await svc.list():
                    state = "revoked" if t.revoked_at else "active"
                    print(f"{t.id}  {t.prefix}…  {state:8}  {t.name}")
            else:
                try:
                    token_id = uuid.UUID(args.token_id)
                except ValueError:
                    raise BadRequest(f"not a token id: {args.token_id[:64]!r}") from None
                await svc.revoke(token_id, actor="cli:node-token")
                print(f"revoked {args.token_id}")
        return 0

    return _with_db(settings, go)


def _secrets(settings: Settings, args: argparse.Namespace) -> int:
    from unidesk.core.secrets.keyring import Keyring, key_file_path
    from unidesk.core.secrets.rotation import rotate_key

    keyring = Keyring(key_file_path(settings.secrets_key_file, settings.data_path))

    async def go(sessions: Any) -> int:
        key_id, count = await rotate_key(sessions, keyring, actor="cli:secrets")
        print(f"new secret key {key_id} in {keyring.path}; {count} secret(s) re-encrypted")
        print("back this key file up now: the old key is gone from it")
        return 0

    return _with_db(settings, go)


def _first_admin_password(settings: Settings) -> Settings:
    """On a first start with no admin configured, generate a password and keep it in the data
    dir."""
    import msgspec

    if settings.admin_password:
        return settings
    path = settings.data_path / "initial-admin-password"
    if path.exists():
        password = path.read_text().strip()
    else:
        settings.data_path.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(12)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(password + "\n")
    return msgspec.structs.replace(settings, admin_password=password)


def _login_hint(settings: Settings, *, configured: bool) -> str:
    """The start banner: where the first admin's password is (the generated file only when
    there is one; else the configured ``admin_password``)."""
    where = (
        "the configured admin_password (UNIDESK_ADMIN_PASSWORD)"
        if configured
        else f"the password in {settings.data_path / 'initial-admin-password'}"
    )
    return (
        f"\n  UniDesk is starting at {settings.base_url}\n"
        f"  log in as '{settings.admin_username}' with {where}\n"
        f"  (only used when no admin exists yet; change it under Admin → Users)\n"
    )


def _serve(settings: Settings, workers: int = 1) -> int:
    from unidesk.core import shutdown
    from unidesk.core.app import create_app
    from unidesk.core.gctune import tune_gc
    from unidesk.core.workers import UVICORN_OPTIONS, serve_workers

    configured = bool(settings.admin_password)
    settings = _first_admin_password(settings)
    print(_login_hint(settings, configured=configured), file=sys.stderr, flush=True)
    tune_gc()
    if workers != 1:
        return serve_workers(settings, workers or os.cpu_count() or 1)
    shutdown.run(create_app(settings), host=settings.host, port=settings.port, **UVICORN_OPTIONS)
    return 0


def _plugin_settings(settings: Settings) -> list[tuple[str, type[msgspec.Struct]]]:
    """The settings structs of the plugins ``settings.plugins`` selects."""
    from unidesk.core.plugins.facade import Plugins
    from unidesk.core.plugins.manager import make_plugin_manager

    return Plugins(make_plugin_manager(settings.plugins)).settings_structs()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides: dict[str, Any] = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    if getattr(args, "no_local_agent", False):
        overrides["local_agent"] = False
    try:
        settings = load_settings(args.config, **overrides)
    except (UnideskError, OSError) as exc:
        print(f"unidesk-server: {exc}", file=sys.stderr)
        return 2
    from unidesk.core.logging import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    command = args.command or "serve"
    try:
        if command == "serve":
            workers = getattr(args, "workers", 1)
            if not 0 <= workers <= 64:
                raise BadRequest("--workers: 0 (one per CPU) to 64")
            return _serve(settings, workers)
        if command == "migrate":
            return _with_db(settings, lambda _s: asyncio.sleep(0, 0))
        if command == "create-admin":
            return _create_admin(settings, args.username, args.password_stdin)
        if command == "node-token":
            return _node_token(settings, args)
        if command == "secrets":
            return _secrets(settings, args)
        if command in ("backup", "restore"):
            return run_backup_command(settings, args)
        if command == "settings":
            print(settings_reference(_plugin_settings(settings)))
            return 0
    except UnideskError as exc:
        print(f"unidesk-server: {exc.detail}", file=sys.stderr)
        return 1
    except Exception as exc:
        from sqlalchemy.exc import DBAPIError

        if not isinstance(exc, DBAPIError):
            raise
        first_line = str(exc.orig or exc).strip().splitlines()[0]
        print(f"unidesk-server: database error: {first_line}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
