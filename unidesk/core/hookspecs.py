"""Hook specifications: everything a UniDesk plugin can contribute, grouped by lifecycle.

A plugin is a module or object with functions marked ``@hookimpl`` named after these specs.
Unless a spec says otherwise, every implementation is called and the results (lists) are
concatenated in registration order (built-ins first, then entry points; ``tryfirst`` and
``trylast`` implementations go first and last). The core calls hooks only through
``unidesk.core.plugins.facade.Plugins``, one plugin at a time, so a plugin whose hook raises
is taken out and named on ``/health`` while the others go on; see ``docs/plugins.md``.
Plugins import what they need from ``unidesk.core.plugin_api``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import argparse
    import uuid

    import msgspec
    from litestar.datastructures import State
    from sqlalchemy.ext.asyncio import AsyncSession

    from unidesk.core.auth.schemas import Principal
    from unidesk.core.plugins.types import TaskLink, UiContribution

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "unidesk"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ---- registration: what the plugin brings ------------------------------------------------


@hookspec
def unidesk_route_handlers() -> list[Any]:
    """Litestar controllers or route handlers to mount. Results are concatenated.

    Paths should live under ``/api/<plugin name>/``. A plugin claiming a route the core or an
    earlier plugin already has is refused (taken out, the clash named on ``/health``); the
    server starts without it."""


@hookspec
def unidesk_models() -> list[type]:
    """SQLAlchemy model classes (on ``unidesk.core.db.base.Base``) the plugin owns. Concatenated.

    Importing them registers their tables in the shared metadata; their schema is created by
    the plugin's own Alembic branch (see ``unidesk_migrations``)."""


@hookspec
def unidesk_migrations() -> list[str]:
    """Absolute paths of Alembic version directories, each holding ONE branch whose label is
    the plugin's name and whose root revision ``depends_on`` "0001_core". Concatenated.
    Only loaded plugins' branches are migrated, so a disabled plugin's tables are untouched."""


@hookspec
def unidesk_ui_contributions() -> list[UiContribution]:
    """Navigation entries and pages for the browser UI (served to it by ``GET /api/plugins``).
    Concatenated; the UI shows only what loaded plugins contribute."""


@hookspec
def unidesk_cli_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add subcommands to the ``unidesk`` user CLI's argparse ``subparsers``. Each parser must
    ``set_defaults(func=callable(args, api) -> int)``. All implementations are called."""


@hookspec
def unidesk_settings() -> type[msgspec.Struct] | None:
    """The plugin's settings: a ``msgspec.Struct`` class whose fields all have defaults (annotate
    them ``Annotated[T, msgspec.Meta(description=...)]`` to document them). Each plugin returns at
    most one; the core collects one per plugin.

    Field ``f`` of plugin ``name`` is set by TOML key ``<name>_<f>`` or env var
    ``UNIDESK_<NAME>_<F>`` (env wins), validated by msgspec when the plugin loads; an invalid
    value, or a TOML key under the plugin's prefix naming no field, takes the plugin out (named on
    ``/health``). Unknown env vars are ignored, as the core's are. The plugin reads its values
    with ``plugin_api.plugin_settings(state, TheStruct)``; ``unidesk-server settings`` lists
    them."""


# ---- runtime: what the plugin does ----------------------------------------------------------


@hookspec
def unidesk_startup(state: State) -> Any:
    """Called once after the database is ready and before requests are served; may return an
    awaitable. An exception here fails plugin loading visibly (``/health`` says which plugin)."""


@hookspec
def unidesk_event_listeners() -> list[Any]:
    """Async callables ``(events: list[EventOut], state: PluginState) -> None`` called after each
    batch of events commits, in order, after the core's own listeners. Concatenated. Each plugin
    has its own queue and task: a slow listener delays only its plugin's later batches. A
    listener that raises or runs past ``LISTENER_TIMEOUT_S`` is logged and isolated: the core
    and the other plugins go on."""


@hookspec
def unidesk_task_extension_names() -> list[str]:
    """Keys this plugin accepts in ``TaskCreate.extensions`` (e.g. ``"projects"``). Concatenated.
    A submission naming an extension no loaded plugin declares is refused with 400."""


@hookspec
async def unidesk_task_submitting(
    session: AsyncSession, task_id: Any, extensions: dict[str, Any], principal: Principal
) -> None:
    """Validate and act on the task's ``extensions`` inside the submit transaction, before commit.
    Raise ``unidesk.errors.BadRequest`` (or another UnideskError) to refuse the whole submission:
    nothing is written. All implementations are awaited in order."""


@hookspec
async def unidesk_task_account(
    session: AsyncSession, extensions: dict[str, Any], principal: Principal
) -> str | None:
    """The account a task submitted with these ``extensions`` is charged to (fair share, quotas,
    usage), e.g. the project of the work item it is linked to; None when this plugin has no say.
    Called before the task row is written. All implementations are awaited; the non-None
    answers must agree with each other and with an explicit ``TaskCreate.account`` (else 400).
    The answer must match ``unidesk.core.tasks.models.ACCOUNT_PATTERN``."""


@hookspec
async def unidesk_attempt_data(
    session: AsyncSession,
    task_id: uuid.UUID,
    attempt_no: int,
    channel: str,
    seq: int,
    items: list[dict[str, Any]],
    skipped_lines: int,
    skipped_samples: list[str],
) -> bool | None:
    """A batch of data an attempt wrote from inside its container (e.g. ``channel="metrics"``: the
    JSON lines of ``$UNIDESK_METRICS_FILE``), forwarded by the agent as ``AttemptData``.

    ``items`` are the decoded JSON objects, unvalidated. ``skipped_lines`` counts the lines the
    agent skipped as malformed since the previous batch (0 from older agents), and
    ``skipped_samples`` shows a few of them (``"line 7: not JSON (…): <text>"``, untrusted text);
    a batch may carry only those. Called inside the report transaction;
    return True when this plugin handles ``channel`` (others return None). ``seq`` numbers the
    batches of one ``(task, attempt, channel)``: a batch may arrive again after a reconnect, so
    implementations must be idempotent per seq. Raising ``UnideskError`` refuses the batch (it is
    logged and acknowledged, never retried); any other exception rolls the batch back and the
    agent resends it later. All implementations are awaited in order."""


@hookspec
async def unidesk_task_links(session: AsyncSession, task_id: uuid.UUID) -> list[TaskLink]:
    """Pages of this plugin the task belongs to (``TaskLink(label, path)``; e.g. "Pipeline exp-1
    · step train" → ``/pipelines/<id>``), listed on the task page by ``GET
    /api/tasks/{id}/links``. Concatenated; an empty list when the task is none of this plugin's.
    Called in a read-only session; an exception leaves this plugin's links out (logged)."""


@hookspec
async def unidesk_project_member(
    session: AsyncSession, project: str, user_id: uuid.UUID
) -> bool | None:
    """Whether ``user_id`` is a member of ``project`` (the id the plugin gives its projects).
    Used by the secret store for ``project:<id>/NAME`` secrets. Return True or False when this
    plugin owns projects, None otherwise. The first implementation that answers (not None) wins;
    with none, project secrets are refused."""
