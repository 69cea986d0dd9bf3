"""The standby rules on one secondary: the repo policy's, the built-in table (kubedr.holds), and the scale
subresources of the CRDs served there, each CRD read from the secondary when an object of its kind is first
held in a round. A rule the CRD's schema refuses (`minimum: 1` for a standby of 0) is reported once and the
object is applied as it is."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from kubedr import holds
from kubedr.apierrors import NotFound
from kubedr.contract import ObjectRef
from kubedr.holds import Rule
from kubedr.kubeapi import Cluster

log = logging.getLogger("kubedr.applier.standby")
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"


class Holds:
    """Which rule holds a kind here; thread-safe (objects are decoded in parallel)."""

    def __init__(self, policy: Iterable[Rule] = (), cluster: Cluster | None = None) -> None:
        self.policy_rules = tuple(policy)
        self.policy: Mapping[tuple[str, str], Rule] = {(r.group, r.kind): r for r in self.policy_rules}
        self.cluster = cluster
        self._crds: dict[tuple[str, str], dict[str, Any] | None] = {}
        self._lock = threading.Lock()
        self._said: set[str] = set()
        self._report = ""

    def fingerprint(self) -> str:
        """Changes with the rules (the built-in table, the policy); part of the mode's fingerprint."""
        return holds.fingerprint(self.policy_rules)

    def forget(self) -> None:
        """Read the CRDs again (a round starts: one may have gained or lost its scale subresource)."""
        with self._lock:
            self._crds.clear()

    def crd(self, group: str, kind: str, api_version: str | None = None) -> dict[str, Any] | None:
        """The CRD of a custom resource kind as the secondary serves it; None for built-in kinds or without one."""
        if "." not in group or self.cluster is None:
            return None  # a CRD's group has a dot; Kubernetes' own groups have none
        key = (group, kind)
        with self._lock:
            if key in self._crds:
                return self._crds[key]
        resource = (self.cluster.resource_for(api_version, kind) if api_version and "/" in api_version
                    else self.cluster.resource_of(ObjectRef(group, kind, "", "")))
        crd: dict[str, Any] | None = None
        if resource is not None:
            try:
                crd = self.cluster.request("GET", f"{CRDS}{resource.plural}.{group}")
            except NotFound:
                crd = None  # an aggregated API, not a CRD
        with self._lock:
            self._crds[key] = crd
        return crd

    def rule(self, group: str, kind: str, api_version: str = "") -> Rule | None:
        """The rule holding this kind, None when it is applied as it is."""
        crd = None
        if (group, kind) not in self.policy and holds.resolve(group, kind, {}, None) is None:
            crd = self.crd(group, kind, api_version)  # only a scale subresource can still hold it
        return holds.resolve(group, kind, self.policy, crd, api_version.rpartition("/")[2] or None)

    def refusal(self, rule: Rule, api_version: str, value: Any) -> str | None:
        """Why the kind's CRD does not allow the standby value (said once in the log); None when it does."""
        crd = self.crd(rule.group, rule.kind, api_version)
        why = holds.schema_refusal(crd, api_version.rpartition("/")[2] or None, rule.tokens, value)
        if why is not None:
            self.say(f"standby: {rule.name} is applied as it is, not held: {why} (rule: {rule.describe()})")
        return why

    def say(self, line: str) -> None:
        """Log a line once per process (a rule that cannot hold is said once, not per object)."""
        with self._lock:
            if line in self._said:
                return
            self._said.add(line)
        log.warning("%s", line)

    @property
    def reported(self) -> bool:
        return bool(self._report)

    def log_report(self, kinds: Iterable[tuple[str, str]]) -> None:
        """Log which of these kinds are held and by which rule, when that changed (at start, then on change)."""
        lines = holds.report(kinds, self.policy, lambda g, k: self.crd(g, k))
        text = "\n".join(lines)
        if text != self._report:
            self._report = text
            for line in lines:
                log.info("%s", line)
