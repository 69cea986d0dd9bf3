"""mypy passes on the code as installed: strict on the base and the stages, the emulator without annotations."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_mypy_finds_no_error_in_any_module() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "typecheck")], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
    modules = len(list((ROOT / "kubedr").glob("*.py"))) + sum(
        len(list((ROOT / stage).rglob("*.py"))) for stage in ("exporter", "applier", "snapshot", "emulator"))
    assert f"Success: no issues found in {modules} source files" in proc.stdout, proc.stdout[-2000:]
