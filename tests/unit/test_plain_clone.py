"""A plain clone has nothing beside it: no test, script or CI step may read outside the repository."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests import conftest
from tests.conftest import ROOT


def test_a_read_beside_the_repository_is_caught() -> None:
    probe = ROOT.parent / "kubedr-no-such-sibling" / "fixture.json"
    if conftest._SIBLINGS == "/" or str(probe).startswith(conftest._READABLE):
        pytest.skip(f"the checkout's parent {ROOT.parent} is the file system's top or the temporary directory")
    before = len(conftest.OUTSIDE_READS)
    with pytest.raises(FileNotFoundError):
        probe.read_text()
    caught = conftest.OUTSIDE_READS[before:]
    del conftest.OUTSIDE_READS[before:]  # the probe itself must not fail this test
    assert caught == [str(probe)]


def test_scripts_and_tests_name_no_path_beside_the_repository() -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "tests", "scripts", ".ci"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    parent = re.compile(r"\.\./(\.\./)*" + "shared" + r"|ROOT\.parent|" + "shared" + r"/fixtures")
    guards = {"tests/unit/test_plain_clone.py", "tests/conftest.py"}  # they name the parent to watch it
    offenders = [f for f in files if f not in guards and (ROOT / f).is_file()
                 and not f.startswith("tests/fixtures/")
                 and parent.search((ROOT / f).read_text(errors="replace"))]
    assert not offenders, f"these read beside the repository: {offenders}"
