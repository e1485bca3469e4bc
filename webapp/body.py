"""Request bodies under /v1 are JSON, checked before any view sees them.

Clients such as ``curl -d`` send JSON without a JSON content type; the API takes the body as
JSON whatever the header says, and answers a precise 400 when it is not UTF-8 or not JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

from flask import Flask
from flask import request

from webapp.errors import ApiError

API_PREFIX = "/v1/"


class JsonBodyMiddleware:
    """Marks every body sent to the API as JSON, so the schema layer parses it."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO", "").startswith(API_PREFIX):
            environ["CONTENT_TYPE"] = "application/json"
        return self.app(environ, start_response)


def init_app(app: Flask) -> None:
    app.wsgi_app = JsonBodyMiddleware(app.wsgi_app)  # type: ignore[method-assign]

    @app.before_request
    def _check_body() -> None:
        if request.method not in ("POST", "PUT", "PATCH") or not request.path.startswith(
            API_PREFIX
        ):
            return
        raw = request.get_data(cache=True)
        if not raw.strip():
            # Some actions take no body (starting a generation); the schema says what is missing.
            return
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApiError(
                400, f"the request body is not UTF-8 (invalid byte at position {exc.start})"
            ) from None
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ApiError(
                400, f"the request body is not valid JSON: {exc.msg} at position {exc.pos}"
            ) from None
        if not isinstance(parsed, dict):
            raise ApiError(400, "the request body must be a JSON object")
