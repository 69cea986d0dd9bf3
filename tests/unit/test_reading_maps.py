"""Each stage's reading map (its package docstring) names every module of the stage: none is left to be found."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize("stage", ["exporter", "applier"])
def test_the_reading_map_names_every_module(stage: str) -> None:
    folder = ROOT / stage
    doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text())) or ""
    named = {line.split()[0] for line in doc.splitlines() if line.startswith("    ") and line.split()[0].endswith(".py")}
    modules = {p.name for p in folder.glob("*.py") if p.name != "__init__.py"}
    assert named == modules, f"missing: {sorted(modules - named)}, gone: {sorted(named - modules)}"
