"""The append-only audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core.schema import AuditEntry


def record(
    session: Session,
    actor: str,
    action: str,
    target: str = "",
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        actor=actor, action=action, target=target, reason=reason, details=details or {}
    )
    session.add(entry)
    session.flush()
    return entry
