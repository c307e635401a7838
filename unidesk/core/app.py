"""The app factory: ``create_app(settings)`` builds the Litestar app; nothing happens at import."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import structlog
from litestar import Litestar
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

import unidesk
from unidesk.core.auth.controllers import (
    ApiTokenController,
    AuthController,
    NodeTokenController,
    UserController,
)
from unidesk.core.auth.middleware import PUBLIC_PATHS, AuthMiddleware
from unidesk.core.auth.principal_cache import PrincipalCache
from unidesk.core.auth.ratelimit import WindowLimiter
from unidesk.core.auth.schemas import UserCreate
from unidesk.core.auth.services import UserService
from unidesk.core.db.bootstrap import DatabaseHandle, open_database
from unidesk.core.db.engine import make_engine, make_read_engine, make_sessionmaker
from unidesk.core.db.migrate import expected_heads, known_revisions
from unidesk.core.db.readcache import ReadCache, ReadCacheMiddleware, WriteCounter
from unidesk.core.db.reads import Reads
from unidesk.core.deps import DEPENDENCIES
from unidesk.core.events.controllers import EventController
from unidesk.core.events.hub import EventHub
from unidesk.core.git.controllers import GitController
from unidesk.core.ingress.handler import agent_socket
from unidesk.core.logs.controllers import LogController
from unidesk.core.nodes.controllers import NodeController
from unidesk.core.nodes.maintenance_api import request_maintenance
from unidesk.core.nodes.samples_api import node_samples
from unidesk.core.nul_guard import NulGuardMiddleware
from unidesk.core.ops import health as health_mod
from unidesk.core.ops.backup_schedule import backup_check
from unidesk.core.ops.metrics import metrics
from unidesk.core.ops.readiness import ready
from unidesk.core.ops.stats import stats
from unidesk.core.plugins.controllers import list_plugins
from unidesk.core.plugins.facade import Plugins
from unidesk.core.plugins.manager import LoadedPlugins, make_plugin_manager, parse_selection
from unidesk.core.problems import EXCEPTION_HANDLERS, declare_problems
from unidesk.core.requestid import RequestIdMiddleware
from unidesk.core.scheduler.accounts import AccountController
from unidesk.core.scheduler.controllers import QuotaController, UsageController
from unidesk.core.secrets.controllers import SecretController
from unidesk.core.secrets.runtime import attach_secrets, install_keyring
from unidesk.core.settings import Settings
from unidesk.core.storage.agent_api import AgentOutputController
from unidesk.core.storage.controllers import ArtifactController
from unidesk.core.storage.runtime import install_storage
from unidesk.core.storage.signed_routes import signed_files
from unidesk.core.storage.taskfiles import attach_file_urls
from unidesk.core.tasks.controllers import TaskBatchController, TaskController
from unidesk.core.tasks.links_api import task_links
from unidesk.core.tasks.submitqueue import SubmitQueue
from unidesk.core.webui import serve_ui
from unidesk.errors import Conflict

__all__ = ["COMPONENT_FACTORIES", "Component", "create_app"]

log = structlog.get_logger("unidesk.app")
SHUTDOWN_STEP_S = 20.0


class Component(Protocol):
    """A long-running part of the server (scheduler, sweeper, local agent …) started with the
    app."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def _ingress(state: State) -> Any:
    from unidesk.core.ingress.runtime import IngressRuntime

    state.ingress = IngressRuntime(state)
    return state.ingress


def _scheduler(state: State) -> Any:
    from unidesk.core.scheduler.service import Scheduler

    scheduler = Scheduler(state.sessions, state.settings)
    state.event_hub.add_listener("scheduler", scheduler.on_events)
    state.scheduler_wake = scheduler.wake
    state.scheduler_wake_submitted = scheduler.wake_submitted
    state.scheduler = scheduler
    state.submit_queue.scheduler = scheduler  # judges single submits in their transaction
    ingress = getattr(state, "ingress", None)
    if ingress is not None:
        scheduler.on_assigned = ingress.delivery.deliver_assigned
    return scheduler


def _backup_schedule(state: State) -> Any:
    if not state.settings.backup_daily_at:
        return None
    from unidesk.core.ops.backup_schedule import BackupSchedule

    state.components["backup"] = BackupSchedule(state)
    return state.components["backup"]


def _local_agent(state: State) -> Any:
    if not state.settings.local_agent:
        return None
    from unidesk.core.localagent import LocalAgent

    return LocalAgent(state)


COMPONENT_FACTORIES: list[Any] = [
    _ingress,
    attach_file_urls,
    attach_secrets,
    _scheduler,
    _backup_schedule,
    _local_agent,
]
"""Callables ``(state) -> Component | None`` run at startup, in order. Tests pass their own list."""


async def _ensure_first_admin(state: State, settings: Settings) -> None:
    if not settings.admin_password:
        return
    async with state.sessions() as s:
        if await UserService(s).any_admin():
            return
        try:
            await UserService(s).create(
                UserCreate(
                    username=settings.admin_username,
                    password=settings.admin_password,
                    role="admin",
                ),
                actor="system:first-start",
            )
        except Conflict:  # another worker or replica starting at the same moment made it
            return
        log.info("first admin created", username=settings.admin_username)


def create_app(
    settings: Settings,
    *,
    extra_route_handlers: Sequence[Any] = (),
    components: Sequence[Any] | None = None,
    plugins: LoadedPlugins | None = None,
    migrate: bool = True,
    write_counter: WriteCounter | None = None,
) -> Litestar:
    """Build the server. Its lifespan opens (or starts) the database, migrates, and starts
    components.

    ``plugins`` defaults to the built-ins and entry points chosen by ``settings.plugins``;
    ``migrate=False`` when a supervisor has already migrated (``serve --workers``), which also
    passes the ``write_counter`` its workers share (the read cache's; one of its own otherwise)."""
    counter = write_counter or WriteCounter()
    loaded = plugins if plugins is not None else make_plugin_manager(settings.plugins)
    facade = Plugins(loaded, enabled=parse_selection(settings.plugins) != set())
    plugin_settings = facade.settings(settings)
    facade.import_models()
    plugin_dirs = facade.migration_dirs()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        state = app.state
        db: DatabaseHandle = await open_database(settings, migrate=migrate, plugin_dirs=plugin_dirs)
        state.db_handle = db
        state.engine = make_engine(db.url, settings.db_pool_size)
        state.sessions = make_sessionmaker(state.engine, on_commit=counter.bump)
        state.submit_queue = SubmitQueue(state.sessions)
        state.reads = Reads(make_read_engine(db.url, settings.db_pool_size))
        state.expected_heads = expected_heads(db.url, plugin_dirs)
        state.known_revisions = known_revisions(db.url, plugin_dirs)
        state.event_hub = EventHub(
            db.dsn,
            state.sessions,
            on_notify=counter.bump,
            keepalive_s=settings.event_stream_keepalive_s,
            reads=state.reads,
        )
        state.event_hub.add_listener("principal_cache", state.principal_cache.on_events)
        await state.event_hub.start()
        checks = state.health_checks
        checks.register("database", health_mod.database_check(state))
        checks.register("migrations", health_mod.migrations_check(state))
        install_storage(state)
        install_keyring(state)

        async def event_stream() -> str | None:
            return state.event_hub.error

        checks.register("event_stream", event_stream)

        async def plugin_load() -> str | None:
            return "; ".join(facade.errors) or None

        checks.register("plugins", plugin_load)
        checks.register("backup", backup_check(state))
        await _ensure_first_admin(state, settings)
        await facade.startup(state)
        started: list[Any] = []
        try:
            for factory in COMPONENT_FACTORIES if components is None else components:
                component = factory(state)
                if component is not None:
                    await component.start()
                    started.append(component)
            # After the core's listeners (delivery, scheduler), each plugin on its own task.
            plugin_listeners = facade.event_listeners(state)
            await plugin_listeners.start()
            started.append(plugin_listeners)
            state.event_hub.add_listener("plugins", plugin_listeners.on_events)
            log.info(
                "server ready", url=settings.base_url, version=unidesk.__version__, pid=os.getpid()
            )
            yield
        finally:
            # Every step is bounded so one stuck part cannot hang the shutdown of the rest.
            for component in reversed(started):
                try:
                    await asyncio.wait_for(component.stop(), SHUTDOWN_STEP_S)
                except Exception as exc:
                    log.warning(
                        "component did not stop cleanly",
                        component=getattr(component, "name", "?"),
                        error=repr(exc),
                    )
            await state.event_hub.stop()
            try:
                await asyncio.wait_for(state.reads.engine.dispose(), SHUTDOWN_STEP_S)
                await asyncio.wait_for(state.engine.dispose(), SHUTDOWN_STEP_S)
            except Exception as exc:
                log.warning("database pool did not close cleanly", error=repr(exc))
            db.close()

    state = State(
        {
            "settings": settings,
            "login_limiter": WindowLimiter(
                settings.login_max_failures,
                settings.login_window_s,
                "too many failed logins; try again later",
            ),
            "git_resolve_limiter": WindowLimiter(
                settings.git_resolve_per_user,
                settings.git_resolve_window_s,
                "too many git resolves; try again later",
            ),
            "principal_cache": PrincipalCache(settings.auth_cache_s),
            "read_cache": ReadCache(
                counter,
                enabled=lambda: state.get("event_hub") is not None and state.event_hub.healthy,
            ),
            "health_checks": health_mod.HealthChecks(),
            "git_commit": health_mod.git_commit(),
            "components": {},
            "scheduler_wake": lambda: None,
            "scheduler_wake_submitted": lambda: None,
            "plugins": facade,
            "plugin_settings": plugin_settings,
        }
    )
    app = Litestar(
        route_handlers=[
            health_mod.health,
            AuthController,
            UserController,
            ApiTokenController,
            NodeTokenController,
            TaskController,
            TaskBatchController,
            GitController,
            SecretController,
            NodeController,
            QuotaController,
            AccountController,
            UsageController,
            EventController,
            LogController,
            node_samples,
            task_links,
            stats,
            list_plugins,
            agent_socket,
            ArtifactController,
            AgentOutputController,
            signed_files,
            ready,
            metrics,
            request_maintenance,
            *extra_route_handlers,
            serve_ui,
        ],
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            RequestIdMiddleware,
            DefineMiddleware(NulGuardMiddleware, max_body_bytes=settings.max_request_bytes),
            DefineMiddleware(AuthMiddleware, exclude=PUBLIC_PATHS),
            ReadCacheMiddleware,
        ],
        lifespan=[lifespan],
        state=state,
        request_max_body_size=settings.max_request_bytes,
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title="UniDesk",
            version=unidesk.__version__,
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(
                        type="http", scheme="bearer", description="Personal API token (udk_…)"
                    ),
                    "session": SecurityScheme(
                        type="apiKey", name="unidesk_session", security_scheme_in="cookie"
                    ),
                }
            ),
            security=[{"bearer": []}, {"session": []}],
        ),
        debug=False,
    )
    core_routes = {(r.path, m) for r in app.routes for m in getattr(r, "methods", {"WS"})}
    for router in facade.routers(core_routes):
        app.register(router)
    declare_problems(app)
    return app
