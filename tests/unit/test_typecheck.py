"""mypy and the import contracts pass on the code as installed: strict on the base, the commands and the stages,
the emulator without annotations; every layer contract kept."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_mypy_and_the_layer_contracts_pass_on_every_module() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "typecheck")], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
    modules = len(list((ROOT / "base").glob("*.py"))) + sum(
        len(list((ROOT / folder).rglob("*.py"))) for folder in ("commands", "exporter", "applier", "snapshot", "emulator"))
    assert f"Success: no issues found in {modules} source files" in proc.stdout, proc.stdout[-2000:]
    assert f"Analyzed {modules} files" in proc.stdout and "0 broken" in proc.stdout, proc.stdout[-3000:]
