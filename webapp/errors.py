"""One JSON error shape for every error the API returns.

    {"error": {"status": 422, "code": "invalid_input", "message": "...", "details": {...}}}

Clients never see a traceback or raw exception text: unexpected errors are logged here and
answered with a generic 500.
"""

from __future__ import annotations

import logging
from typing import Any

from apiflask import APIFlask
from apiflask import HTTPError
from werkzeug.exceptions import HTTPException

from core.actions import ActionRefused
from webapp.limits import breach

log = logging.getLogger(__name__)

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}

# Where webargs found the input that failed validation (the keys of its error details).
INPUT_LOCATIONS = {"json", "query", "view_args", "headers", "cookies", "form", "files"}

MESSAGES = {
    401: "missing or unknown API key: send 'Authorization: Bearer <key>' "
    "(create one with `replyguard keys create`)",
    403: "this API key's role may not do this",
    404: "no such endpoint or resource",
    405: "method not allowed on this endpoint",
    413: "request body too large",
}


class ApiError(HTTPError):
    """A domain error with a status, a stable code and a message that says what to do."""

    def __init__(
        self, status: int, message: str, details: dict[str, Any] | None = None, code: str = ""
    ) -> None:
        super().__init__(status, message=message, detail=details or {})
        self.code = code or CODES.get(status, "error")


def error_body(status: int, message: str, details: Any = None, code: str = "") -> dict[str, Any]:
    return {
        "error": {
            "status": status,
            "code": code or CODES.get(status, "error"),
            "message": message,
            "details": details or {},
        }
    }


def init_app(app: APIFlask) -> None:
    @app.error_processor
    def _api_error(error: HTTPError) -> Any:
        status = error.status_code
        message = error.message or ""
        details = error.detail
        if status == 422 and isinstance(details, dict) and set(details) & INPUT_LOCATIONS:
            # webargs/marshmallow validation, keyed by where the input was (body, query
            # string, path): name the fields in the message, wherever they came from.
            fields: dict[str, Any] = {}
            for location in sorted(set(details) & INPUT_LOCATIONS):
                fields.update(details[location])
            message = "invalid input: " + "; ".join(
                f"{name}: {text}" for name, text in _flatten(fields)
            )
            details = {"fields": fields}
        elif status == 429:
            # Flask-Limiter's refusal (webapp/limits.py): which limit, and when to retry.
            message, details = breach()
        if status in MESSAGES and (not message or message == _werkzeug_name(status)):
            message = MESSAGES[status]
        body = error_body(status, message, details, getattr(error, "code", ""))
        return body, status, error.headers

    @app.errorhandler(ActionRefused)
    def _refused(error: ActionRefused) -> Any:
        # The rules of state-changing actions live with the actions (core/actions.py); this
        # is the API's answer to every refusal, whichever view called the action.
        return error_body(error.status, str(error), code=error.code), error.status

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Any:
        if isinstance(error, HTTPException):
            return error
        log.exception("unhandled error")
        return error_body(500, "internal error; the server log has the details"), 500


def _flatten(fields: Any, prefix: str = "") -> list[tuple[str, str]]:
    """marshmallow's nested messages as (dotted field name, text) pairs, sorted by name.

    ``{"suggestions": {0: ["too long"]}}`` becomes ``[("suggestions.0", "too long")]``.
    """
    if isinstance(fields, dict):
        pairs: list[tuple[str, str]] = []
        for name in sorted(fields, key=str):
            pairs += _flatten(fields[name], f"{prefix}.{name}" if prefix else str(name))
        return pairs
    if isinstance(fields, list) and all(isinstance(m, str) for m in fields):
        return [(prefix, " ".join(fields))]
    return [(prefix, str(fields))]


def _werkzeug_name(status: int) -> str:
    from werkzeug.http import HTTP_STATUS_CODES

    return HTTP_STATUS_CODES.get(status, "")
