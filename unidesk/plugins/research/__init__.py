"""Research plugin: experiments grouping runs with parameters, metrics from inside containers,
sweeps.

Loaded like a third-party plugin (``BUILTIN_PLUGINS``); every hook below is one ``@hookimpl``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unidesk.core.plugin_api import UiContribution, hookimpl

__all__ = [
    "unidesk_attempt_data",
    "unidesk_migrations",
    "unidesk_models",
    "unidesk_route_handlers",
    "unidesk_settings",
    "unidesk_task_extension_names",
    "unidesk_task_links",
    "unidesk_task_submitting",
    "unidesk_ui_contributions",
]


@hookimpl
def unidesk_route_handlers() -> list[Any]:
    from unidesk.plugins.research.controllers import ExperimentController, RunMetricsController

    return [ExperimentController, RunMetricsController]


@hookimpl
def unidesk_settings() -> type:
    from unidesk.plugins.research.settings import ResearchSettings

    return ResearchSettings


@hookimpl
def unidesk_models() -> list[type]:
    from unidesk.plugins.research.models import MODELS

    return MODELS


@hookimpl
def unidesk_migrations() -> list[str]:
    return [str(Path(__file__).parent / "migrations" / "versions")]


@hookimpl
def unidesk_ui_contributions() -> list[UiContribution]:
    return [
        UiContribution(
            id="experiments",
            label="Experiments",
            path="/experiments",
            page="research.experiments",
            icon="chart",
            order=30,
        )
    ]


@hookimpl
def unidesk_task_extension_names() -> list[str]:
    return ["research"]


@hookimpl
async def unidesk_task_submitting(
    session: Any, task_id: Any, extensions: dict[str, Any], principal: Any
) -> None:
    from unidesk.plugins.research.services import on_submit

    await on_submit(session, task_id, extensions, principal)


@hookimpl
async def unidesk_attempt_data(
    session: Any,
    task_id: Any,
    attempt_no: int,
    channel: str,
    seq: int,
    items: list[dict[str, Any]],
    skipped_lines: int,
    skipped_samples: list[str],
) -> bool | None:
    from unidesk.plugins.research.metrics import on_attempt_data

    return await on_attempt_data(
        session, task_id, attempt_no, channel, seq, items, skipped_lines, skipped_samples
    )


@hookimpl
async def unidesk_task_links(session: Any, task_id: Any) -> list[Any]:
    from unidesk.plugins.research.tasklinks import task_links

    return await task_links(session, task_id)
