"""Files kubedr ships beside its code: the config-repo template and the manifests (links into the checkout's
top-level folders in a clone, copies in the wheel)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


class NotShipped(RuntimeError):
    """The installation lacks a folder it ships; one line naming where it was looked for."""


def shipped(link: str, checkout: str) -> Path:
    """The folder shipped as kubedr/commands/<link>, else the checkout's <checkout>/; one line when neither is."""
    for found in (HERE / link, HERE.parent / checkout):
        if found.is_dir():
            return found
    raise NotShipped(f"{link} not found at {HERE / link}: the kubedr installation is incomplete")
