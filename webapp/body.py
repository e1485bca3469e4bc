"""What a request carries, read safely: JSON bodies under /v1, and integers in paths.

Request bodies under /v1 are JSON objects, read only once the caller's key is checked.

Clients such as ``curl -d`` send JSON without a JSON content type; the API takes the body as
JSON whatever the header says. The body is parsed where a view's input schema asks for it,
which APIFlask does after ``auth_required`` has accepted the key: a request without a valid
key is answered 401 before anything reads its body, whatever the body holds.

A body over ``REPLYGUARD_MAX_BODY_BYTES`` is 413 whether it declares its length or is sent
chunked (:class:`BodyRequest`).

Parsing answers a precise 400 in the one error shape (webapp/errors.py) for every body the
JSON parser cannot take: not UTF-8, not JSON, NaN or Infinity (not JSON either), an integer
with more digits than Python converts (4,300), nesting deeper than the parser's recursion
limit, or anything but an object. An empty or whitespace-only body counts as no body: the
schema then names the fields that are missing.

An integer in a path (``/v1/generations/<int:id>``, the dashboard's pages) larger than a
database integer matches no route, so it is a 404 like any unknown id rather than an overflow
in the database driver.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from collections.abc import Iterable
from typing import IO
from typing import Any
from typing import cast

from apiflask.schema_adapters.marshmallow import parser
from flask import Flask
from flask import Request
from webargs import missing
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import IntegerConverter
from werkzeug.routing import Map
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream

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


def parse_body(raw: bytes) -> Any:
    """Parse a request body as a JSON object.

    Args:
        raw: the body's bytes.

    Returns:
        The object as a dict, or webargs' ``missing`` when the body is empty or whitespace.

    Raises:
        ApiError: 400 saying why the body is not a JSON object.
    """
    if not raw.strip():
        return missing
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400, f"the request body is not UTF-8 (invalid byte at position {exc.start})"
        ) from None
    try:
        parsed = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ApiError(
            400, f"the request body is not valid JSON: {exc.msg} at position {exc.pos}"
        ) from None
    except ValueError:
        # The one other ValueError of json.loads: Python refuses to convert an integer longer
        # than sys.get_int_max_str_digits() (a guard against quadratic-time conversion).
        raise ApiError(
            400,
            "the request body has an integer the server cannot read: at most "
            f"{sys.get_int_max_str_digits()} digits",
        ) from None
    except RecursionError:
        raise ApiError(400, "the request body nests arrays or objects too deeply") from None
    if not isinstance(parsed, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return parsed


def _refuse_constant(name: str) -> Any:
    # Python's parser accepts NaN, Infinity and -Infinity; JSON has no such values.
    raise ApiError(400, f"the request body is not valid JSON: {name} is not a JSON value")


# webargs' extension point for where a location's data comes from: APIFlask's parser reads the
# body of every @input(...) view through this loader, inside the view's auth_required check.
@parser.location_loader("json")
def _load_json(request: Request, schema: Any) -> Any:
    return parse_body(request.get_data(cache=True))


class _AtMost(LimitedStream):
    """A streamed body (chunked: no Content-Length) that may hold at most ``most`` bytes:
    read up to one byte past it, and that byte raises 413.

    werkzeug's own limit for such bodies (``LimitedStream(..., is_max=True)``) stops at the
    limit and hands back what it read, so a larger body arrived cut off at the limit: the
    JSON parser then answered 400 ("not valid JSON") where a Content-Length body over the
    limit gets 413, and a form would have been parsed from half its bytes."""

    def __init__(self, stream: IO[bytes], most: int) -> None:
        super().__init__(stream, most + 1, is_max=True)
        self.most = most

    def readinto(self, b: bytearray) -> int | None:  # type: ignore[override]
        count = super().readinto(b)
        if self._pos > self.most:
            raise RequestEntityTooLarge()
        return count


class BodyRequest(Request):
    """Flask's request, whose streamed (chunked) body over ``MAX_CONTENT_LENGTH``
    (``REPLYGUARD_MAX_BODY_BYTES``) raises 413 when it is read, as a Content-Length one over
    it does: the same answer in the one error shape (webapp/errors.py), wherever the body is
    read (the API's JSON loader, the dashboard's forms), and only when it is read (after the
    key is checked)."""

    @cached_property
    def stream(self) -> IO[bytes]:
        limit = self.max_content_length
        if (
            self.content_length is None
            and limit is not None
            # The server ends a chunked body itself (gunicorn does); werkzeug reads such a
            # stream only when this is set, and so do we.
            and self.environ.get("wsgi.input_terminated")
        ):
            # werkzeug casts its own LimitedStream so too: a raw stream, read as a file.
            return cast(IO[bytes], _AtMost(self.environ["wsgi.input"], limit))
        stream: IO[bytes] = super().stream
        return stream


# The largest id SQLite and PostgreSQL (bigint) can compare with; past it drivers overflow.
MAX_PATH_INTEGER = 2**63 - 1


class PathInteger(IntegerConverter):
    """``<int:...>`` with werkzeug's options, at most :data:`MAX_PATH_INTEGER` by default."""

    def __init__(
        self,
        map: Map,
        fixed_digits: int = 0,
        min: int | None = None,
        max: int | None = MAX_PATH_INTEGER,
        signed: bool = False,
    ) -> None:
        super().__init__(map, fixed_digits, min, max, signed)


def init_app(app: Flask) -> None:
    """Call before any route is registered: routes take their converters when added."""
    app.wsgi_app = JsonBodyMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    app.request_class = BodyRequest
    app.url_map.converters["int"] = PathInteger
