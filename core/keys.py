"""API keys: random tokens shown once, stored only as their sha256."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.actions import Invalid
from core.schema import ApiKey
from core.schema import Role

PREFIX = "rg_"


def token_digest(token: str) -> str:
    # Keys are 256-bit random tokens, so an unsalted fast hash is safe and lets us index it.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# The api_keys.name column's length (core/schema.py).
MAX_NAME_CHARS = 100


def create_key(session: Session, name: str, role: Role) -> tuple[str, ApiKey]:
    """Create a key named ``name`` (who or what it is for: one line of at most
    MAX_NAME_CHARS characters, surrounding spaces dropped) with ``role``; return the token
    (shown once, never stored) and its row. Raises Invalid for an empty, multi-line or too
    long name."""
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
