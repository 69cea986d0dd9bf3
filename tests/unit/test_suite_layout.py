"""The suite's own rules (tests/README.md): test folders collect together, and a broken product import fails."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

TESTS = ROOT / "tests"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    return out + [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and not n.level]


def test_no_test_imports_a_conftest_by_its_bare_name() -> None:
    """Each folder's conftest is `conftest` to pytest: importing it by that name picks whichever loaded first."""
    offenders = [str(p.relative_to(ROOT)) for p in TESTS.rglob("*.py") if "conftest" in _imports(p)]
    assert offenders == [], "import helpers by package path (tests.integration.<area>.conftest) or a *_harness module"


def test_no_product_import_is_guarded() -> None:
    """A product module that fails to import is a failure, never a skip or a weaker set-up."""
    offenders = []
    for path in TESTS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "importorskip":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: importorskip")
            if isinstance(node, ast.ExceptHandler) and isinstance(node.type, ast.Name) and \
                    node.type.id in ("ImportError", "ModuleNotFoundError") and path.name == "conftest.py":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: except {node.type.id}")
    assert offenders == []
