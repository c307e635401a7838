"""Helpers for the core tests: a valid task body and row counts that prove "nothing changed"."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from unidesk.core.db.engine import libpq_url

SHA_A = "a" * 40
SHA_B = "b" * 64
COUNTED_TABLES = ("tasks", "task_attempts", "events", "users", "api_tokens", "node_tokens", "nodes")


def task_body(**overrides: Any) -> dict[str, Any]:
    """A task submission the API accepts; override fields to make it bad."""
    body: dict[str, Any] = {
        "name": "train-small",
        "code_repo_url": "https://git.example.org/lab/code.git",
        "code_commit_id": SHA_A,
        "env_repo_url": "ssh://git@git.example.org/lab/env.git",
        "env_commit_id": SHA_B,
        "dockerfile_path": "docker/Dockerfile",
        "command": ["python", "train.py", "--epochs", "1"],
        "env": {"SEED": "1"},
        "resources": {"cpus": 1, "memory_mb": 256, "gpus": 0, "labels": {}},
    }
    body.update(overrides)
    return body


def row_counts(database_url: str) -> dict[str, int]:
    """Rows in every core table (and the events high-water mark), to compare before/after a
    request."""
    with psycopg.connect(libpq_url(database_url)) as conn:
        counts = {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COUNTED_TABLES
        }  # type: ignore[index]
        counts["max_event_id"] = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[
            0
        ]  # type: ignore[index]
    return counts


@pytest.fixture
def counts(database_url: str) -> Any:
    """``counts()`` returns the current row counts of the test's database."""
    return lambda: row_counts(database_url)
