"""Build the plugin manager: built-ins listed as data, then the ``unidesk.plugins`` entry points.

Each plugin loads atomically: import, register, ``check_pending()``, route-conflict check.
A plugin that fails any step is unregistered and its error recorded (``/health`` shows it);
the core and the other plugins go on without it. Nothing here runs at import time.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Iterable, Sequence
from typing import Any

import pluggy
import structlog

from unidesk.core import hookspecs

__all__ = [
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "LoadedPlugins",
    "installed_plugin_names",
    "make_plugin_manager",
    "parse_selection",
]

log = structlog.get_logger("unidesk.plugins")

BUILTIN_PLUGINS: tuple[str, ...] = (
    "unidesk.plugins.projects",
    "unidesk.plugins.research",
    "unidesk.plugins.pipelines",
)
ENTRY_POINT_GROUP = "unidesk.plugins"


def parse_selection(value: str | Sequence[str]) -> set[str] | None:
    """``"all"`` → None (everything); ``"none"``/``""`` → empty; ``"a,b"`` or a list → those
    names."""
    if isinstance(value, str):
        v = value.strip().lower()
        if v == "all":
            return None
        if v in ("", "none"):
            return set()
        return {p.strip() for p in value.split(",") if p.strip()}
    return set(value)


def installed_plugin_names() -> list[str]:
    """Names of every installed plugin, loaded or not (built-ins, then entry points); nothing is
    imported."""
    names = [m.rsplit(".", 1)[-1] for m in BUILTIN_PLUGINS]
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in names:
            names.append(ep.name)
    return names


class LoadedPlugins:
    """The manager plus what happened while loading (sources, versions, errors)."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.sources: dict[str, str] = {}
        self.versions: dict[str, str] = {}
        self.errors: dict[str, str] = {}

    def names(self) -> list[str]:
        return [n for n in self.sources if self.pm.get_plugin(n) is not None]


def _register(loaded: LoadedPlugins, name: str, obj: Any, source: str, version: str) -> None:
    pm = loaded.pm
    try:
        pm.register(obj, name=name)
        pm.check_pending()
    except Exception as exc:
        if pm.get_plugin(name) is not None:
            pm.unregister(name=name)
        loaded.errors[name] = f"plugin {name} ({source}) refused: {exc}"
        log.error("plugin refused", plugin=name, source=source, error=str(exc))
        return
    loaded.sources[name] = source
    loaded.versions[name] = version


def make_plugin_manager(
    selection: str | Sequence[str] = "all",
    *,
    builtins: Iterable[str] = BUILTIN_PLUGINS,
    extra: Iterable[tuple[str, Any]] = (),
    entry_points: bool = True,
) -> LoadedPlugins:
    """Load the selected plugins: ``builtins`` (module paths), ``extra`` (name, object) pairs
    handed in by tests, then the entry points of group ``unidesk.plugins``."""
    wanted = parse_selection(selection)
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    loaded = LoadedPlugins(pm)

    def selected(name: str) -> bool:
        return wanted is None or name in wanted

    import unidesk

    for module_path in builtins:
        name = module_path.rsplit(".", 1)[-1]
        if not selected(name):
            continue
        try:
            module = importlib.import_module(module_path)
        except Exception as exc:
            loaded.errors[name] = f"plugin {name} failed to import: {type(exc).__name__}: {exc}"
            log.error("plugin import failed", plugin=name, error=str(exc))
            continue
        _register(loaded, name, module, "builtin", unidesk.__version__)
    for name, obj in extra:
        if selected(name):
            _register(loaded, name, obj, "test", "0")
    if entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if not selected(ep.name) or ep.name in loaded.sources:
                continue
            try:
                obj = ep.load()
            except Exception as exc:
                loaded.errors[ep.name] = (
                    f"plugin {ep.name} failed to import: {type(exc).__name__}: {exc}"
                )
                log.error("plugin import failed", plugin=ep.name, error=str(exc))
                continue
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            _register(loaded, ep.name, obj, f"entrypoint:{dist}", version)
    if wanted:
        for missing in sorted(wanted - set(loaded.sources) - set(loaded.errors)):
            loaded.errors[missing] = f"plugin {missing} was selected but is not installed"
    return loaded
