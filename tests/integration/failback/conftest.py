"""Fixtures for the failback tests: clusters A and B and a config repo whose writer is A (epoch 1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from failback_harness import NS, Side

from kubedr.commands import repo_init


@pytest.fixture
def pair(tmp_path: Path, git_remote: Path) -> Iterator[dict[str, Side]]:
    from kubedr.emulator.server import Emulator

    repo_init.init_repo(str(git_remote), writer="A")
    sides = {}
    for name in ("A", "B"):
        emu = Emulator().start()
        emu.api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        sides[name] = Side(name, emu, tmp_path, git_remote)
    yield sides
    for side in sides.values():
        side.close()
        side.emu.stop()
