"""Serves the built browser UI (unidesk/web_dist) at / with a single-page-app fallback."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from litestar import Response, get
from litestar.response import File

__all__ = ["WEB_DIST", "serve_ui"]

WEB_DIST = Path(__file__).resolve().parents[1] / "web_dist"

_NOT_BUILT = """<!doctype html><title>UniDesk</title><h1>UniDesk UI is not built</h1>
<p>Run <code>scripts/setup.sh --server</code> (it builds <code>web/</code> into
<code>unidesk/web_dist</code>),
or use the API at <a href="/schema">/schema</a>.</p>"""


@get(["/", "/{path:path}"], include_in_schema=False, exclude_from_auth=True, sync_to_thread=False)
def serve_ui(path: str = "") -> Response[bytes] | File:
    """Static asset if it exists, else index.html (client-side routes)."""
    path = path.lstrip("/")  # Litestar hands the path parameter over with its leading slash
    if path.startswith("api/") or path == "api":
        return Response(
            b'{"status":404,"title":"Not found","detail":"no such API route"}',
            status_code=404,
            media_type="application/problem+json",
        )
    index = WEB_DIST / "index.html"
    if not index.exists():
        return Response(_NOT_BUILT.encode(), status_code=503, media_type="text/html")
    if path:
        candidate = (WEB_DIST / path).resolve()
        if candidate.is_file() and WEB_DIST in candidate.parents:
            media, _ = mimetypes.guess_type(candidate.name)
            headers = (
                {"Cache-Control": "public, max-age=31536000, immutable"}
                if "/assets/" in f"/{path}"
                else {}
            )
            return File(
                candidate,
                media_type=media or "application/octet-stream",
                headers=headers,
                content_disposition_type="inline",
            )
    return File(
        index,
        media_type="text/html",
        headers={"Cache-Control": "no-cache"},
        content_disposition_type="inline",
    )
