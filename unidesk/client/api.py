"""A thin httpx client for the UniDesk API that turns problem+json answers into ``ApiError``."""

from __future__ import annotations

from typing import Any

import httpx

from unidesk import __version__

__all__ = ["ApiClient", "ApiError"]


class ApiError(Exception):
    """The server answered with an error (``detail`` from the problem body) or could not be
    reached."""

    def __init__(self, detail: str, *, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


def _problem_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("title")
        errors = body.get("errors")
        if detail and isinstance(errors, list) and errors and isinstance(errors[0], dict):
            lines = [
                f"  [{e.get('index', e.get('path', '?'))}] {e.get('detail', e)}"
                for e in errors[:20]
            ]
            more = f"\n  … and {len(errors) - 20} more" if len(errors) > 20 else ""
            return str(detail) + "\n" + "\n".join(lines) + more
        if detail:
            return str(detail)
    return f"HTTP {response.status_code} {response.reason_phrase}".strip()


class ApiClient:
    """Sync API client: ``get``/``post`` return decoded JSON or raise ``ApiError``."""

    def __init__(
        self,
        server: str,
        token: str,
        *,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self._http = httpx.Client(
            base_url=self.server,
            timeout=timeout_s,
            transport=transport,
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"unidesk-cli/{__version__}",
            },
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, params: Any = None, json: Any = None) -> Any:
        try:
            response = self._http.request(method, path, params=params, json=json)
        except httpx.TimeoutException:
            raise ApiError(f"the server at {self.server} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise ApiError(f"cannot reach the server at {self.server}: {exc}") from None
        if response.status_code >= 400:
            raise ApiError(_problem_detail(response), status=response.status_code)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                f"the server sent a non-JSON answer to {method} {path}", status=response.status_code
            ) from None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, json: Any = None) -> Any:
        return self.request("POST", path, json=json)
