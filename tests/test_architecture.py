"""The layering rule of docs/architecture.md, checked by import-linter on the real tree:
webapp may import worker, models, safeguards and core; worker may import models, safeguards
and core; models and safeguards only core (never each other); core nothing of ours; the
library tier (core, models, safeguards) no web framework and no task queue; and the stages,
the runner, promotion and notifications no task queue either."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint(config: Path, tree: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), str(config), "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_package_imports_only_the_layers_below_it() -> None:
    result = lint(ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def test_the_check_catches_an_import_against_the_layers(tmp_path: Path) -> None:
    # The same tree against the rule turned upside down: every real import of a lower
    # layer is then a violation, so a broken rule would be reported.
    config = tmp_path / "upside-down.toml"
    config.write_text(
        "[tool.importlinter]\n"
        'root_packages = ["core", "models", "safeguards", "worker", "webapp"]\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "upside down"\n'
        'type = "layers"\n'
        'layers = ["core", "models | safeguards", "worker", "webapp"]\n'
    )
    result = lint(config)
    assert result.returncode == 1
    assert "upside down BROKEN" in result.stdout
    assert "worker is not allowed to import safeguards" in result.stdout
    assert "- safeguards.quality -> core.text" in result.stdout


def test_the_check_catches_celery_reached_through_notifications(tmp_path: Path) -> None:
    # The real contract, on a small tree where the runner reaches Celery only through the
    # notifications (the circle of issue 22): the indirect import is reported.
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [contract] = [
        c for c in contracts["contracts"] if "worker.notify" in c.get("source_modules", [])
    ]
    tree = {
        "worker/__init__.py": "",
        "worker/stages/__init__.py": "",
        "worker/promotion.py": "",
        "worker/runs.py": "",
        "worker/pipeline.py": "from worker import notify\n",
        "worker/notify.py": "from worker import celery_app\n",
        "worker/celery_app.py": "import celery\n",
    }
    for path, text in tree.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    config = tmp_path / "contract.toml"
    config.write_text(
        "[tool.importlinter]\n"
        'root_packages = ["worker"]\n'
        "include_external_packages = true\n"
        "[[tool.importlinter.contracts]]\n"
        f"name = {contract['name']!r}\n"
        'type = "forbidden"\n'
        f"source_modules = {contract['source_modules']!r}\n"
        f"forbidden_modules = {contract['forbidden_modules']!r}\n"
    )
    result = lint(config, tree=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "worker.pipeline is not allowed to import celery" in result.stdout
    assert "worker.pipeline -> worker.notify" in result.stdout
