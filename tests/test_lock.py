"""The lock: uv.lock pins every package, and agrees with pyproject.toml.

`make run` and `make test` install with `uv sync --frozen`, which takes the lock as it is and
never resolves: a pyproject.toml changed without `make lock` would install the old pins in
silence. These tests catch that, and hold the installer's version and the torch build in step
across the Makefile, pyproject.toml and the lock.
"""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from uv import find_uv_bin

from tests.helpers import makefile_variable

ROOT = Path(__file__).resolve().parent.parent


def load(name: str) -> dict[str, Any]:
    with (ROOT / name).open("rb") as handle:
        return tomllib.load(handle)


def uv_lock_check(project: Path) -> subprocess.CompletedProcess[str]:
    """`uv lock --check` on ``project``, offline: it fails when the lock would change."""
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("UV_PROJECT_ENVIRONMENT", None)
    return subprocess.run(
        [find_uv_bin(), "lock", "--check", "--offline", "--project", str(project)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_the_lock_agrees_with_pyproject() -> None:
    result = uv_lock_check(ROOT)
    assert result.returncode == 0, (
        "pyproject.toml and uv.lock disagree: run `make lock` and commit uv.lock\n" + result.stderr
    )


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(('"tqdm>=4.66",', '"tqdm>=4.66",\n    "six>=1.16",'), id="a new dependency"),
        pytest.param(('"click>=8.1,<9",', '"click>=9",'), id="a bound the pin breaks"),
    ],
)
def test_the_check_fails_when_pyproject_changes_without_the_lock(
    tmp_path: Path, change: tuple[str, str]
) -> None:
    """The check above can fail: the same files, with pyproject.toml changed."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    old, new = change
    assert old in text, old
    (tmp_path / "pyproject.toml").write_text(text.replace(old, new), encoding="utf-8")
    (tmp_path / "uv.lock").write_bytes((ROOT / "uv.lock").read_bytes())
    assert uv_lock_check(tmp_path).returncode != 0


def test_every_locked_package_is_pinned_with_hashes() -> None:
    """Every package has one exact version and an artifact with a hash; none comes from a
    place other than the package index, the project itself, or the torch build on disk."""
    packages = load("uv.lock")["package"]
    assert len(packages) > 100
    names = [p["name"] for p in packages]
    assert len(names) == len(set(names)), "one version per package"
    for package in packages:
        source = package["source"]
        if source.get("editable") == ".":
            assert package["name"] == "replyguard"
            continue
        if "path" in source:
            assert package["name"] == "torch", package["name"]
            assert package["wheels"][0]["hash"].startswith("sha256:")
            continue
        assert source.get("registry") == "https://pypi.org/simple", package["name"]
        artifacts = package.get("wheels", []) + ([package["sdist"]] if "sdist" in package else [])
        assert artifacts and all(a["hash"].startswith("sha256:") for a in artifacts), package[
            "name"
        ]


def test_torch_is_the_cpu_build_pinned_in_pyproject() -> None:
    (pin,) = [
        Requirement(d)
        for d in load("pyproject.toml")["project"]["dependencies"]
        if Requirement(d).name == "torch"
    ]
    (specifier,) = pin.specifier
    (torch,) = [p for p in load("uv.lock")["package"] if p["name"] == "torch"]
    locked = Version(torch["version"])
    assert locked.public == specifier.version and locked.local == "cpu"


def test_one_installer_version_everywhere() -> None:
    """The Makefile bootstraps uv at one version; pyproject.toml requires it and pins it in
    the dev extra; the lock holds it."""
    version = makefile_variable("UV_VERSION")
    project = load("pyproject.toml")
    assert project["tool"]["uv"]["required-version"] == f"=={version}"
    dev = [Requirement(d) for d in project["project"]["optional-dependencies"]["dev"]]
    assert [str(r.specifier) for r in dev if r.name == "uv"] == [f"=={version}"]
    (uv,) = [p for p in load("uv.lock")["package"] if p["name"] == "uv"]
    assert uv["version"] == version


@pytest.mark.parametrize(
    "package", ["sentence-transformers", "transformers", "optimum-onnx", "numpy", "celery"]
)
def test_majors_that_change_apis_we_call_are_bounded(package: str) -> None:
    """A new major version of these changes an API the code calls: pyproject.toml admits
    none, so `make lock UPGRADE=1` cannot take one in unseen."""
    requirements = [Requirement(d) for d in load("pyproject.toml")["project"]["dependencies"]]
    (requirement,) = [r for r in requirements if r.name == package]
    assert any(s.operator == "<" for s in requirement.specifier), requirement
