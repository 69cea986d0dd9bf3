"""Only kubedr.listwatch watches: every other module lists and watches through its loop (one 410, bookmark and
backoff rule, one stop), never by opening a watch itself."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PRODUCT = ("base", "commands", "exporter", "applier", "snapshot")
HOME = {Path("base/listwatch.py"), Path("base/kubeapi.py")}  # the loop, and the client's one watch request


def _opens_a_watch(node: ast.AST) -> bool:
    """A call of some .watch(path, ...) or WatchStream(...), or the watch query's own parameter."""
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        return (name == "watch" and bool(node.args or node.keywords)) or name == "WatchStream"
    return isinstance(node, ast.Constant) and node.value in ("allowWatchBookmarks", "watch=1")


def offenders(root: Path) -> list[str]:
    """file:line of every place outside kubedr.listwatch (and the client) that opens a watch."""
    found = []
    for folder in PRODUCT:
        for path in sorted((root / folder).rglob("*.py")):
            if path.relative_to(root) in HOME:
                continue
            tree = ast.parse(path.read_text(), str(path))
            found += [f"{path.relative_to(root)}:{n.lineno}" for n in ast.walk(tree) if _opens_a_watch(n)]
    return found


def test_no_module_but_the_loop_opens_a_watch() -> None:
    assert offenders(ROOT) == []


def test_the_check_finds_a_watch_opened_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "applier").mkdir()
    (tmp_path / "applier" / "x.py").write_text(
        "for ev in cluster.watch(path, {'allowWatchBookmarks': 'true'}, 60):\n    pass\n"
        "source.watch()\n")  # a file watch (no arguments) is not an API watch
    assert offenders(tmp_path) == ["applier/x.py:1", "applier/x.py:1"]
