"""Pipelines plugin: named DAGs of steps (task specs with depends_on, conditions, matrices),
files flowing between steps as artifacts, all moved by events.

Loaded like a third-party plugin (``BUILTIN_PLUGINS``); every hook below is one ``@hookimpl``.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from unidesk.core.plugin_api import UiContribution, hookimpl

__all__ = [
    "unidesk_cli_commands",
    "unidesk_event_listeners",
    "unidesk_migrations",
    "unidesk_models",
    "unidesk_route_handlers",
    "unidesk_settings",
    "unidesk_startup",
    "unidesk_task_links",
    "unidesk_ui_contributions",
]


@hookimpl
def unidesk_route_handlers() -> list[Any]:
    from unidesk.plugins.pipelines.controllers import PipelineController

    return [PipelineController]


@hookimpl
def unidesk_settings() -> type:
    from unidesk.plugins.pipelines.settings import PipelinesSettings

    return PipelinesSettings


@hookimpl
def unidesk_models() -> list[type]:
    from unidesk.plugins.pipelines.models import MODELS

    return MODELS


@hookimpl
def unidesk_migrations() -> list[str]:
    return [str(Path(__file__).parent / "migrations" / "versions")]


@hookimpl
def unidesk_ui_contributions() -> list[UiContribution]:
    return [
        UiContribution(
            id="pipelines",
            label="Pipelines",
            path="/pipelines",
            page="pipelines.list",
            icon="pipeline",
            order=25,
        )
    ]


@hookimpl
def unidesk_cli_commands(subparsers: Any) -> None:
    from unidesk.plugins.pipelines.cli import add_commands

    add_commands(subparsers)


@hookimpl
def unidesk_startup(state: Any) -> Any:
    from unidesk.plugins.pipelines.engine import reconcile

    return reconcile(state)


@hookimpl
def unidesk_event_listeners() -> list[Any]:
    from unidesk.plugins.pipelines.engine import follow_task_events

    return [follow_task_events]


@hookimpl
async def unidesk_task_links(session: Any, task_id: uuid.UUID) -> list[Any]:
    from unidesk.plugins.pipelines.links import task_links

    return await task_links(session, task_id)
