"""API keys: random tokens shown once, stored only as their sha256."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.schema import ApiKey
from core.schema import Role

PREFIX = "rg_"


def token_digest(token: str) -> str:
    # Keys are 256-bit random tokens, so an unsalted fast hash is safe and lets us index it.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_key(session: Session, name: str, role: Role) -> tuple[str, ApiKey]:
    """Create a key; return the token (shown once, never stored) and its row."""
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, key_hash=token_digest(token), prefix=token[:10], role=role.value)
    session.add(row)
    session.flush()
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


def revoke_key(session: Session, prefix: str) -> int:
    rows = list(session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)))
    for row in rows:
        row.revoked_at = dt.datetime.now(dt.UTC)
    return len(rows)
