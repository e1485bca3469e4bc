"""The layering rule of docs/architecture.md, checked by import-linter on the real tree:
webapp may import worker, models, safeguards and core; worker may import models, safeguards
and core; models and safeguards only core (never each other); core nothing of ours; the
library tier (core, models, safeguards) no web framework and no task queue; and the stages,
the runner, promotion and notifications no task queue either; and no module of ours imports
itself back through others (no import cycle)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "models", "safeguards", "worker", "webapp")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint(config: Path, tree: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), str(config), "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_tree(root: Path, tree: dict[str, str]) -> None:
    """Write each file of ``tree`` (path below ``root`` -> its text), making its folders."""
    for path, text in tree.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)


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
    write_tree(tmp_path, tree)
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


def import_cycles(packages: Iterable[str]) -> list[list[str]]:
    """The import cycles among the modules of ``packages``: each strongly connected
    component of the import graph with more than one module, or one that imports itself,
    as its sorted module names; [] when there is none.

    Every import counts: those under ``if TYPE_CHECKING`` and those inside a function too
    (grimp's graph holds both), since a cycle hidden in either still ties the modules
    together. Tarjan's algorithm, iterative (a chain of imports can be deeper than Python's
    recursion limit allows).
    """
    graph = grimp.build_graph(*packages, cache_dir=None)
    imports = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in sorted(imports):
        if root in order:
            continue
        order[root] = low[root] = len(order)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(imports[root]))]
        while work:
            module, pending = work[-1]
            for target in pending:
                if target not in order:
                    order[target] = low[target] = len(order)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(imports[target])))
                    break
                if target in on_stack:
                    low[module] = min(low[module], order[target])
            else:
                work.pop()
                if work:
                    caller = work[-1][0]
                    low[caller] = min(low[caller], low[module])
                if low[module] == order[module]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == module:
                            break
                    if len(component) > 1 or module in imports[module]:
                        cycles.append(sorted(component))
    return sorted(cycles)


def test_no_module_imports_itself_back_through_others() -> None:
    cycles = import_cycles(PACKAGES)
    assert cycles == [], f"import cycles (move what the modules share below them): {cycles}"


def test_the_cycle_check_sees_type_checking_and_late_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two circles, one closed only under TYPE_CHECKING and one only inside a function (the
    # two ways the last cycles of this tree were hidden), beside a chain that is no circle.
    tree = {
        "circles/__init__.py": "",
        "circles/low.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import circles.high\n"
        ),
        "circles/high.py": "import circles.low\n",
        "circles/model.py": "def score():\n    from circles import scoring\n",
        "circles/scoring.py": "from circles import model\n",
        "circles/chain.py": "import circles.high\n",
    }
    write_tree(tmp_path, tree)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles(["circles"]) == [
        ["circles.high", "circles.low"],
        ["circles.model", "circles.scoring"],
    ]
