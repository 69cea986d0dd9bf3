"""The applier's Settings, and the repo's `.kubedr/policy.yaml` (apply section): defaults for whatever the
secondary's own settings leave open.

Flags, $KUBEDR_* variables and the deployment's config file always win; the policy at the commit being
applied fills in the rest, so a repo can carry its prune guard, standby replicas and maps with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from kubedr import holds, policyfile
from kubedr.applier.decode import Maps
from kubedr.applier.inventory import MAX_PRUNE_COUNT, MAX_PRUNE_FRACTION
from kubedr.config import Bound, out_of_bounds
from kubedr.policyfile import POLICY_PATH


@dataclasses.dataclass
class Settings:
    """What the operator asked for (flags, environment, config file)."""

    repo: str
    branch: str = "main"
    revision: str | None = None
    at: str | None = None
    prune: bool = False
    force_prune: bool = False
    dry_run: bool = False
    concurrency: int = 16
    maps: Maps = dataclasses.field(default_factory=Maps)
    mode_override: str | None = None  # "active" | "standby" | None (follow the recorded mode)
    standby_replicas: int = 0
    namespace_replicas: dict[str, int] = dataclasses.field(default_factory=dict)
    identities: list[Any] | None = None
    validate: bool = True
    prune_max_fraction: float = MAX_PRUNE_FRACTION
    prune_max_objects: int = MAX_PRUNE_COUNT
    default_standby: bool = True  # the mode when none is recorded on the secondary and none is given
    recreate: bool = True  # delete and re-create objects whose immutable fields changed (applier.recreate)
    explicit: frozenset[str] = frozenset()  # fields the operator set; the repo policy fills the others
    allowed_signers: str | None = None  # git allowed-signers file: apply only commits that verify (applier.trust)
    own_repo: bool = False  # `kubedr sync`'s throwaway repo: applied whole, never held (applier.history)
    drift: bool = True  # a daemon watches what it applied for drift (applier.drift)
    heal: bool | None = None  # reapply drifted objects; None: where the secondary is standby
    standby_rules: tuple[holds.Rule, ...] = ()  # the repo policy's `standby:` rules (kubedr.holds)
    source: str = ""  # the source's name: its records, and the label on what it applies (applier.sources, owners)
    service_account: str | None = None  # NAMESPACE/NAME: apply through it (impersonation), not as the applier



class PolicyError(Exception):
    """The policy file is unusable; one line (it is then ignored, and reported as a failure)."""


def _str_map(value: Any) -> dict[str, str]:
    if isinstance(value, list):  # ["a=b", ...] as on the command line
        return dict(str(v).split("=", 1) for v in value if "=" in str(v))
    if not isinstance(value, dict):
        raise ValueError("expected a mapping old: new")
    return {str(k): str(v) for k, v in value.items()}


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


# policy key -> (Settings field, converter). Maps are fields of Settings.maps ("maps.<field>").
FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "prune": ("prune", _bool),
    "prune_max_fraction": ("prune_max_fraction", float),
    "prune_max_objects": ("prune_max_objects", int),
    "standby": ("default_standby", _bool),
    "recreate": ("recreate", _bool),
    "heal": ("heal", _bool),
    "drift": ("drift", _bool),
    "standby_replicas": ("standby_replicas", int),
    "standby_replicas_by_namespace": ("namespace_replicas", lambda v: {k: int(n) for k, n in _str_map(v).items()}),
    "namespace_map": ("maps.namespaces", _str_map),
    "image_map": ("maps.images", _str_map),
    "storage_class_map": ("maps.storage_classes", _str_map),
}


# Settings field -> the values it may take, whether a flag, $KUBEDR_*, the config file or the repo's policy sets it.
LIMITS: dict[str, Bound] = {
    "prune_max_fraction": Bound(above=0, most=1),  # a share of the inventory; above 1 would disable the guard
    "prune_max_objects": Bound(least=0),
    "standby_replicas": Bound(least=0),
    "namespace_replicas": Bound(least=0),
    "concurrency": Bound(least=1),
}


def parse(data: bytes) -> dict[str, Any]:
    """The apply section (and the standby rules) as Settings field -> value; PolicyError names the bad key."""
    try:
        section = policyfile.section(data, "apply")
    except policyfile.PolicyFileError as exc:
        raise PolicyError(str(exc)) from exc
    out: dict[str, Any] = {}
    for key, value in section.items():
        if key not in FIELDS or value is None:
            continue  # unknown keys belong to newer kubedr versions; null means "not set"
        field, convert = FIELDS[key]
        try:
            out[field] = convert(value)
        except (TypeError, ValueError) as exc:
            raise PolicyError(f"apply.{key}: {exc}") from exc
        bad = out_of_bounds({field: out[field]}, LIMITS)
        if bad is not None:
            raise PolicyError(f"apply.{key}: {bad[1]:g}: must be {bad[2]}")
    try:
        rules = holds.policy_rules(data)
    except holds.HoldError as exc:
        raise PolicyError(str(exc)) from exc
    if rules:
        out["standby_rules"] = rules
    return out


def merge(settings: Settings, policy: dict[str, Any]) -> Settings:
    """Settings with the policy's values for every field the operator did not set explicitly."""
    top: dict[str, Any] = {}
    maps: dict[str, Any] = {}
    for field, value in policy.items():
        if field in settings.explicit:
            continue
        if field.startswith("maps."):
            maps[field[5:]] = value
        else:
            top[field] = value
    if maps:
        top["maps"] = dataclasses.replace(settings.maps, **maps)
    return dataclasses.replace(settings, **top) if top else settings


__all__ = ["POLICY_PATH", "FIELDS", "LIMITS", "PolicyError", "parse", "merge", "Maps"]
