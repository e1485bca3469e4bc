"""Structured logs: one JSON object a line, one field per fact (docs/operations.md, "Logs").

Every line has ``timestamp`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``; a line
logged while a request is served also has ``request_id`` (webapp/observe.py), and a line
logged while a generation's stage runs has ``generation_id`` and ``stage`` (worker/). Any
``extra={...}`` given to a log call becomes fields of its own (``method``, ``status``,
``duration_ms``...). The JSON is written by python-json-logger.

Nothing is configured at import time: :func:`configure_logging` is called by the app factory,
the worker's app and the command line (`replyguard run` into ``<data folder>/logs/run.log``,
a command that loads the pipeline into ``cli.log`` beside it). The libraries' own lines go
the same way (:func:`adopt_library_output`): Python warnings and transformers' log lines,
which would otherwise be printed on the console of the person who typed the command.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

from core.settings import ENV_PREFIX
from core.settings import SettingsError

__all__ = [
    "adopt_library_output",
    "adopt_transformers_logging",
    "bind",
    "configure_logging",
    "formatter",
    "is_configured",
    "log_context",
    "unbind",
]

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


def configure_logging(
    level: str = "INFO", stream: TextIO | None = None, path: Path | None = None
) -> logging.Handler:
    """Send every log line of this process as JSON to ``stream`` (standard error by default)
    or, with ``path``, appended to that file (its folder created); the libraries' warnings and
    log lines too (:func:`adopt_library_output`).

    Replaces the handler an earlier call installed (closing the file it opened) and leaves
    any other handler alone.

    Args:
        level: the root logger's level name (``REPLYGUARD_LOG_LEVEL``; default INFO, from
            core.settings).
        stream: where lines go; tests pass a buffer.
        path: a log file instead of ``stream``.

    Returns:
        The handler installed.

    Raises:
        SettingsError: ``level`` is not a level name.
        OSError: ``path`` cannot be opened for appending.
    """
    name = level.strip().upper()
    if not isinstance(logging.getLevelNamesMapping().get(name), int):
        raise SettingsError(
            f"{ENV_PREFIX}LOG_LEVEL={level!r} is not a log level: give DEBUG, INFO, WARNING, "
            "ERROR or CRITICAL"
        )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler | _FileHandler)]:
        root.removeHandler(old)
        # Closes the file a path opened; a stream handler leaves its stream open.
        old.close()
    handler: logging.StreamHandler  # type: ignore[type-arg]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = _FileHandler(path, encoding="utf-8")
    else:
        handler = _Handler(stream or sys.stderr)
    handler.setFormatter(formatter())
    handler.addFilter(_ContextFilter())
    root.addHandler(handler)
    root.setLevel(name)
    adopt_library_output()
    return handler


class _FileHandler(logging.FileHandler):
    """Our handler when lines go to a file (:func:`configure_logging`'s ``path``)."""


def is_configured() -> bool:
    """Whether :func:`configure_logging` installed a handler in this process."""
    return any(isinstance(h, _Handler | _FileHandler) for h in logging.getLogger().handlers)


def adopt_library_output() -> None:
    """Send what the libraries print on their own where this process's log lines go: Python
    warnings (a library's deprecations, resource warnings) become log lines of the
    ``py.warnings`` logger instead of text on standard error, and transformers' lines
    propagate (:func:`adopt_transformers_logging`)."""
    logging.captureWarnings(True)
    adopt_transformers_logging()


def adopt_transformers_logging() -> None:
    """transformers gives its loggers a handler of its own that writes to standard error, and
    keeps their lines from the root logger's handlers: remove that handler and let them
    propagate, to this process's log. Does nothing until transformers is imported (it is never
    imported for this: a web process on the ONNX encoder never loads it), so the code that
    imports it (models/) calls this right after."""
    hf_logging = sys.modules.get("transformers.utils.logging")
    if hf_logging is not None:
        # Creates its handler if it has not yet, so that the removal below finds it.
        hf_logging.get_logger()
        hf_logging.disable_default_handler()
        hf_logging.enable_propagation()


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
