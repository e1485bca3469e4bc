"""Why a state-changing action was refused, in one vocabulary for every front end.

Every rule of an action (start, resume or fail a generation; promote over the gate; roll
back; import; create a key; rebuild the reservoir) lives in the one function that carries
the action out (worker/dispatch.py, worker/pipeline.py, worker/promotion.py, core/ingest.py,
core/keys.py, core/reservoir.py), and the API, the dashboard and the command line all call
that function. It raises one of these; each front end maps ``status`` to its own answer
(the API: that HTTP status in the error shape of webapp/errors.py; the dashboard: the page
with that status; the command line: the message and exit code 1). So a rule holds whichever
front end asks.
"""

from __future__ import annotations


class ActionRefused(RuntimeError):
    """The action's rules refuse it; the message says why and what to do instead.

    ``status`` is the HTTP status the API answers with, ``code`` the stable error code."""

    status = 409
    code = "conflict"


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
