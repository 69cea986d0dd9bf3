"""Ownership between sources: every object a source applies carries its name (label `kubedr.io/source`), and no
other source changes, holds or prunes it. The first source to apply an object owns it; another source's attempt is
refused for that object alone, in one line naming the owner, and the rest of its commit applies. An object kubedr
applied before sources (no such label) belongs to the first source that applies it again.

Before a round's applies, the objects it would change are looked up: one list per kind and namespace, selecting
only objects another source owns (`kubedr.io/source,kubedr.io/source!=NAME`), so a secondary where sources keep
to their own namespaces answers with empty lists. Prune, switchover, the Jobs retired in standby and drift heals
look at the object's own label.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from kubedr.applier.sources import SOURCE_LABEL
from kubedr.contract import ObjectRef
from kubedr.kubeapi import Cluster

log = logging.getLogger("kubedr.applier.owners")

LIST_PAGE = 500
MAX_SCOPED_LISTS = 64  # above this many (kind, namespace) pairs, one list per kind over all namespaces


def owner_of(obj: dict[str, Any]) -> str:
    """The source that applied an object ('' when none is recorded)."""
    return str(((obj.get("metadata") or {}).get("labels") or {}).get(SOURCE_LABEL) or "")


def foreign(obj: dict[str, Any], source: str) -> str:
    """The other source that owns an object, '' when it is this source's or nobody's."""
    owner = owner_of(obj)
    return owner if owner and owner != source else ""


@dataclass(frozen=True)
class Refusal:
    """An object of the repo that another source owns: refused, in one line."""

    ref: ObjectRef
    path: str
    owner: str

    def reason(self) -> str:
        """Why it is not applied (the path is said by whoever prints it)."""
        if self.ref.kind == "Namespace" and not self.ref.group:
            return (f"refused: Namespace {self.ref.name} is owned by source {self.owner}: two sources write "
                    f"namespace {self.ref.name} (give one a --namespace-map)")
        return (f"refused: {self.ref.display} is owned by source {self.owner} (a source never changes another "
                f"source's object)")

    def to_data(self) -> dict[str, str]:
        return {"object": self.ref.display, "path": self.path, "owner": self.owner}


class Owners:
    """Who owns what on the secondary, as far as one source needs to know before it writes."""

    def __init__(self, cluster: Cluster, source: str) -> None:
        self.cluster = cluster
        self.source = source
        self.selector = f"{SOURCE_LABEL},{SOURCE_LABEL}!={source}"

    def others(self, refs: Iterable[ObjectRef]) -> dict[ObjectRef, str]:
        """The refs another source owns now -> its name."""
        wanted = set(refs)
        scopes = {(r.group, r.kind, r.namespace) for r in wanted}
        if len(scopes) > MAX_SCOPED_LISTS:
            scopes = {(g, k, "") for g, k, _ in scopes}
        found: dict[ObjectRef, str] = {}
        for group, kind, namespace in sorted(scopes):
            for item in self._owned_elsewhere(group, kind, namespace):
                meta = item.get("metadata") or {}
                ref = ObjectRef(group, kind, meta.get("namespace") or "", meta.get("name") or "")
                if ref in wanted:
                    found[ref] = owner_of(item)
        return found

    def claim(self, paths: list[str], path_ref: dict[str, ObjectRef], say: bool = True) -> tuple[list[str],
                                                                                                list[Refusal]]:
        """(the paths this source may apply, the refusals of the others), each refusal logged in one line (say)."""
        taken = self.others(path_ref[p] for p in paths)
        refused = [Refusal(path_ref[p], p, taken[path_ref[p]]) for p in paths if path_ref[p] in taken]
        for r in refused if say else ():
            log.error("%s: %s", r.path, r.reason())
        return [p for p in paths if path_ref[p] not in taken], refused

    def _owned_elsewhere(self, group: str, kind: str, namespace: str) -> Iterator[dict[str, Any]]:
        resource = self.cluster.resource_of(ObjectRef(group, kind, "", ""))
        if resource is None:  # not served (yet): nothing of it exists
            return
        token = ""
        while True:
            query = {"labelSelector": self.selector, "limit": str(LIST_PAGE), **({"continue": token} if token else {})}
            page = self.cluster.get(resource.path(namespace), query)
            yield from page.get("items") or []
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return
