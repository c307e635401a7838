"""The server's OpenAPI document built offline (core and every built-in plugin, no database)."""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ["openapi_document"]


def openapi_document() -> dict[str, Any]:
    """What ``GET /schema/openapi.json`` answers on a server with all built-in plugins and no
    third-party ones; building the app touches no database, so this needs none."""
    from unidesk.core.app import create_app
    from unidesk.core.plugins.manager import make_plugin_manager
    from unidesk.core.settings import load_settings

    settings = load_settings(environ={}, plugins="all", local_agent=False)
    app = create_app(
        settings, components=[], plugins=make_plugin_manager("all", entry_points=False)
    )
    return app.openapi_schema.to_schema()


if __name__ == "__main__":  # python -m unidesk.core.openapi_doc OUT.json (scripts/gen-api-types.sh)
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        json.dump(openapi_document(), out, indent=2, sort_keys=True)
        out.write("\n")
