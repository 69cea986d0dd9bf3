"""Deletion: finalizers, propagation (Background, Foreground, Orphan), the garbage collector, and namespace
termination (the namespace controller's part when no asynchronous one is hooked in)."""

from __future__ import annotations

import copy

from kubedr.emulator import errors
from kubedr.emulator.errors import api_error
from kubedr.emulator.objects import HistoryEvent, StoredObject, now_iso
from kubedr.emulator.registry import Registry
from kubedr.emulator.resources import ServedResource


class NamespaceFinalizer:
    """Marker base for a hook that empties terminating namespaces asynchronously (the controllers provide one)."""

    def __call__(self, ev: HistoryEvent) -> None:  # pragma: no cover - interface
        pass

    def request(self, name: str) -> None:  # pragma: no cover - interface
        pass


class Deletion(Registry):
    """DELETE by resource and what follows from it."""

    def delete_rt(self, rt: ServedResource, name: str, namespace: str | None = None, propagation: str | None = None,
                  dry_run: bool = False, preconditions: dict | None = None) -> tuple[StoredObject, bool]:
        """DELETE; returns (entry, deleted_now). Finalizers, Foreground and namespaces delay the removal."""
        ns = namespace if rt.namespaced else ""
        with self.lock:
            cur = self._require(rt, ns, name)
            meta = cur.obj["metadata"]
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != meta["uid"]:
                raise errors.conflict(rt, name, f"Precondition failed: UID in precondition: {pre['uid']}, UID in "
                                      f"object meta: {meta['uid']}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
                raise errors.conflict(rt, name, f"Precondition failed: ResourceVersion in precondition: "
                                      f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                      f"{meta['resourceVersion']}")
            if dry_run:
                return cur, not meta.get("finalizers") and rt.kind != "Namespace"
            policy = propagation or "Background"
            if rt.kind == "Namespace":
                if name in ("default", "kube-system", "kube-public"):
                    raise api_error(403, "Forbidden", f'namespaces "{name}" is forbidden: this namespace may not be '
                                   "deleted", {"name": name, "kind": "namespaces"})
                return self._terminate_namespace(rt, cur), False
            if rt.kind == "CustomResourceDefinition":
                self._drop_crd(cur.obj)
            if meta.get("deletionTimestamp"):
                return cur, False
            if meta.get("finalizers") or policy == "Foreground":
                new = copy.deepcopy(cur.obj)
                nm = new["metadata"]
                nm["deletionTimestamp"] = now_iso()
                nm["deletionGracePeriodSeconds"] = 0
                if policy == "Foreground":
                    nm["finalizers"] = [*(nm.get("finalizers") or []), "foregroundDeletion"]
                elif policy == "Orphan":
                    nm["finalizers"] = [*(nm.get("finalizers") or []), "orphan"]
                cur = self._commit(rt, new, cur, "MODIFIED")
                if policy == "Foreground":
                    self._collect(meta["uid"], "Foreground")
                    if self._blocking_dependents(meta["uid"]):
                        return cur, False  # removed when the last blocking dependent is gone (_delete_now)
                    return self._remove_finalizer(rt, cur, "foregroundDeletion"), False
                if policy == "Orphan":
                    self._orphan(meta["uid"])
                    return self._remove_finalizer(rt, cur, "orphan"), False
                return cur, False
            if policy == "Orphan":
                self._orphan(meta["uid"])
            entry = self._delete_now(rt, cur)
            return entry, True

    def _remove_finalizer(self, rt: ServedResource, cur: StoredObject, finalizer: str) -> StoredObject:
        new = copy.deepcopy(cur.obj)
        fins = [f for f in new["metadata"].get("finalizers") or [] if f != finalizer]
        if fins:
            new["metadata"]["finalizers"] = fins
            return self._commit(rt, new, cur, "MODIFIED")
        new["metadata"].pop("finalizers", None)
        entry = self._commit(rt, new, cur, "MODIFIED")
        return self._delete_now(rt, entry)

    def _delete_now(self, rt: ServedResource, cur: StoredObject) -> StoredObject:
        obj = dict(cur.obj)
        obj["metadata"] = dict(obj["metadata"])
        entry = self._commit(rt, obj, cur, "DELETED")
        self._collect(obj["metadata"]["uid"], "Background")
        for ref in obj["metadata"].get("ownerReferences") or ():
            if ref.get("blockOwnerDeletion"):
                self._finish_foreground(ref.get("uid"))
        return entry

    def _blocking_dependents(self, uid: str) -> bool:
        """Dependents still holding a foreground deletion of their owner (blockOwnerDeletion, as the GC reads it)."""
        for group, plural, ns, name in self.owners.get(uid, ()):
            rt = self._any_rt(group, plural)
            cur = self._entry(rt, ns, name) if rt else None
            refs = cur.obj["metadata"].get("ownerReferences") or () if cur else ()
            if any(r.get("uid") == uid and r.get("blockOwnerDeletion") for r in refs):
                return True
        return False

    def _finish_foreground(self, uid: str | None) -> None:
        """The owner in foreground deletion goes once no blocking dependent is left."""
        where = self.uids.get(uid or "")
        rt = self._any_rt(where[0], where[1]) if where else None
        owner = self._entry(rt, where[2], where[3]) if rt and where else None
        if owner is None or "foregroundDeletion" not in (owner.obj["metadata"].get("finalizers") or ()):
            return
        if not self._blocking_dependents(uid or ""):
            self._remove_finalizer(rt, owner, "foregroundDeletion")

    def _collect(self, uid: str, policy: str) -> None:
        """Garbage-collect the dependents of a deleted owner (dependents with other live owners just lose the ref)."""
        for group, plural, ns, name in sorted(self.owners.get(uid, ())):
            rt = self._any_rt(group, plural)
            cur = self._entry(rt, ns, name) if rt else None
            if cur is None:
                continue
            refs = cur.obj["metadata"].get("ownerReferences") or []
            others = [r for r in refs if r.get("uid") != uid and r.get("uid") in self.uids]
            if others:
                new = copy.deepcopy(cur.obj)
                new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                self._commit(rt, new, cur, "MODIFIED")
                continue
            if cur.obj["metadata"].get("deletionTimestamp"):
                continue
            if cur.obj["metadata"].get("finalizers"):
                self.delete_rt(rt, name, ns, "Background")
            else:
                self._delete_now(rt, cur)

    def _orphan(self, uid: str) -> None:
        for group, plural, ns, name in sorted(self.owners.get(uid, ())):
            rt = self._any_rt(group, plural)
            cur = self._entry(rt, ns, name) if rt else None
            if cur is None:
                continue
            new = copy.deepcopy(cur.obj)
            refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            if refs:
                new["metadata"]["ownerReferences"] = refs
            else:
                new["metadata"].pop("ownerReferences", None)
            self._commit(rt, new, cur, "MODIFIED")

    def _namespace_progress(self, ns: str) -> None:
        names = [n for n in self.hooks if isinstance(n, NamespaceFinalizer)]
        if names:
            names[0].request(ns)
        elif not any(ns in b for k, b in self.objs.items() if k != ("", "namespaces")):
            self.finalize_namespace(ns)

    def _terminate_namespace(self, rt: ServedResource, cur: StoredObject) -> StoredObject:
        """Namespace deletion: Terminating first; the namespace controller empties it and then removes it."""
        if not cur.obj["metadata"].get("deletionTimestamp"):
            new = copy.deepcopy(cur.obj)
            new["metadata"]["deletionTimestamp"] = now_iso()
            new.setdefault("status", {})["phase"] = "Terminating"
            cur = self._commit(rt, new, cur, "MODIFIED")
        if not any(isinstance(h, NamespaceFinalizer) for h in self.hooks):
            self.finalize_namespace(cur.obj["metadata"]["name"])
            return self._entry(rt, "", cur.obj["metadata"]["name"]) or cur
        for h in self.hooks:
            if isinstance(h, NamespaceFinalizer):
                h.request(cur.obj["metadata"]["name"])
        return cur

    def finalize_namespace(self, name: str) -> None:
        """The namespace controller: delete everything in a terminating namespace; once nothing is left (objects
        with finalizers keep it Terminating), drop the `kubernetes` finalizer and remove the namespace."""
        with self.lock:
            nsrt = self.kinds[("v1", "Namespace")]
            cur = self._entry(nsrt, "", name)
            if cur is None or not cur.obj["metadata"].get("deletionTimestamp"):
                self.terminating.discard(name)
                return
            self.terminating.add(name)
            left = 0
            for key, bucket in list(self.objs.items()):
                rt = self._any_rt(*key)
                if rt is None or not rt.namespaced:
                    continue
                for obj_name in sorted(bucket.get(name, {})):
                    entry = self._entry(rt, name, obj_name)
                    if entry is None:
                        continue
                    if entry.obj["metadata"].get("finalizers"):
                        left += 1
                        if not entry.obj["metadata"].get("deletionTimestamp"):
                            self.delete_rt(rt, obj_name, name)
                    else:
                        self._delete_now(rt, entry)
            if left:
                return
            self.terminating.discard(name)
            cur = self._entry(nsrt, "", name)
            if cur is not None:
                new = copy.deepcopy(cur.obj)
                new.setdefault("spec", {})["finalizers"] = []
                cur = self._commit(nsrt, new, cur, "MODIFIED")
                self._delete_now(nsrt, cur)
