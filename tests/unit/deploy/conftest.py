"""The real promtool for the alert-rule and dashboard tests."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def promtool() -> str:
    """The real promtool (Debian package prometheus, installed by scripts/test): missing is a failure."""
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool not found: install the Debian package prometheus (bash scripts/test does)")
    return found
