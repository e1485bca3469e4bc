"""API-key authentication (``Authorization: Bearer <key>``) and roles."""

from __future__ import annotations

from dataclasses import dataclass

from apiflask import HTTPTokenAuth

from core.keys import find_key
from core.schema import Role
from webapp.state import services

auth = HTTPTokenAuth(scheme="Bearer", description="An API key from `replyguard keys create`")

STAFF = [Role.REVIEWER.value, Role.ADMIN.value]


@dataclass(frozen=True)
class Caller:
    key_id: int
    name: str
    role: str

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}:{self.name}"


def _find(token: str) -> Caller | None:
    with services().db.session() as session:
        row = find_key(session, token)
        return Caller(row.id, row.name, row.role) if row else None


@auth.verify_token
def _verify(token: str) -> Caller | None:
    return services().keys.verify(token, _find)


@auth.get_user_roles
def _roles(caller: Caller) -> list[str]:
    return [caller.role]


def current_caller() -> Caller:
    caller = auth.current_user
    if not isinstance(caller, Caller):
        raise RuntimeError("current_caller() called outside an authenticated request")
    return caller
