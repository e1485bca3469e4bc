"""API keys through the API (admin keys only): list, create, revoke. The rules live in
core.keys, shared with `replyguard keys`."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from core.keys import create_key
from core.keys import list_keys
from core.keys import revoke_key
from core.schema import ApiKey
from core.schema import Role
from webapp.auth import auth
from webapp.auth import current_caller
from webapp.errors import ADMIN_ONLY
from webapp.errors import BODY_ERRORS
from webapp.errors import RATE_LIMITED
from webapp.schemas import KeyIn
from webapp.schemas import KeysOut
from webapp.schemas import NewKeyOut
from webapp.schemas import ReasonIn
from webapp.schemas import RevokedKeyOut
from webapp.state import services

bp = APIBlueprint("keys", __name__, url_prefix="/v1/keys", tag="API keys")

ADMIN = [Role.ADMIN.value]


@bp.get("")
@bp.auth_required(auth, roles=ADMIN)
@bp.output(KeysOut)
@bp.doc(
    summary="Every API key, active and revoked (admin)", responses={**ADMIN_ONLY, **RATE_LIMITED}
)
def list_all() -> dict[str, Any]:
    with services().db.session() as session:
        return {"keys": list_keys(session)}


@bp.post("")
@bp.auth_required(auth, roles=ADMIN)
@bp.input(KeyIn, arg_name="body", example={"name": "android app", "role": "client"})
@bp.output(NewKeyOut, status_code=201)
@bp.doc(
    summary="Create a key (admin): its token is in this answer only",
    responses={
        **BODY_ERRORS,
        422: "A field is missing, unknown or invalid (details.fields names each)",
        **ADMIN_ONLY,
        **RATE_LIMITED,
    },
)
def create(body: dict[str, Any]) -> dict[str, Any]:
    with services().db.session() as session:
        token, row = create_key(session, body["name"], Role(body["role"]), current_caller().actor)
        return {"key": row, "token": token}


@bp.post("/<int:key_id>/revoke")
@bp.auth_required(auth, roles=ADMIN)
@bp.input(ReasonIn, arg_name="body", example={"reason": "the phone with this key was lost"})
@bp.output(RevokedKeyOut)
@bp.doc(
    summary="Revoke a key (admin, audited): refused by every web process within "
    "REPLYGUARD_KEY_CACHE_SECONDS",
    responses={
        **BODY_ERRORS,
        404: "There is no key with this id",
        409: "The key is revoked already (the message says when)",
        422: "The reason is missing or invalid (details.fields names it)",
        **ADMIN_ONLY,
        **RATE_LIMITED,
    },
)
def revoke(key_id: int, body: dict[str, Any]) -> ApiKey:
    # Unknown id 404, revoked already 409, via webapp/errors.py's ActionRefused handler.
    with services().db.session() as session:
        return revoke_key(session, key_id, current_caller().actor, body["reason"])
