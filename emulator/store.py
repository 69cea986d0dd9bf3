"""The emulator's object store: one global resourceVersion, server-owned metadata, a bounded event history, watchers.

Objects are immutable once committed: each write builds a new dict and serializes it once, so reads, lists and
watch fan-out share the same bytes. The sections live in sibling modules (registry: types and the commit; writes;
deletion: GC and namespaces; crds; reads: lists and watches); this module joins them and adds the in-process API
(create/get/list/update/patch/apply/delete). The HTTP server calls the `*_rt` variants with the ServedResource
resolved from the URL.
"""

from __future__ import annotations

import copy

from kubedr.emulator import errors
from kubedr.emulator.crds import Crds
from kubedr.emulator.deletion import Deletion
from kubedr.emulator.objects import DEFAULT_MANAGER
from kubedr.emulator.reads import Reads, Watcher
from kubedr.emulator.resources import ServedResource
from kubedr.emulator.writes import Writes


class ClusterStore(Writes, Deletion, Crds, Reads):
    """Thread-safe objects by resource, with the server's write semantics and watch history."""

    def _rt_of(self, obj: dict) -> ServedResource:
        try:
            return self.kind(obj["apiVersion"], obj["kind"])
        except KeyError:
            raise errors.bad_request("apiVersion and kind are required") from None

    def create(self, obj: dict, manager: str = DEFAULT_MANAGER, namespace: str | None = None,
               dry_run: bool = False) -> dict:
        """Create an object (a deep copy of obj is stored); returns the stored object."""
        rt = self._rt_of(obj)
        obj = copy.deepcopy(obj)
        return self.copy_out(self.create_rt(rt, obj, namespace or obj.get("metadata", {}).get("namespace"), manager,
                                            dry_run))

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict:
        return self.copy_out(self.get_rt(self.kind(api_version, kind), name, namespace))

    def list(self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None,
             field_selector: str | None = None) -> list[dict]:
        """Objects of a kind (each with kind and apiVersion), in key order."""
        _, entries, _ = self.list_rt(self.kind(api_version, kind), namespace, label_selector, field_selector)
        return [self.copy_out(e) for e in entries]

    def update(self, obj: dict, manager: str = DEFAULT_MANAGER, dry_run: bool = False,
               subresource: str | None = None) -> dict:
        rt = self._rt_of(obj)
        obj = copy.deepcopy(obj)
        meta = obj.get("metadata") or {}
        if subresource == "scale":
            raise errors.bad_request("use scale()")
        return self.copy_out(self.update_rt(rt, obj, meta.get("name", ""), meta.get("namespace"), manager, dry_run,
                                            subresource))

    def patch(self, api_version: str, kind: str, name: str, patch: object, patch_type: str = "merge",
              namespace: str | None = None, manager: str = DEFAULT_MANAGER, force: bool = False,
              dry_run: bool = False, subresource: str | None = None) -> dict:
        """patch_type: merge, json, strategic or apply."""
        return self.copy_out(self.patch_rt(self.kind(api_version, kind), name, namespace, copy.deepcopy(patch),
                                           patch_type, manager, force, dry_run, subresource))

    def apply(self, obj: dict, manager: str, force: bool = False, dry_run: bool = False) -> dict:
        """Server-side apply of a full or partial object."""
        meta = obj.get("metadata") or {}
        return self.patch(obj["apiVersion"], obj["kind"], meta.get("name", ""), obj, "apply", meta.get("namespace"),
                          manager, force, dry_run)

    def scale(self, api_version: str, kind: str, name: str, replicas: int, namespace: str | None = None,
              manager: str = DEFAULT_MANAGER) -> dict:
        rt = self.kind(api_version, kind)
        entry = self.scale_update_rt(rt, name, namespace, {"spec": {"replicas": replicas}}, manager)
        return self.copy_out(entry)

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None,
               propagation: str = "Background", dry_run: bool = False) -> dict:
        """Delete; returns the object as last seen (with deletionTimestamp when removal is pending)."""
        entry, _ = self.delete_rt(self.kind(api_version, kind), name, namespace, propagation, dry_run)
        return self.copy_out(entry)

    def watch(self, api_version: str, kind: str, namespace: str | None = None, resource_version: str | None = None,
              label_selector: str | None = None) -> Watcher:
        """A Watcher whose take(timeout) returns encoded event lines (initial lines are queued first)."""
        w, first = self.watch_rt(self.kind(api_version, kind), namespace, label_selector, None, resource_version)
        for line in reversed(first):
            w.pending.appendleft(line)
        return w
