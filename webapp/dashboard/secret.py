"""The key that signs the dashboard's session cookies.

``REPLYGUARD_SECRET_KEY`` when set; otherwise a random key created once and kept in
``<data_dir>/secret_key`` (mode 0600), so every gunicorn worker on the machine signs and
reads the same cookies, and a restart does not sign everyone out. There is no built-in
fallback key: a key anyone can read in the source would let anyone forge a session.
"""

from __future__ import annotations

import logging
import secrets
import stat
from pathlib import Path

from core.files import atomic_write
from core.settings import SettingsError
from worker.settings import Settings

log = logging.getLogger(__name__)

FILE_NAME = "secret_key"
MIN_LENGTH = 32


def secret_key(settings: Settings) -> str:
    """The configured key, or the one stored in the data folder (created on first use)."""
    if settings.secret_key:
        if len(settings.secret_key) < MIN_LENGTH:
            raise SettingsError(
                f"REPLYGUARD_SECRET_KEY must be at least {MIN_LENGTH} characters; "
                'generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))"'
            )
        return settings.secret_key
    return stored_key(settings.data_dir / FILE_NAME)


def stored_key(path: Path) -> str:
    """Read the key at ``path``, creating it first when it does not exist."""
    if not path.exists():
        _create(path)
    return _read(path)


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 and written in full before it gets its name, which an existing key keeps:
    # of several workers starting at once, one key wins and no worker ever reads half a key.
    atomic_write(path, secrets.token_urlsafe(48).encode(), replace=False)


def _read(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s was readable by other users (mode %o); narrowing it to 0600", path, mode)
        path.chmod(0o600)
    key = path.read_text().strip()
    if len(key) < MIN_LENGTH:
        raise SettingsError(
            f"{path} does not hold a usable key: delete it and restart "
            "(everyone signed in to the dashboard will have to sign in again)"
        )
    return key
