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
from apiflask import Schema
from apiflask.fields import Dict
from apiflask.fields import Integer
from apiflask.fields import Nested
from apiflask.fields import String
from flask import current_app
from flask import request
from werkzeug.exceptions import HTTPException

from core.actions import ActionRefused
from core.ingest import ImportFailed
from core.ingest import NothingToImport
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


class ErrorInfo(Schema):
    status = Integer(required=True, metadata={"description": "The HTTP status of the answer."})
    code = String(
        required=True,
        metadata={
            "description": "A stable code: the status's own (invalid_input, rate_limited, ...) "
            "or a more precise one (no_model, queue_unavailable, refused_reply, ...)."
        },
    )
    message = String(
        required=True, metadata={"description": "What is wrong and what to do about it."}
    )
    details = Dict(
        required=True,
        metadata={
            "description": "More, where there is more: the invalid fields (fields), the invalid "
            "rows of an import (rows), the broken rate limit (limit, retry_after_seconds)."
        },
    )


class Error(Schema):
    """The one error shape (this module's docstring), as the OpenAPI document states it."""

    error = Nested(ErrorInfo, required=True)


# What each error status means, for the views' ``@doc(responses=...)``: APIFlask documents
# every one with the :class:`Error` body (init_app makes it the app's error schema). APIFlask
# adds 401 to every view with ``auth_required`` and 422 to every view with an input itself.
BODY_ERRORS: dict[int, Any] = {
    400: "The body is not a JSON object: not UTF-8, not JSON (NaN and Infinity included), "
    "an integer with more digits than the server converts, nesting too deep, or not an object",
    413: "The body is larger than REPLYGUARD_MAX_BODY_BYTES",
}
STAFF_ONLY: dict[int, Any] = {403: "A client key: this takes a reviewer or admin key"}
ADMIN_ONLY: dict[int, Any] = {403: "A client or reviewer key: this takes an admin key"}
RATE_LIMITED: dict[int, Any] = {
    429: {
        "description": "This key is over a rate limit (REPLYGUARD_RATE_LIMIT*): wait as long "
        "as Retry-After says",
        "content": {"application/json": {"schema": Error}},
        "headers": {
            "Retry-After": Integer(
                required=True, metadata={"description": "Seconds until the limit lets it through."}
            )
        },
    }
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
    """Answer every error of ``app`` in the one shape, and document that shape as the body
    of every error response in its OpenAPI document."""
    app.config["HTTP_ERROR_SCHEMA"] = Error
    app.config["VALIDATION_ERROR_SCHEMA"] = Error
    app.config["AUTH_ERROR_DESCRIPTION"] = "No API key, or one that is unknown or revoked"
    app.config["VALIDATION_ERROR_DESCRIPTION"] = (
        "A field is missing, unknown or invalid: the message and details.fields name each"
    )

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
            message = MESSAGES[status] + _what_to_do(status, error)
        body = error_body(status, message, details, getattr(error, "code", ""))
        return body, status, error.headers

    @app.errorhandler(ActionRefused)
    def _refused(error: ActionRefused) -> Any:
        # The rules of state-changing actions live with the actions (core/actions.py); this
        # is the API's answer to every refusal, whichever view called the action.
        message, details = in_api_words(error)
        return error_body(error.status, message, details, code=error.code), error.status

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Any:
        if isinstance(error, HTTPException):
            return error
        log.exception("unhandled error")
        return error_body(500, "internal error; the server log has the details"), 500


def in_api_words(error: ActionRefused) -> tuple[str, dict[str, Any]]:
    """The message and details the API answers a refusal with: the refusal's own, with the
    API's hints where it has them.

    An import's rows are the batch's examples, by their ``index``, and the way past invalid
    ones is the ``skip_invalid`` field; the message counts them (``details.rows`` lists
    them, where the core's message lists a file's rows by line).

    Returns:
        (message, details), the details JSON-serialisable.
    """
    if isinstance(error, ImportFailed | NothingToImport):
        rows = [{"index": row["line"], "error": row["error"]} for row in error.details["rows"]]
        if isinstance(error, ImportFailed):
            message = (
                f"{len(rows)} invalid example(s), nothing imported; fix them or set skip_invalid"
            )
        else:
            # skip_invalid, and every example invalid: an import of nothing is not a success.
            message = f"all {len(rows)} example(s) are invalid: nothing imported"
        return message, {"rows": rows}
    return str(error), error.details


def _what_to_do(status: int, error: HTTPError) -> str:
    """The end of a 403 or 405 message: which roles the endpoint takes (APIFlask keeps them
    with the view), or which methods it answers."""
    if status == 403:
        view = current_app.view_functions.get(request.endpoint or "")
        roles = getattr(view, "_spec", {}).get("roles") or []
        if roles:
            article = "an" if roles[0][0] in "aeiou" else "a"
            return (
                f": it takes {article} {' or '.join(roles)} key "
                "(`replyguard keys create --role ...`)"
            )
    if status == 405:
        allowed = dict(error.headers or {}).get("Allow")
        if isinstance(allowed, str):
            return f": use {allowed}"
    return ""


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
