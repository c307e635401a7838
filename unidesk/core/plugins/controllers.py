"""GET /api/plugins: what is loaded, what it contributes, and what failed."""

from __future__ import annotations

from litestar import get
from litestar.datastructures import State

from unidesk.core.plugins.facade import Plugins
from unidesk.core.plugins.types import PluginList

__all__ = ["list_plugins"]


@get("/api/plugins", operation_id="list_plugins", tags=["plugins"])
async def list_plugins(state: State) -> PluginList:
    """Loaded plugins with their hooks and UI contributions, plus load errors."""
    plugins: Plugins = state.plugins
    return plugins.info()
