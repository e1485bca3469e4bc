"""Why a state-changing action was refused, in one vocabulary for every front end.

Every rule of an action (start, resume or fail a generation; promote over the gate; roll
back; import; create a key; rebuild the reservoir) lives in the one function that carries
the action out (worker/dispatch.py, worker/pipeline.py, worker/promotion.py, core/ingest.py,
core/keys.py, core/reservoir.py), and the API, the dashboard and the command line all call
that function. It raises one of these, with a message and, where there is more, details;
each front end answers every refusal in one handler and adds its own hints, in the words of
its own options (the API: that HTTP status in the error shape of webapp/errors.py; the
dashboard: the page again with that status, webapp/dashboard/guard.py; the command line: the
message and exit code 1, webapp/cli/base.py). So a rule holds whichever front end asks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ActionRefused(RuntimeError):
    """The action's rules refuse it; the message says why, in words that hold for every front
    end (how to get past it with a front end's own options is that front end's hint).

    ``status`` is the HTTP status the API answers with, ``code`` the stable error code.

    Args:
        message: why, and what to do instead.
        details: more for a program to read, JSON-serialisable (the API sends it as the
            error's ``details``), e.g. ``{"rows": [{"line": 3, "error": "..."}]}``; empty
            when the message says it all.
    """

    status = 409
    code = "conflict"

    def __init__(self, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details: dict[str, Any] = dict(details or {})


class NotFound(ActionRefused):
    """What the action names (a model version, a generation) does not exist."""

    status = 404
    code = "not_found"


class Invalid(ActionRefused, ValueError):
    """The request itself is wrong whatever the state (an empty reason, a bad name). Also a
    ValueError, as such errors were before."""

    status = 422
    code = "invalid_input"


class Conflict(ActionRefused):
    """The current state does not allow the action now (a generation is running, the version
    is not a candidate)."""

    status = 409
    code = "conflict"


class Unavailable(ActionRefused):
    """Something the action needs is down (the task queue)."""

    status = 503
    code = "unavailable"
