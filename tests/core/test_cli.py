"""`unidesk-server` subcommands as separate processes against a real database URL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from tests.core.conftest import row_counts


def cli(
    database_url: str, data_dir: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIDESK_")}
    env.update(
        UNIDESK_DATABASE_URL=database_url, UNIDESK_DATA_DIR=str(data_dir), UNIDESK_LOG_FORMAT="json"
    )
    return subprocess.run(
        [sys.executable, "-m", "unidesk.core.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_node_token_create_list_revoke(pg_cluster: Any, tmp_path: Path) -> None:
    url = pg_cluster.fresh_database()
    created = cli(url, tmp_path, "node-token", "create", "gpu-box-1")
    assert created.returncode == 0, created.stderr
    secret = re.search(r"\budn_[A-Za-z0-9_-]{20,}", created.stdout).group(0)  # type: ignore[union-attr]
    token_id = re.search(r"node token ([0-9a-f-]{36})", created.stdout).group(1)  # type: ignore[union-attr]
    assert "unidesk-agent --server" in created.stdout
    assert secret not in created.stderr, "the secret goes to stdout once, never to the log"

    listed = cli(url, tmp_path, "node-token", "list")
    assert listed.returncode == 0, listed.stderr
    line = next(ln for ln in listed.stdout.splitlines() if token_id in ln)
    assert "active" in line and "gpu-box-1" in line and secret not in listed.stdout

    revoked = cli(url, tmp_path, "node-token", "revoke", token_id)
    assert revoked.returncode == 0, revoked.stderr
    line = next(
        ln for ln in cli(url, tmp_path, "node-token", "list").stdout.splitlines() if token_id in ln
    )
    assert "revoked" in line

    import psycopg

    from unidesk.core.db.engine import libpq_url

    with psycopg.connect(libpq_url(url)) as conn:
        rows = [str(r) for r in conn.execute("SELECT * FROM node_tokens")]
        kinds = [r[0] for r in conn.execute("SELECT kind FROM events ORDER BY id")]
    assert secret not in "".join(rows)
    assert kinds[-2:] == ["node_token.created", "node_token.revoked"]


def test_node_token_bad_input_is_a_message_not_a_traceback(pg_cluster: Any, tmp_path: Path) -> None:
    url = pg_cluster.fresh_database()
    before = row_counts(url)
    for args in (
        ("revoke", "not-a-uuid"),
        ("revoke", "00000000-0000-0000-0000-000000000000"),
        ("create", "n" * 200),
    ):
        out = cli(url, tmp_path, "node-token", *args)
        assert out.returncode == 1, (args, out.stderr)
        assert (
            out.stderr.splitlines()[-1].startswith("unidesk-server: ")
            and "Traceback" not in out.stderr
        ), out.stderr
    assert row_counts(url) == before


async def test_create_admin_from_stdin_then_log_in(
    client: AsyncTestClient, database_url: str, tmp_path: Path
) -> None:
    out = cli(
        database_url,
        tmp_path,
        "create-admin",
        "root2",
        "--password-stdin",
        stdin="a-long-enough-password\n",
    )
    assert out.returncode == 0, out.stderr
    assert "admin root2 created" in out.stdout
    assert "a-long-enough-password" not in out.stdout + out.stderr
    r = await client.post(
        "/api/auth/login", json={"username": "root2", "password": "a-long-enough-password"}
    )
    assert r.status_code == 200 and r.json()["user"]["role"] == "admin"
    client.cookies.clear()

    before = row_counts(database_url)
    again = cli(
        database_url,
        tmp_path,
        "create-admin",
        "root2",
        "--password-stdin",
        stdin="another-password\n",
    )
    assert again.returncode == 1 and "already exists" in again.stderr
    for name, pw in (
        ("root3", "short\n"),
        ("root3", "\n"),
        ("../evil", "a-long-enough-password\n"),
    ):
        bad = cli(database_url, tmp_path, "create-admin", name, "--password-stdin", stdin=pw)
        assert (
            bad.returncode == 1 and "invalid admin" in bad.stderr and "Traceback" not in bad.stderr
        ), bad.stderr
    assert row_counts(database_url) == before


def test_create_admin_on_a_fresh_empty_database_migrates_first(
    pg_cluster: Any, tmp_path: Path
) -> None:
    url = pg_cluster.empty_database()
    out = cli(
        url, tmp_path, "create-admin", "first", "--password-stdin", stdin="first-admin-password\n"
    )
    assert out.returncode == 0, out.stderr
    assert row_counts(url)["users"] == 1


def test_unknown_subcommand_is_a_usage_error(tmp_path: Path) -> None:
    out = cli("postgresql://unused@/x?host=/nonexistent", tmp_path, "frobnicate")
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_agent_entry_point_exists() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "unidesk.gateway_agent.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "--server" in out.stdout
