"""The inventory: what kubedr applied, kept on the secondary, so prune deletes only kubedr's own objects.

Each source has its own, in ConfigMaps `kubedr-inventory.SOURCE.NN` in kubedr-system (applier.sources), entries
spread over BUCKETS by a stable hash so a small change rewrites one small ConfigMap and a large inventory never
hits the 1 MiB object limit.
Entries are added before an object is applied and removed only after it is deleted: a crash at any instant
leaves at worst an entry for an object that is already gone, never an object nobody remembers.
"""

from __future__ import annotations

import functools
import json
import zlib
from dataclasses import dataclass

from kubedr.applier.sources import BUCKETS, Records
from kubedr.applier.state import delete_state, list_state, put_state
from kubedr.contract import ObjectRef
from kubedr.kubeapi import Cluster

# The prune guard, as data: refuse when a run would delete more than either limit, unless forced.
MAX_PRUNE_FRACTION = 0.25
MAX_PRUNE_COUNT = 50


def _key(ref: ObjectRef) -> str:
    return json.dumps([ref.group, ref.kind, ref.namespace, ref.name])


@functools.lru_cache(maxsize=1 << 18)  # every round places every ref: a JSON dump each cost most of a save
def bucket_of(ref: ObjectRef) -> int:
    return zlib.crc32(_key(ref).encode()) % BUCKETS


class Inventory:
    """The set of ObjectRefs one source has applied on this cluster."""

    def __init__(self, cluster: Cluster, records: Records) -> None:
        self.cluster = cluster
        self.records = records
        self.refs: set[ObjectRef] = set()
        self._stored: dict[int, set[ObjectRef]] = {}

    def load(self) -> Inventory:
        """Read every inventory bucket of the source from the secondary."""
        self.refs.clear()
        self._stored = {}
        names = {self.records.bucket(b): b for b in range(BUCKETS)}
        for name, data in list_state(self.cluster, self.records.inventory_selector()).items():
            if name not in names:
                continue
            entries = {ObjectRef(*e) for e in json.loads(data.get("entries") or "[]")}
            self._stored[names[name]] = entries
            self.refs |= entries
        return self

    def save(self) -> None:
        """Write the buckets that changed (only those)."""
        wanted: dict[int, set[ObjectRef]] = {}
        for ref in self.refs:
            wanted.setdefault(bucket_of(ref), set()).add(ref)
        for b in range(BUCKETS):
            new, old = wanted.get(b, set()), self._stored.get(b, set())
            if new == old:
                continue
            name = self.records.bucket(b)
            if new:
                entries = json.dumps([[r.group, r.kind, r.namespace, r.name] for r in sorted(new)], indent=0)
                put_state(self.cluster, name, {"entries": entries}, self.records.labels("inventory"))
            else:
                delete_state(self.cluster, name)
            self._stored[b] = set(new)


@dataclass(frozen=True)
class PruneVerdict:
    """Whether a prune may run, and why not in one line."""

    allowed: bool
    reason: str = ""


def guard(deletions: int, inventory_size: int, force: bool = False, max_fraction: float = MAX_PRUNE_FRACTION,
          max_count: int = MAX_PRUNE_COUNT) -> PruneVerdict:
    """Refuse deleting more than 25% of the inventory or more than 50 objects in one run, unless forced."""
    if deletions == 0 or force:
        return PruneVerdict(True)
    if deletions > max_count:
        return PruneVerdict(False, f"prune refused: would delete {deletions} objects (more than "
                                   f"{max_count}); check the repo, or pass --force-prune")
    share = deletions / max(inventory_size, 1)
    if share > max_fraction:
        return PruneVerdict(False, f"prune refused: would delete {deletions} of {inventory_size} objects "
                                   f"({share:.0%}, more than {max_fraction:.0%} of what kubedr "
                                   f"applied); check the repo, or pass --force-prune")
    return PruneVerdict(True)
