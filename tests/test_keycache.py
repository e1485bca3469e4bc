"""API keys are looked up once per few seconds per web process, and revocation still lands."""

from __future__ import annotations

from core.keys import revoke_key
from webapp.keycache import KeyCache


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Lookups:
    """A key table that counts how often it is asked."""

    def __init__(self, known: dict[str, str]) -> None:
        self.known = known
        self.calls = 0

    def __call__(self, token: str) -> str | None:
        self.calls += 1
        return self.known.get(token)


def test_a_verified_key_is_remembered_until_its_time_is_up() -> None:
    clock, lookups = Clock(), Lookups({"rg_a": "alice"})
    cache: KeyCache[str] = KeyCache(5.0, clock=clock)
    assert cache.verify("rg_a", lookups) == "alice"
    clock.now += 4.9
    assert cache.verify("rg_a", lookups) == "alice"
    assert lookups.calls == 1
    del lookups.known["rg_a"]  # revoked
    clock.now += 0.2
    assert cache.verify("rg_a", lookups) is None
    assert lookups.calls == 2


def test_unknown_keys_are_never_remembered() -> None:
    lookups = Lookups({})
    cache: KeyCache[str] = KeyCache(5.0, clock=Clock())
    for _ in range(3):
        assert cache.verify("rg_forged", lookups) is None
    assert lookups.calls == 3


def test_the_cache_holds_at_most_size_keys_and_zero_seconds_turns_it_off() -> None:
    lookups = Lookups({f"rg_{i}": str(i) for i in range(5)})
    cache: KeyCache[str] = KeyCache(5.0, size=2, clock=Clock())
    for i in range(5):
        cache.verify(f"rg_{i}", lookups)
    cache.verify("rg_0", lookups)  # dropped as the oldest: looked up again
    cache.verify("rg_4", lookups)  # still held
    assert lookups.calls == 6
    off: KeyCache[str] = KeyCache(0.0, clock=Clock())
    off.verify("rg_1", lookups)
    off.verify("rg_1", lookups)
    assert lookups.calls == 8


def test_a_revoked_api_key_is_refused_once_its_cache_time_is_up(app, client) -> None:  # type: ignore[no-untyped-def]
    from core.keys import create_key
    from core.schema import Role

    clock = Clock()
    services = app.extensions["replyguard"]
    services.keys = KeyCache(services.settings.key_cache_seconds, clock=clock)
    with services.db.session() as session:
        token, row = create_key(session, "to-revoke", Role.CLIENT, "tester")
        key_id = row.id
    headers = {"Authorization": f"Bearer {token}"}
    body = {"message": "are we still on for lunch?"}
    assert client.post("/v1/suggestions", json=body, headers=headers).status_code == 200
    with services.db.session() as session:
        assert revoke_key(session, key_id, "tester", "leaked").revoked_at is not None
    # Within the cache time the process still trusts its recent check (documented).
    assert client.post("/v1/suggestions", json=body, headers=headers).status_code == 200
    clock.now += services.settings.key_cache_seconds
    response = client.post("/v1/suggestions", json=body, headers=headers)
    assert response.status_code == 401
    assert "unknown API key" in response.get_json()["error"]["message"]
