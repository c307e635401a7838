"""The typed facade through which the core calls plugin hooks (never ``pm.hook`` from handlers).

Every call goes through pluggy, one plugin at a time (``pm.subset_hook_caller``): plugins in
registration order (built-ins, then entry points) with ``tryfirst``/``trylast`` ones moved
first/last; ``specname`` and a plugin's own wrappers apply, and a failure is attributed to the
plugin that raised (it is taken out and named on ``/health``). A wrapper therefore wraps only
its own plugin's implementations, not other plugins'.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pluggy
import structlog
from litestar import Router
from litestar.datastructures import State

from unidesk.core.plugins.listeners import PluginListener, PluginListeners
from unidesk.core.plugins.manager import LoadedPlugins
from unidesk.core.plugins.types import PluginInfo, PluginList, TaskLink, UiContribution
from unidesk.core.settings import Settings
from unidesk.errors import BadRequest

__all__ = ["LISTENER_TIMEOUT_S", "Plugins"]

log = structlog.get_logger("unidesk.plugins")
LISTENER_TIMEOUT_S = 10.0


class Plugins:
    def __init__(self, loaded: LoadedPlugins, *, enabled: bool = True) -> None:
        self.loaded = loaded
        self.pm = loaded.pm
        self.enabled = enabled

    # -- per-plugin calls, so one plugin's failure is attributed to it ------------------------
    def callers(self, hook: str) -> Iterator[tuple[str, pluggy.HookCaller]]:
        """``(plugin name, caller of only that plugin's implementations)`` for ``hook``:
        ``tryfirst`` implementations first, then the plain ones in registration order (built-ins,
        then entry points), ``trylast`` ones last."""
        impls = [
            i
            for i in getattr(self.pm.hook, hook).get_hookimpls()
            if not (i.hookwrapper or i.wrapper)
        ]
        first = [i for i in reversed(impls) if i.tryfirst]
        last = [i for i in reversed(impls) if i.trylast]
        plain = [i for i in impls if not (i.tryfirst or i.trylast)]
        order: list[str] = []
        for impl in [*first, *plain, *last]:
            if impl.plugin_name not in order:
                order.append(impl.plugin_name)
        plugins = dict(self.pm.list_name_plugin())
        for name in order:
            if name in self.loaded.errors or name not in plugins:
                continue
            others = [p for n, p in plugins.items() if n != name]
            yield name, self.pm.subset_hook_caller(hook, remove_plugins=others)

    def _each(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Each plugin's results (None results left out), in pluggy's order."""
        out = []
        for name, call in self.callers(hook):
            try:
                results = call(**kwargs)
            except Exception as exc:
                self.fail(name, f"{hook} raised {type(exc).__name__}: {exc}")
                continue
            out += [(name, r) for r in results]
        return out

    def fail(self, name: str, why: str) -> None:
        """Take a plugin out: record why (shown on /health) and stop calling it."""
        self.loaded.errors[name] = f"plugin {name}: {why}"
        log.error("plugin failed", plugin=name, why=why)
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)

    @property
    def errors(self) -> list[str]:
        return list(self.loaded.errors.values())

    # -- registration -----------------------------------------------------------------------
    def routers(self, core_routes: set[tuple[str, str]]) -> list[Router]:
        """One router per plugin; a plugin whose route another already claims is refused."""
        claimed = dict.fromkeys(core_routes, "core")
        routers = []
        for name, handlers in self._each("unidesk_route_handlers"):
            try:
                router = Router(path="/", route_handlers=list(handlers or []))
            except Exception as exc:
                self.fail(name, f"bad route handlers: {exc}")
                continue
            mine = {(r.path, m) for r in router.routes for m in getattr(r, "methods", {"WS"})}
            clash = sorted(k for k in mine if k in claimed)
            if clash:
                path, method = clash[0]
                self.fail(
                    name, f"route {method} {path} is already claimed by {claimed[(path, method)]}"
                )
                continue
            claimed.update(dict.fromkeys(mine, name))
            routers.append(router)
        return routers

    def settings_structs(self) -> list[tuple[str, type[msgspec.Struct]]]:
        """``(plugin name, settings struct)`` of each loaded plugin that declares settings."""
        out = []
        for name, struct in self._each("unidesk_settings"):
            if not (isinstance(struct, type) and issubclass(struct, msgspec.Struct)):
                self.fail(name, f"unidesk_settings returned {struct!r}, not a msgspec.Struct class")
                continue
            out.append((name, struct))
        return out

    def settings(self, settings: Settings) -> dict[type, msgspec.Struct]:
        """Each loaded plugin's settings, validated from ``settings.plugin_values`` (TOML) and
        ``settings.plugin_env`` (env, wins), keyed by struct class. A bad value or an unknown
        TOML key under a plugin's prefix takes that plugin out; unknown env vars are ignored."""
        out: dict[type, msgspec.Struct] = {}
        structs = dict(self.settings_structs())
        for name in self.loaded.names():
            prefix = f"{name}_"
            struct = structs.get(name)
            fields = set(struct.__struct_fields__) if struct else set()
            unknown = sorted(
                k
                for k in settings.plugin_values
                if k.startswith(prefix) and k[len(prefix) :] not in fields
            )
            if unknown:
                self.fail(name, f"unknown setting {unknown[0]!r}")
                continue
            if struct is None:
                continue
            values = {
                f: source[prefix + f]
                for source in (settings.plugin_values, settings.plugin_env)
                for f in fields
                if prefix + f in source
            }
            try:
                out[struct] = msgspec.convert(values, struct, strict=False)
            except msgspec.ValidationError as exc:
                self.fail(name, f"invalid setting: {exc} (keys {prefix}<field>)")
        return out

    def import_models(self) -> None:
        self._each("unidesk_models")

    def migration_dirs(self) -> list[Path]:
        dirs = []
        for name, paths in self._each("unidesk_migrations"):
            for p in paths or []:
                if not Path(p).is_dir():
                    self.fail(name, f"migrations directory {p} does not exist")
                    break
                dirs.append(Path(p))
        return dirs

    def ui(self) -> list[UiContribution]:
        items: list[UiContribution] = []
        for name, contributions in self._each("unidesk_ui_contributions"):
            items += [UiContribution(**{**_asdict(c), "plugin": name}) for c in contributions or []]
        return sorted(items, key=lambda c: (c.order, c.label))

    def task_extension_names(self) -> dict[str, str]:
        return {
            ext: name
            for name, exts in self._each("unidesk_task_extension_names")
            for ext in exts or []
        }

    # -- runtime ----------------------------------------------------------------------------
    async def startup(self, state: State) -> None:
        for name, result in self._each("unidesk_startup", state=state):
            if inspect.isawaitable(result):
                try:
                    await result
                except Exception as exc:
                    self.fail(name, f"startup raised {type(exc).__name__}: {exc}")

    def event_listeners(self, state: State) -> PluginListeners:
        """The plugins' event listeners, each plugin on its own queue and task (see
        ``listeners.py``); the app registers it on the hub after the core's listeners."""
        by_plugin: dict[str, list[PluginListener]] = {}
        for name, listeners in self._each("unidesk_event_listeners"):
            by_plugin.setdefault(name, []).extend(listeners or [])
        return PluginListeners(
            by_plugin,
            state,
            timeout_s=LISTENER_TIMEOUT_S,
            active=lambda name: name not in self.loaded.errors,
        )

    async def task_submitting(
        self, session: Any, task_id: Any, extensions: dict[str, Any], principal: Any
    ) -> None:
        known = self.task_extension_names()
        unknown = sorted(set(extensions) - set(known))
        if unknown:
            raise BadRequest(
                f"extensions: no loaded plugin handles {', '.join(unknown)}", field="extensions"
            )
        for _name, call in self.callers("unidesk_task_submitting"):
            for result in call(
                session=session, task_id=task_id, extensions=extensions, principal=principal
            ):
                await result

    async def task_account(
        self, session: Any, extensions: dict[str, Any], principal: Any
    ) -> list[tuple[str, str]]:
        """(plugin, account) for each plugin that names the account of a task with
        ``extensions``."""
        out: list[tuple[str, str]] = []
        for name, call in self.callers("unidesk_task_account"):
            for result in call(session=session, extensions=extensions, principal=principal):
                account = await result
                if account is not None:
                    out.append((name, account))
        return out

    async def attempt_data(
        self,
        session: Any,
        task_id: Any,
        attempt_no: int,
        channel: str,
        seq: int,
        items: list[dict[str, Any]],
        skipped_lines: int = 0,
        skipped_samples: list[str] | None = None,
    ) -> list[str]:
        """Hand a batch of attempt data to every plugin; returns the names of those that took it."""
        handled = []
        for name, call in self.callers("unidesk_attempt_data"):
            for result in call(
                session=session,
                task_id=task_id,
                attempt_no=attempt_no,
                channel=channel,
                seq=seq,
                items=items,
                skipped_lines=skipped_lines,
                skipped_samples=skipped_samples or [],
            ):
                if await result and name not in handled:
                    handled.append(name)
        return handled

    async def project_member(self, session: Any, project: str, user_id: Any) -> bool | None:
        """The first plugin's answer to "is this user a member of this project" (None: no plugin
        knows)."""
        for _name, call in self.callers("unidesk_project_member"):
            for result in call(session=session, project=project, user_id=user_id):
                answer = await result
                if answer is not None:
                    return bool(answer)
        return None

    async def task_links(self, session: Any, task_id: Any) -> list[TaskLink]:
        """Every loaded plugin's links of a task (``plugin`` filled in); a plugin that raises is
        logged and left out."""
        out: list[TaskLink] = []
        for name, call in self.callers("unidesk_task_links"):
            for result in call(session=session, task_id=task_id):
                try:
                    links = await result
                except Exception as exc:
                    log.error("task links failed", plugin=name, error=str(exc))
                    continue
                out += [msgspec.structs.replace(link, plugin=name) for link in links or []]
        return out

    def info(self) -> PluginList:
        items = []
        for name in self.loaded.names():
            plugin = self.pm.get_plugin(name)
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            items.append(
                PluginInfo(
                    name=name,
                    version=self.loaded.versions.get(name, "?"),
                    source=self.loaded.sources[name],
                    hooks=hooks,
                    ui=[c for c in self.ui() if c.plugin == name],
                )
            )
        return PluginList(enabled=self.enabled, items=items, errors=self.errors)


def _asdict(c: Any) -> dict[str, Any]:
    import msgspec

    return msgspec.structs.asdict(c) if isinstance(c, msgspec.Struct) else dict(c)
