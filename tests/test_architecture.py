"""The layering rule of docs/architecture.md, checked by import-linter on the real tree:
webapp may import worker, models, safeguards and core; worker may import models, safeguards
and core; models and safeguards only core (never each other); core nothing of ours; and the
library tier (core, models, safeguards) no web framework and no task queue."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), str(config), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_package_imports_only_the_layers_below_it() -> None:
    result = lint(ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


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
