"""The README's list of public routes is the auth middleware's: nothing public goes unlisted."""

from __future__ import annotations

import re
from pathlib import Path

from unidesk.core.app import create_app
from unidesk.core.auth.middleware import PUBLIC_PATHS
from unidesk.core.plugins.manager import make_plugin_manager
from unidesk.core.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def documented() -> list[str]:
    text = README.read_text()
    block = text.split("<!-- public-routes -->", 1)[1].split("<!-- /public-routes -->", 1)[0]
    return re.findall(r"^- `([^`]+)`", block, re.M)


UI_PATHS = {"/", "/{path:path}"}
"""The browser UI's handler: the README's ``/`` entry."""


def _covers(doc: str, path: str) -> bool:
    if doc == "/":
        return path in UI_PATHS
    return path in (doc, doc.rstrip("/")) or path.startswith(doc.rstrip("/") + "/")


def test_every_middleware_exclusion_is_documented_and_every_entry_is_public() -> None:
    docs = documented()
    assert "/metrics" in docs and "/api/files/signed/" in docs, docs
    for pattern in PUBLIC_PATHS:
        assert any(re.match(pattern, d) for d in docs), f"{pattern} is public but not in README"
    for d in docs:
        if d == "/":
            continue  # the UI handler opts out itself (checked below)
        assert any(re.match(p, d) for p in PUBLIC_PATHS), f"README lists {d}; the auth needs it"


def test_every_route_that_opts_out_of_auth_is_documented(settings: Settings) -> None:
    app = create_app(
        settings, components=[], plugins=make_plugin_manager("none", entry_points=False)
    )
    docs = documented()
    opted_out = {
        route.path
        for route in app.routes
        for handler in getattr(route, "route_handlers", None) or [route.route_handler]  # type: ignore[attr-defined]
        if handler.opt.get("exclude_from_auth")
    }
    assert "/api/agent/ws" in opted_out, opted_out
    undocumented = [p for p in sorted(opted_out) if not any(_covers(d, p) for d in docs)]
    assert undocumented == []
