"""Project management plugin: projects, work items with dependencies, Gantt, runs linked to items.

Loaded like a third-party plugin (``BUILTIN_PLUGINS``); every hook below is one ``@hookimpl``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unidesk.core.plugin_api import UiContribution, hookimpl

__all__ = [
    "unidesk_cli_commands",
    "unidesk_event_listeners",
    "unidesk_migrations",
    "unidesk_models",
    "unidesk_route_handlers",
    "unidesk_startup",
    "unidesk_task_account",
    "unidesk_task_extension_names",
    "unidesk_task_links",
    "unidesk_task_submitting",
    "unidesk_ui_contributions",
]


@hookimpl
def unidesk_route_handlers() -> list[Any]:
    from unidesk.plugins.projects.controllers import ProjectController, WorkItemController

    return [ProjectController, WorkItemController]


@hookimpl
def unidesk_models() -> list[type]:
    from unidesk.plugins.projects.models import MODELS

    return MODELS


@hookimpl
def unidesk_migrations() -> list[str]:
    return [str(Path(__file__).parent / "migrations" / "versions")]


@hookimpl
def unidesk_ui_contributions() -> list[UiContribution]:
    return [
        UiContribution(
            id="projects",
            label="Projects",
            path="/projects",
            page="projects.list",
            icon="gantt",
            order=20,
        )
    ]


@hookimpl
def unidesk_cli_commands(subparsers: Any) -> None:
    from unidesk.plugins.projects.cli import add_commands

    add_commands(subparsers)


@hookimpl
def unidesk_startup(state: Any) -> Any:
    from unidesk.plugins.projects.links import resync_links

    return resync_links(state)


@hookimpl
def unidesk_event_listeners() -> list[Any]:
    from unidesk.plugins.projects.links import follow_task_states

    return [follow_task_states]


@hookimpl
def unidesk_task_extension_names() -> list[str]:
    return ["projects"]


@hookimpl
async def unidesk_task_submitting(
    session: Any, task_id: Any, extensions: dict[str, Any], principal: Any
) -> None:
    from unidesk.plugins.projects.links import on_submit

    await on_submit(session, task_id, extensions, principal)


@hookimpl
async def unidesk_task_account(
    session: Any, extensions: dict[str, Any], principal: Any
) -> str | None:
    from unidesk.plugins.projects.links import account_of

    return await account_of(session, extensions)


@hookimpl
async def unidesk_project_member(session: Any, project: str, user_id: Any) -> bool | None:
    import uuid

    from unidesk.plugins.projects.models import Member

    try:
        project_id = uuid.UUID(project)
    except ValueError:
        return False
    return await session.get(Member, (project_id, user_id)) is not None


@hookimpl
async def unidesk_task_links(session: Any, task_id: Any) -> list[Any]:
    from unidesk.plugins.projects.tasklinks import task_links

    return await task_links(session, task_id)
