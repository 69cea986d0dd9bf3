"""CustomResourceDefinitions: the apiextensions controllers (names accepted, Established) and serving or dropping
the kinds a CRD defines."""

from __future__ import annotations

import copy

from kubedr.emulator import openapi as _openapi
from kubedr.emulator import resources
from kubedr.emulator.objects import StoredObject, now_iso
from kubedr.emulator.registry import Registry


class Crds(Registry):
    """What creating, updating and deleting a CRD does to the served types."""

    def _crd_established(self, entry: StoredObject) -> StoredObject:
        """The apiextensions controllers: accept the names, mark Established, start serving the kind."""
        crd = entry.obj
        now = now_iso()
        new = copy.deepcopy(crd)
        names = dict(new["spec"]["names"])
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
        new["status"] = {
            "acceptedNames": names,
            "conditions": [
                {"lastTransitionTime": now, "message": "no conflicts found", "reason": "NoConflicts",
                 "status": "True", "type": "NamesAccepted"},
                {"lastTransitionTime": now, "message": "the initial names have been accepted",
                 "reason": "InitialNamesAccepted", "status": "True", "type": "Established"}],
            "storedVersions": [v["name"] for v in new["spec"].get("versions", []) if v.get("storage")]}
        rt = self.kinds[("apiextensions.k8s.io/v1", "CustomResourceDefinition")]
        self._manager_fields(crd, new, "Go-http-client", rt, "status")
        entry = self._commit(rt, new, entry, "MODIFIED")
        self._serve_crd(entry.obj)
        return entry

    def _serve_crd(self, crd: dict) -> None:
        spec = crd["spec"]
        served = [v for v in spec.get("versions", []) if v.get("served", True)]
        for rt in [rt for rt in self.types.values() if rt.extra.get("crd") == crd["metadata"]["name"]]:
            if rt.version not in {v["name"] for v in served}:
                del self.types[(rt.group, rt.version, rt.plural)]
                self.kinds.pop((rt.api_version, rt.kind), None)
        for v in served:
            rt = resources.crd_resource(crd, v)
            self.register(rt)
            schema = (v.get("schema") or {}).get("openAPIV3Schema")
            _openapi.add_custom_resource(rt.group, rt.version, rt.kind, rt.plural, rt.namespaced, schema)

    def _drop_crd(self, crd: dict) -> None:
        spec = crd["spec"]
        group, plural = spec["group"], spec["names"]["plural"]
        rt = self._any_rt(group, plural)
        if rt is not None:
            for ns, names in list(self.objs.get((group, plural), {}).items()):
                for name in sorted(names):
                    entry = self._entry(rt, ns, name)
                    if entry is not None:
                        self._delete_now(rt, entry)
        for v in spec.get("versions") or ():
            _openapi.remove_custom_resource(group, v["name"], spec["names"]["kind"])
        self.unregister(group, plural)
