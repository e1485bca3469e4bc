"""Structured logs: one JSON object a line, one field per fact (docs/operations.md, "Logs").

Every line has ``timestamp`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``; a line
logged while a request is served also has ``request_id`` (webapp/observe.py), and a line
logged while a generation's stage runs has ``generation_id`` and ``stage`` (worker/). Any
``extra={...}`` given to a log call becomes fields of its own (``method``, ``status``,
``duration_ms``...). The JSON is written by python-json-logger.

Nothing is configured at import time: :func:`configure_logging` is called by the app factory,
the worker's app and the command line's server commands.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

from core.settings import ENV_PREFIX
from core.settings import SettingsError

__all__ = ["bind", "configure_logging", "formatter", "log_context", "unbind"]

# The fields every line has, as the log record names them, and as the line names them.
_FIELDS = {"levelname": "level", "name": "logger", "message": "message"}

# What the code running now is doing (a request, a generation's stage): added to every line.
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "replyguard_log_context", default=MappingProxyType({})
)


def formatter() -> logging.Formatter:
    """The JSON formatter of every ReplyGuard process (gunicorn's own lines too, through
    webapp/gunicorn_conf.py)."""
    return JsonFormatter(
        list(_FIELDS), rename_fields={k: v for k, v in _FIELDS.items() if k != v}, timestamp=True
    )


class _ContextFilter(logging.Filter):
    """Copies the current context's fields onto each record (a field the call gave in
    ``extra`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Our handler on the root logger, told apart from handlers others installed (pytest's
    capture, a host application's) so that configuring again replaces only ours."""


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> logging.Handler:
    """Send every log line of this process as JSON to ``stream`` (standard error by default).

    Replaces the handler an earlier call installed and leaves any other handler alone.

    Args:
        level: the root logger's level name (``REPLYGUARD_LOG_LEVEL``; default INFO, from
            core.settings).
        stream: where lines go; tests pass a buffer.

    Returns:
        The handler installed.

    Raises:
        SettingsError: ``level`` is not a level name.
    """
    name = level.strip().upper()
    if not isinstance(logging.getLevelNamesMapping().get(name), int):
        raise SettingsError(
            f"{ENV_PREFIX}LOG_LEVEL={level!r} is not a log level: give DEBUG, INFO, WARNING, "
            "ERROR or CRITICAL"
        )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    handler = _Handler(stream or sys.stderr)
    handler.setFormatter(formatter())
    handler.addFilter(_ContextFilter())
    root.addHandler(handler)
    root.setLevel(name)
    return handler


def bind(**fields: Any) -> contextvars.Token[Mapping[str, Any]]:
    """Add ``fields`` to every line logged in the current context until :func:`unbind`.

    Returns:
        The token that :func:`unbind` takes to restore the fields as they were.
    """
    return _context.set({**_context.get(), **fields})


def unbind(token: contextvars.Token[Mapping[str, Any]]) -> None:
    """Restore the fields as they were before the :func:`bind` that returned ``token``."""
    _context.reset(token)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """``fields`` on every line logged inside the ``with`` block (see :func:`bind`)."""
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)
