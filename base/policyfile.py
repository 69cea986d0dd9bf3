"""The config repo's policy file: one section per side (export, apply, trust), read by exporter and applier."""

from __future__ import annotations

from typing import Any

from kubedr import contract

POLICY_PATH = ".kubedr/policy.yaml"


class PolicyFileError(ValueError):
    """The policy file does not parse, or a section is not a mapping; one line."""


def load(data: bytes | None) -> dict[str, Any]:
    """The whole policy as a mapping, {} when the file is absent or empty."""
    if not data:
        return {}
    try:
        doc = contract.parse_yaml(data, POLICY_PATH) or {}
    except contract.ManifestError as exc:
        raise PolicyFileError(exc.reason) from exc
    return doc if isinstance(doc, dict) else {}


def section(data: bytes | None, name: str) -> dict[str, Any]:
    """One section of the policy as a mapping, {} when the file or the section is absent."""
    found = load(data).get(name)
    if found is None:
        return {}
    if not isinstance(found, dict):
        raise PolicyFileError(f"{name}: expected a mapping")
    return found
