"""The response set's page: the production model's served replies by intent (as GET /v1/bank
lists them), curated replies and blocks; block a reply or a pattern, lift a block with a
reason.

The work is done by the functions the API and the command line use (models.curation): they
hold every rule (a pattern RE2 cannot compile is refused with what to write instead; a lift
needs a reason and a block in force) and write the audit log. A refusal is shown on the page
with its HTTP status (422, 404, 409), as the API answers it, by the dashboard's one handler
(webapp/dashboard/guard.py).
"""

from __future__ import annotations

from typing import Any

from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from sqlalchemy import select

from core.schema import BlockKind
from core.schema import CuratedReply
from core.schema import ReplyBlock
from core.text import CURATION
from core.text import REASON
from core.text import InvalidText
from core.text import clean_text
from models.curation import add_block
from models.curation import lift_block
from models.served import ServedIntent
from models.served import served_listing
from webapp.dashboard.blueprint import bp
from webapp.dashboard.guard import current_reviewer
from webapp.dashboard.guard import refusals_shown_on
from webapp.state import services


@bp.get("/bank")
def bank() -> Any:
    return _page()


@bp.post("/bank/blocks")
def block() -> Any:
    """Block a reply or a pattern (the form at the top of the page)."""
    kind = request.form.get("kind", "")
    try:
        if kind not in {k.value for k in BlockKind}:
            raise InvalidText(f"a block is a 'text' or a 'pattern', not {kind!r}")
        value = clean_text(request.form.get("value", ""), CURATION, "value")
        reason = clean_text(request.form.get("reason", ""), REASON, "reason")
    except InvalidText as exc:
        return _page(error=str(exc), status=400)
    refusals_shown_on(_page)
    with services().db.session() as session:
        add_block(session, kind, value, reason, current_reviewer().actor)
    flash(
        f"Blocked {'pattern' if kind == 'pattern' else 'reply'} “{value}”: web servers stop "
        "suggesting it within seconds; the block and its reason are in the audit log.",
        "success",
    )
    return redirect(url_for("dashboard.bank"), code=303)


@bp.post("/bank/blocks/<int:block_id>/lift")
def lift(block_id: int) -> Any:
    """Lift a block (each block in force has a reason field and a Lift button)."""
    try:
        reason = clean_text(request.form.get("reason", ""), REASON, "reason")
    except InvalidText as exc:
        return _page(error=str(exc), status=400, lifting=block_id)
    refusals_shown_on(lambda message, status: _page(message, status, lifting=block_id))
    with services().db.session() as session:
        row = lift_block(session, block_id, reason, current_reviewer().actor)
        value = row.value
    flash(
        f"Lifted the block of “{value}”: web servers suggest what it blocked again within "
        "seconds; the lift and its reason are in the audit log.",
        "success",
    )
    return redirect(url_for("dashboard.bank"), code=303)


def _page(error: str | None = None, status: int = 200, lifting: int | None = None) -> Any:
    """The page, with the form's values kept and ``error`` shown when an action failed."""
    svc = services()
    loaded = svc.holder.find()
    with svc.db.session() as session:
        curated = session.scalars(select(CuratedReply).order_by(CuratedReply.id)).all()
        blocks = session.scalars(select(ReplyBlock).order_by(ReplyBlock.id.desc())).all()
        listing: tuple[ServedIntent, ...] = ()
        if loaded is not None:
            listing = served_listing(session, loaded.trained.bank)
        page = render_template(
            "dashboard/bank.html",
            version=loaded.version if loaded else None,
            listing=listing,
            replies=sum(len(i.replies) for i in listing),
            curated=curated,
            active=[b for b in blocks if b.lifted_at is None],
            lifted=[b for b in blocks if b.lifted_at is not None],
            error=error,
            lifting=lifting,
            form=request.form,
            value_max_chars=CURATION.max_chars,
            reason_max_chars=REASON.max_chars,
        )
    return page, status
