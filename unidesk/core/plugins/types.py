"""Shapes plugins hand to the core."""

from __future__ import annotations

import msgspec

__all__ = ["PluginInfo", "PluginList", "TaskLink", "UiContribution"]


class UiContribution(msgspec.Struct, kw_only=True, frozen=True):
    """A navigation entry (and the page it opens) in the browser UI.

    ``page`` names a page component the UI bundle registers for the plugin (built-in plugins
    ship theirs in ``web/src/plugins/``); ``script`` optionally names an extra ES module URL
    a third-party plugin serves from its own routes, loaded on demand."""

    id: str
    label: str
    path: str
    page: str
    plugin: str = ""
    icon: str = ""
    order: int = 100
    script: str | None = None


class TaskLink(msgspec.Struct, kw_only=True, frozen=True):
    """A page of a plugin a task belongs to (its pipeline step, its work item), shown on the
    task page: ``label`` is the words, ``path`` the UI path it opens."""

    label: str
    path: str
    plugin: str = ""


class PluginInfo(msgspec.Struct, kw_only=True):
    name: str
    version: str
    source: str  # "builtin" or "entrypoint:<dist>"
    hooks: list[str]
    ui: list[UiContribution]


class PluginList(msgspec.Struct, kw_only=True):
    enabled: bool
    items: list[PluginInfo]
    errors: list[str]
