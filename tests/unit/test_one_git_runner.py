"""Only kubedr.git starts git: every other module goes through it (one timeout policy, one error, masked URLs)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PRODUCT = ("base", "commands", "exporter", "applier", "snapshot")
SPAWN = {"run", "Popen", "call", "check_call", "check_output"}


def _starts_git(node: ast.Call) -> bool:
    func = node.func
    if not (isinstance(func, ast.Attribute) and func.attr in SPAWN and isinstance(func.value, ast.Name)
            and func.value.id == "subprocess") or not node.args:
        return False
    argv = node.args[0]
    return isinstance(argv, ast.List | ast.Tuple) and bool(argv.elts) and isinstance(argv.elts[0], ast.Constant) \
        and argv.elts[0].value == "git"


def offenders(root: Path) -> list[str]:
    """file:line of every subprocess call that starts git, and every import of GitPython, outside kubedr.git."""
    found = []
    for folder in PRODUCT:
        for path in sorted((root / folder).rglob("*.py")):
            if path == root / "base" / "git.py":
                continue
            lines = sorted(node.lineno for node in ast.walk(ast.parse(path.read_text(), str(path)))
                           if (isinstance(node, ast.Call) and _starts_git(node))
                           or (isinstance(node, ast.Import) and any(a.name == "git" for a in node.names)))
            found += [f"{path.relative_to(root)}:{line}" for line in lines]
    return found


def test_no_module_but_the_runner_starts_git() -> None:
    assert offenders(ROOT) == []


def test_the_check_finds_a_stray_git_process(tmp_path: Path) -> None:
    (tmp_path / "exporter").mkdir()
    (tmp_path / "exporter" / "x.py").write_text("import subprocess\nsubprocess.run(['git', 'status'])\nimport git\n")
    assert offenders(tmp_path) == ["exporter/x.py:2", "exporter/x.py:3"]
