"""API keys: random tokens shown once, stored only as their sha256."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.actions import Conflict
from core.actions import Invalid
from core.actions import NotFound
from core.audit import record
from core.schema import ApiKey
from core.schema import Role

PREFIX = "rg_"


def token_digest(token: str) -> str:
    # Keys are 256-bit random tokens, so an unsalted fast hash is safe and lets us index it.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# The api_keys.name column's length (core/schema.py).
MAX_NAME_CHARS = 100


def create_key(session: Session, name: str, role: Role, actor: str) -> tuple[str, ApiKey]:
    """Create a key named ``name`` (who or what it is for: one line of at most
    MAX_NAME_CHARS characters, surrounding spaces dropped) with ``role``, audited as made by
    ``actor``; return the token (shown once, never stored) and its row. Raises Invalid for
    an empty, multi-line or too long name."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise Invalid(
            f"a key's name is one line of 1 to {MAX_NAME_CHARS} printable characters "
            f"(got {len(name)} characters)"
        )
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, key_hash=token_digest(token), prefix=token[:10], role=role.value)
    session.add(row)
    session.flush()
    record(
        session,
        actor,
        "create_key",
        f"key {row.id}",
        details={"prefix": row.prefix, "name": name, "role": role.value},
    )
    return token, row


def find_key(session: Session, token: str) -> ApiKey | None:
    """The active key for ``token``, or None."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    row = session.scalars(
        select(ApiKey).where(ApiKey.key_hash == token_digest(token))
    ).one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    return row


# The keys `replyguard run` makes for a new data folder, by role, and their names.
QUICKSTART = {Role.CLIENT: "quickstart client", Role.REVIEWER: "quickstart reviewer"}


def quickstart_keys(session: Session) -> dict[Role, tuple[str | None, ApiKey]]:
    """The quickstart keys of ``replyguard run``, by role: (token, row) for a key made now,
    (None, row) for the active key an earlier start made (its token was shown then and is
    not stored). So a restart does not mint new keys; revoking one makes the next start
    mint a new one."""
    keys: dict[Role, tuple[str | None, ApiKey]] = {}
    for role, name in QUICKSTART.items():
        row = session.scalars(
            select(ApiKey)
            .where(ApiKey.name == name, ApiKey.role == role.value, ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.id)
        ).first()
        keys[role] = (
            (None, row) if row is not None else create_key(session, name, role, "replyguard run")
        )
    return keys


def list_keys(session: Session) -> list[ApiKey]:
    """Every key ever created, active and revoked, oldest first (tokens are never stored:
    each row shows its prefix, name, role and dates)."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_key(session: Session, key_id: int, actor: str, reason: str) -> ApiKey:
    """Revoke the key with id ``key_id`` (``replyguard keys list`` shows ids) and audit it.

    Web processes stop accepting it within REPLYGUARD_KEY_CACHE_SECONDS (webapp/keycache.py).
    Raises NotFound for an unknown id, Conflict when it is revoked already, Invalid for an
    empty reason."""
    if not reason.strip():
        raise Invalid("say why the key is revoked (--reason): it is kept in the audit log")
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"no API key has id {key_id}: `replyguard keys list` shows them")
    if row.revoked_at is not None:
        raise Conflict(
            f"key {key_id} ({row.prefix}...) was revoked at {row.revoked_at:%Y-%m-%d %H:%M} UTC"
        )
    row.revoked_at = dt.datetime.now(dt.UTC)
    record(
        session,
        actor,
        "revoke_key",
        f"key {key_id}",
        reason,
        {"prefix": row.prefix, "name": row.name, "role": row.role},
    )
    return row
