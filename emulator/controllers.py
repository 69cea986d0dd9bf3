"""The control-plane noise a real cluster makes, written through the store as kube-controller-manager would.

One worker thread consumes the store's events for the few kinds it cares about (writes of other kinds cost one
dict lookup), so watch-heavy benchmarks are not slowed by it.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import queue
import threading
from typing import Any

from kubedr.emulator import daemonsets, endpoints, events
from kubedr.emulator.deletion import NamespaceFinalizer
from kubedr.emulator.errors import ApiError
from kubedr.emulator.kubelet import Kubelet
from kubedr.emulator.objects import HistoryEvent, now_iso
from kubedr.emulator.store import ClusterStore
from kubedr.selectors import selector_matches

log = logging.getLogger("kubedr.emulator.controllers")
KCM = "kube-controller-manager"
ROOT_CA_DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
                       "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
                       "guaranteed across distributions of Kubernetes clusters.")
FAKE_CA = ("-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIBADAKBggqhkjOPQQDAjAjMSEwHwYDVQQDDBhrdWJlZHItZW11bGF0b3It"
           "Y2EwHhcNMjQwMTAxMDAwMDAwWhcNMzQwMTAxMDAwMDAwWjAjMSEwHwYDVQQDDBhrdWJlZHItZW11bGF0b3ItY2E=\n"
           "-----END CERTIFICATE-----\n")
WATCHED = {("", "namespaces"), ("apps", "deployments"), ("apps", "replicasets"), ("", "services"), ("", "pods"),
           ("apps", "statefulsets"), ("batch", "jobs"), ("apps", "daemonsets"), ("", "nodes")}


class Controllers(NamespaceFinalizer):
    """Namespace, deployment, replicaset and endpoint controllers in one worker thread."""

    def __init__(self, store: ClusterStore, kubelet: Kubelet | None = None):
        self.store = store
        self.kubelet = kubelet  # starts every Pod (Ready, or failing to pull); None: Pods stay Pending
        self.queue: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="emulator-controllers", daemon=True)
        self.stopped = False

    def start(self) -> None:
        self.store.hooks.append(self)
        self.thread.start()

    def stop(self) -> None:
        self.stopped = True
        if self.kubelet is not None:
            self.kubelet.stop()
        if self in self.store.hooks:
            self.store.hooks.remove(self)
        self.queue.put(None)
        self.thread.join(5)

    def __call__(self, ev: HistoryEvent) -> None:
        if ev.key in WATCHED:
            self.queue.put(("event", ev))

    def request(self, name: str) -> None:
        self.queue.put(("finalize", name))

    def idle(self, timeout: float = 5.0) -> bool:
        """Wait until the controllers have handled everything queued so far (for tests)."""
        done = threading.Event()
        self.queue.put(("mark", done))
        return done.wait(timeout)

    def _run(self) -> None:
        while not self.stopped:
            item = self.queue.get()
            if item is None:
                return
            what, arg = item
            try:
                if what == "mark":
                    arg.set()
                elif what == "finalize":
                    self.store.finalize_namespace(arg)
                else:
                    self._handle(arg)
            except ApiError as exc:
                log.debug("controller write refused: %s", exc.message)
            except Exception:
                log.exception("emulator controller failed")

    def _handle(self, ev: HistoryEvent) -> None:
        obj = ev.entry.obj
        kind = obj["kind"]
        if kind == "Namespace" and ev.type == "ADDED":
            self._namespace(obj)
        elif kind == "Deployment" and ev.type != "DELETED":
            self._deployment(obj)
        elif kind == "ReplicaSet":
            if ev.type != "DELETED":
                self._replicaset(obj)
            self._owner_status(obj)
        elif kind == "Service" and ev.type == "DELETED":
            self._service_gone(obj)
        elif kind == "Service":
            self._service(obj)
            endpoints.sync(self.store, obj)
        elif kind == "Pod":
            if ev.type == "ADDED" and self.kubelet is not None:
                self.kubelet.pod_added(obj)
            self._pod_changed(obj)
            endpoints.pod_changed(self.store, obj, ev.prev.obj if ev.prev else None)
        elif kind == "StatefulSet" and ev.type != "DELETED":
            self._statefulset(obj)
        elif kind == "DaemonSet" and ev.type != "DELETED":
            self._daemonset(obj)
        elif kind == "Node":
            for ds in self.store.list("apps/v1", "DaemonSet"):
                self._daemonset(ds)
        elif kind == "Job" and ev.type != "DELETED":
            before = ((ev.prev.obj if ev.prev else {}).get("spec") or {}).get("suspend")
            if ev.type == "ADDED" or bool(before) != bool((obj.get("spec") or {}).get("suspend")):
                self._job(obj)

    # ------------------------------------------------------------ namespaces

    def _namespace(self, ns: dict) -> None:
        name = ns["metadata"]["name"]
        s = self.store
        if ns["metadata"].get("deletionTimestamp"):
            return
        objs: tuple[dict[str, Any], ...] = (
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": name}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
                "name": "kube-root-ca.crt", "namespace": name,
                "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION}}, "data": {"ca.crt": FAKE_CA}},
        )
        for obj in objs:
            rt = s.kind(obj["apiVersion"], obj["kind"])
            if s._entry(rt, name, obj["metadata"]["name"]) is None:
                try:
                    fields_done = obj["kind"] == "ServiceAccount"  # the real default SA carries no managedFields
                    s.create_rt(rt, obj, name, KCM, fields_done=fields_done)
                except ApiError:
                    pass

    # ------------------------------------------------------------ deployments -> replicasets -> pods

    def _owned(self, kind: str, owner: dict) -> list[dict]:
        s = self.store
        uid = owner["metadata"]["uid"]
        out = []
        for group, plural, ns, name in sorted(s.owners.get(uid, ())):
            rt = s._any_rt(group, plural)
            e = s._entry(rt, ns, name) if rt else None
            if e is not None and e.obj["kind"] == kind:
                out.append(e.obj)
        return out

    def _event(self, obj: dict, reason: str, message: str, component: str) -> None:
        """A core/v1 Event about obj, as the controllers' event recorders write them."""
        events.record(self.store, obj, reason, message, component)

    @staticmethod
    def _owner_ref(obj: dict) -> dict:
        return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
                "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}

    def _deployment(self, d: dict) -> None:
        s = self.store
        if d["metadata"].get("deletionTimestamp"):
            return
        spec = d.get("spec") or {}
        template = copy.deepcopy(spec.get("template") or {})
        tpl_hash = hashlib.sha256(repr(sorted(_flat(template))).encode()).hexdigest()
        tpl_hash = "".join("bcdfghjklmnpqrstvwxz2456789"[int(c, 16)] for c in tpl_hash[:10])
        replicas = spec.get("replicas", 1)
        owned = self._owned("ReplicaSet", d)
        current = next((r for r in owned if r["metadata"].get("labels", {}).get("pod-template-hash") == tpl_hash),
                       None)
        revisions = [int(r["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision", "0"))
                     for r in owned]
        rs_rt = s.kind("apps/v1", "ReplicaSet")
        ns = d["metadata"]["namespace"]
        if current is None:
            revision = str(max(revisions, default=0) + 1)
            labels = {**(template.get("metadata", {}).get("labels") or {}), "pod-template-hash": tpl_hash}
            template.setdefault("metadata", {})["labels"] = labels
            selector = copy.deepcopy(spec.get("selector") or {})
            selector.setdefault("matchLabels", {})["pod-template-hash"] = tpl_hash
            annotations = {**(d["metadata"].get("annotations") or {}),
                           "deployment.kubernetes.io/desired-replicas": str(replicas),
                           "deployment.kubernetes.io/max-replicas": str(replicas + max(1, -(-replicas // 4))),
                           "deployment.kubernetes.io/revision": revision}
            annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
            rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
                "name": f"{d['metadata']['name']}-{tpl_hash}", "namespace": ns,
                "labels": labels, "annotations": annotations, "ownerReferences": [self._owner_ref(d)]},
                "spec": {"replicas": replicas, "selector": selector, "template": template}}
            try:
                current = s.create_rt(rs_rt, rs, ns, KCM).obj
            except ApiError:
                return
            self._event(d, "ScalingReplicaSet", f"Scaled up replica set {current['metadata']['name']} to {replicas}",
                        "deployment-controller")
        elif current["spec"].get("replicas") != replicas:
            new = copy.deepcopy(current)
            new["spec"]["replicas"] = replicas
            new["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/desired-replicas"] = str(replicas)
            up = replicas > (current["spec"].get("replicas") or 0)
            current = s.update_rt(rs_rt, new, new["metadata"]["name"], ns, KCM).obj
            self._event(d, "ScalingReplicaSet", f"Scaled {'up' if up else 'down'} replica set "
                        f"{current['metadata']['name']} to {replicas}", "deployment-controller")
        for old in owned:
            if old is not current and old["metadata"]["uid"] != current["metadata"]["uid"] \
                    and old["spec"].get("replicas"):
                new = copy.deepcopy(old)
                new["spec"]["replicas"] = 0
                s.update_rt(rs_rt, new, new["metadata"]["name"], ns, KCM)
        self._deployment_status(d["metadata"]["namespace"], d["metadata"]["name"])

    def _replicaset(self, rs: dict) -> None:
        s = self.store
        if rs["metadata"].get("deletionTimestamp"):
            return
        ns = rs["metadata"]["namespace"]
        want = (rs.get("spec") or {}).get("replicas", 1)
        pods = [p for p in self._owned("Pod", rs) if not p["metadata"].get("deletionTimestamp")]
        pod_rt = s.kind("v1", "Pod")
        template = (rs.get("spec") or {}).get("template") or {}
        for _ in range(want - len(pods)):
            meta = copy.deepcopy(template.get("metadata") or {})
            meta.pop("creationTimestamp", None)
            meta.update({"generateName": rs["metadata"]["name"] + "-", "namespace": ns,
                         "ownerReferences": [self._owner_ref(rs)]})
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                   "spec": copy.deepcopy(template.get("spec") or {})}
            try:
                created = s.create_rt(pod_rt, pod, ns, KCM).obj
            except ApiError:
                return
            self._event(rs, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}",
                        "replicaset-controller")
        for pod in sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"], reverse=True)[:max(0, len(pods)
                                                                                                      - want)]:
            try:
                s.delete_rt(pod_rt, pod["metadata"]["name"], ns)
            except ApiError:
                continue
            self._event(rs, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}", "replicaset-controller")
        self._rs_status(ns, rs["metadata"]["name"])

    def _rs_status(self, ns: str, name: str) -> None:
        s = self.store
        rt = s.kind("apps/v1", "ReplicaSet")
        with s.lock:
            live = s._entry(rt, ns, name)
            if live is None:
                return
            rs = live.obj
            pods = [p for p in self._owned("Pod", rs) if not p["metadata"].get("deletionTimestamp")]
            n, ready = len(pods), len([p for p in pods if _ready(p)])
            status: dict = {"observedGeneration": rs["metadata"].get("generation", 1), "replicas": n}
            if n:  # omitempty, as the replicaset controller writes them; available = ready (no minReadySeconds)
                status["fullyLabeledReplicas"] = n
            if ready:
                status.update(readyReplicas=ready, availableReplicas=ready)
            if rs.get("status") != status:
                s.update_rt(rt, {**rs, "status": status}, name, ns, KCM, subresource="status")

    def _owner_status(self, rs: dict) -> None:
        for ref in rs["metadata"].get("ownerReferences") or ():
            if ref.get("kind") == "Deployment" and ref.get("controller"):
                self._deployment_status(rs["metadata"]["namespace"], ref["name"])

    def _deployment_status(self, ns: str, name: str) -> None:
        s = self.store
        rt = s.kind("apps/v1", "Deployment")
        with s.lock:
            live = s._entry(rt, ns, name)
            if live is None:
                return
            d = live.obj
            owned = self._owned("ReplicaSet", d)
            replicas = sum((r.get("status") or {}).get("replicas", 0) for r in owned)
            ready = sum((r.get("status") or {}).get("readyReplicas", 0) for r in owned)
            available = sum((r.get("status") or {}).get("availableReplicas", 0) for r in owned)
            want = (d.get("spec") or {}).get("replicas", 1)
            newest = max(owned, key=lambda r: int(r["metadata"].get("annotations", {}).get(
                "deployment.kubernetes.io/revision", "0")), default=None)
            updated = (newest.get("status") or {}).get("replicas", 0) if newest else 0
            now = now_iso()
            old_conds = {c["type"]: c for c in (d.get("status") or {}).get("conditions") or ()}

            def cond(type_: str, status: str, reason: str, message: str) -> dict:
                prev = old_conds.get(type_) or {}
                same = bool(prev) and prev.get("status") == status
                return {"lastTransitionTime": prev["lastTransitionTime"] if same else now,
                        "lastUpdateTime": prev["lastUpdateTime"] if same and prev.get("reason") == reason else now,
                        "message": message, "reason": reason, "status": status, "type": type_}

            minimum = available >= want - _max_unavailable(d)
            conds = [cond("Available", "True" if minimum else "False",
                          "MinimumReplicasAvailable" if minimum else "MinimumReplicasUnavailable",
                          "Deployment has minimum availability." if minimum else
                          "Deployment does not have minimum availability.")]
            if newest is not None:
                rs_name = newest["metadata"]["name"]
                complete = updated == want and replicas == want and available == want
                conds.append(cond("Progressing", "True", "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                                  f'ReplicaSet "{rs_name}" has successfully progressed.' if complete else
                                  f'ReplicaSet "{rs_name}" is progressing.'))
            status: dict = {"conditions": conds, "observedGeneration": d["metadata"].get("generation", 1)}
            for key, value in (("replicas", replicas), ("updatedReplicas", updated), ("readyReplicas", ready),
                               ("availableReplicas", available), ("unavailableReplicas", max(0, replicas - available))):
                if value:
                    status[key] = value  # omitempty, as the deployment controller writes them
            old = dict(d.get("status") or {})
            annotations = dict(d["metadata"].get("annotations") or {})
            if newest is not None:
                annotations["deployment.kubernetes.io/revision"] = newest["metadata"].get("annotations", {}).get(
                    "deployment.kubernetes.io/revision", "1")
            if _strip_times(old) != _strip_times(status) or annotations != (d["metadata"].get("annotations") or {}):
                meta = {**d["metadata"], "annotations": annotations}
                s.update_rt(rt, {**d, "metadata": meta, "status": status}, name, ns, KCM, subresource="status")

    # ------------------------------------------------------------ services -> endpoints, endpointslices

    def _service(self, svc: dict) -> None:
        s = self.store
        spec = svc.get("spec") or {}
        if not spec.get("selector") or svc["metadata"].get("deletionTimestamp"):
            return
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        headless = spec.get("clusterIP") == "None"
        ep_rt, eps_rt = s.kind("v1", "Endpoints"), s.kind("discovery.k8s.io/v1", "EndpointSlice")
        if s._entry(ep_rt, ns, name) is None:
            labels = {"service.kubernetes.io/headless": ""} if headless else {}
            meta: dict = {"name": name, "namespace": ns}
            if labels:
                meta["labels"] = labels
            meta["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time": now_iso()}
            try:
                s.create_rt(ep_rt, {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta}, ns, KCM)
            except ApiError:
                pass
        if not [e for e in self._owned("EndpointSlice", svc)]:
            labels = {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                      "kubernetes.io/service-name": name}
            if headless:
                labels["service.kubernetes.io/headless"] = ""
            slice_ = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {
                "generateName": name + "-", "namespace": ns, "labels": labels,
                "ownerReferences": [self._owner_ref(svc)]}, "addressType": "IPv4", "endpoints": None, "ports": None}
            try:
                s.create_rt(eps_rt, slice_, ns, KCM)
            except ApiError:
                pass

    def _service_gone(self, svc: dict) -> None:
        """The endpoints controller deletes a deleted Service's Endpoints (its EndpointSlices go by their owner)."""
        try:
            self.store.delete("v1", "Endpoints", svc["metadata"]["name"], svc["metadata"]["namespace"])
        except ApiError:
            pass  # none, or gone already

    def _pod_changed(self, pod: dict) -> None:
        for ref in pod["metadata"].get("ownerReferences") or ():
            if ref.get("kind") == "ReplicaSet" and ref.get("controller"):
                rs_rt = self.store.kind("apps/v1", "ReplicaSet")
                live = self.store._entry(rs_rt, pod["metadata"]["namespace"], ref["name"])
                if live is not None:
                    self._replicaset(live.obj)
            if ref.get("kind") == "DaemonSet" and ref.get("controller"):
                live = self.store._entry(self.store.kind("apps/v1", "DaemonSet"), pod["metadata"]["namespace"],
                                         ref["name"])
                if live is not None:
                    self._daemonset(live.obj)
            elif ref.get("kind") == "StatefulSet" and ref.get("controller"):
                live = self.store._entry(self.store.kind("apps/v1", "StatefulSet"), pod["metadata"]["namespace"],
                                         ref["name"])
                if live is not None and not live.obj["metadata"].get("deletionTimestamp"):
                    spec = live.obj.get("spec") or {}
                    self._statefulset_status(live.obj, f"{ref['name']}-{_hash(spec.get('template') or {})}",
                                             spec.get("replicas", 1))

    # ------------------------------------------------------------ daemonsets

    def _daemonset(self, ds: dict) -> None:
        """One Pod on each Node the template fits (daemonsets.eligible), none elsewhere; the counts in status.
        Pods are not replaced when the template changes (no rolling update)."""
        s = self.store
        meta = ds["metadata"]
        if meta.get("deletionTimestamp"):
            return
        ns = meta["namespace"]
        pod_spec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
        wanted = {n["metadata"]["name"] for n in s.list("v1", "Node") if daemonsets.eligible(n, pod_spec)}
        pod_rt = s.kind("v1", "Pod")
        placed: dict[str, dict] = {}
        for pod in self._owned("Pod", ds):
            node = (pod.get("spec") or {}).get("nodeName") or ""
            if pod["metadata"].get("deletionTimestamp"):
                continue
            if node in wanted and node not in placed:
                placed[node] = pod
                continue
            try:
                s.delete_rt(pod_rt, pod["metadata"]["name"], ns)
                self._event(ds, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}", "daemonset-controller")
            except ApiError:
                continue
        for node in sorted(wanted - set(placed)):
            try:
                placed[node] = s.create_rt(pod_rt, daemonsets.pod_for(ds, node, self._owner_ref(ds)), ns, KCM).obj
            except ApiError:
                return
            self._event(ds, "SuccessfulCreate", f"Created pod: {placed[node]['metadata']['name']}",
                        "daemonset-controller")
        ready = sum(any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in (p.get("status") or {}).get("conditions") or []) for p in placed.values())
        status = {"currentNumberScheduled": len(placed), "desiredNumberScheduled": len(wanted),
                  "numberMisscheduled": 0, "numberReady": ready, "numberAvailable": ready,
                  "numberUnavailable": len(wanted) - ready, "updatedNumberScheduled": len(placed),
                  "observedGeneration": meta.get("generation", 1)}
        ds_rt = s.kind("apps/v1", "DaemonSet")
        with s.lock:
            live = s._entry(ds_rt, ns, meta["name"])
            if live is not None and live.obj.get("status") != status:
                s.update_rt(ds_rt, {**live.obj, "status": status}, meta["name"], ns, KCM, subresource="status")


    # ------------------------------------------------------------ statefulsets, jobs

    def _statefulset(self, sts: dict) -> None:
        """Pods <name>-<i> with a ControllerRevision and (unowned) PVCs from volumeClaimTemplates."""
        s = self.store
        meta = sts["metadata"]
        if meta.get("deletionTimestamp"):
            return
        ns, name = meta["namespace"], meta["name"]
        spec = sts.get("spec") or {}
        template = copy.deepcopy(spec.get("template") or {})
        digest = _hash(template)
        revision = f"{name}-{digest}"
        selector_labels = (spec.get("selector") or {}).get("matchLabels") or {}
        cr_rt, pod_rt, pvc_rt = (s.kind("apps/v1", "ControllerRevision"), s.kind("v1", "Pod"),
                                 s.kind("v1", "PersistentVolumeClaim"))
        if s._entry(cr_rt, ns, revision) is None:
            s.create_rt(cr_rt, {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {
                "name": revision, "namespace": ns, "labels": {**selector_labels, "controller.kubernetes.io/hash": digest},
                "ownerReferences": [self._owner_ref(sts)]},
                "data": {"spec": {"template": {"$patch": "replace", **template}}}, "revision": 1}, ns, KCM)
        want = spec.get("replicas", 1)
        for i in range(want):
            pod_name = f"{name}-{i}"
            for claim in spec.get("volumeClaimTemplates") or ():
                claim_name = f"{claim['metadata']['name']}-{pod_name}"
                if s._entry(pvc_rt, ns, claim_name) is None:
                    s.create_rt(pvc_rt, {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {
                        "name": claim_name, "namespace": ns, "labels": dict(selector_labels)},
                        "spec": copy.deepcopy(claim.get("spec") or {})}, ns, KCM)
            if s._entry(pod_rt, ns, pod_name) is None:
                pmeta = copy.deepcopy(template.get("metadata") or {})
                pmeta.pop("creationTimestamp", None)
                pmeta["labels"] = {**(pmeta.get("labels") or {}), "apps.kubernetes.io/pod-index": str(i),
                                   "controller-revision-hash": revision,
                                   "statefulset.kubernetes.io/pod-name": pod_name}
                pmeta.update({"name": pod_name, "generateName": f"{name}-", "namespace": ns,
                              "ownerReferences": [self._owner_ref(sts)]})
                pspec = copy.deepcopy(template.get("spec") or {})
                pspec["hostname"] = pod_name
                if spec.get("serviceName"):
                    pspec["subdomain"] = spec["serviceName"]
                pspec["volumes"] = [*(pspec.get("volumes") or []), *[
                    {"name": c["metadata"]["name"], "persistentVolumeClaim": {
                        "claimName": f"{c['metadata']['name']}-{pod_name}"}}
                    for c in spec.get("volumeClaimTemplates") or ()]] or None
                if pspec["volumes"] is None:
                    del pspec["volumes"]
                s.create_rt(pod_rt, {"apiVersion": "v1", "kind": "Pod", "metadata": pmeta, "spec": pspec}, ns, KCM)
                self._event(sts, "SuccessfulCreate", f"create Pod {pod_name} in StatefulSet {name} successful",
                            "statefulset-controller")
        for pod in self._owned("Pod", sts):
            idx = pod["metadata"]["name"].rsplit("-", 1)[-1]
            if idx.isdigit() and int(idx) >= want:
                s.delete_rt(pod_rt, pod["metadata"]["name"], ns)
        self._statefulset_status(sts, revision, want)

    def _statefulset_status(self, sts: dict, revision: str, want: int) -> None:
        s = self.store
        meta = sts["metadata"]
        ns, name = meta["namespace"], meta["name"]
        pods = [p for p in self._owned("Pod", sts) if not p["metadata"].get("deletionTimestamp")]
        n, ready = min(want, len(pods)), min(want, len([p for p in pods if _ready(p)]))
        status = {"availableReplicas": ready, "collisionCount": 0, "currentReplicas": n, "currentRevision": revision,
                  "observedGeneration": meta.get("generation", 1), "replicas": n, "updateRevision": revision,
                  "updatedReplicas": n}
        if ready:
            status["readyReplicas"] = ready
        sts_rt = s.kind("apps/v1", "StatefulSet")
        with s.lock:
            live = s._entry(sts_rt, ns, name)
            if live is not None and live.obj.get("status") != status:
                s.update_rt(sts_rt, {**live.obj, "status": status}, name, ns, KCM, subresource="status")

    def _job(self, job: dict) -> None:
        """One pod per parallelism, never finishing (no kubelet); none while suspended, as the job controller."""
        s = self.store
        meta = job["metadata"]
        ns = meta["namespace"]
        spec = job.get("spec") or {}
        template = spec.get("template") or {}
        pod_rt = s.kind("v1", "Pod")
        if spec.get("suspend"):
            self._job_suspended(job)
            return
        for _ in range(spec.get("parallelism", 1) - len(self._owned("Pod", job))):
            pmeta = copy.deepcopy(template.get("metadata") or {})
            pmeta.pop("creationTimestamp", None)
            pmeta.update({"generateName": f"{meta['name']}-", "namespace": ns, "ownerReferences": [
                self._owner_ref(job)]})
            pod = s.create_rt(pod_rt, {"apiVersion": "v1", "kind": "Pod", "metadata": pmeta,
                                       "spec": copy.deepcopy(template.get("spec") or {})}, ns, KCM).obj
            self._event(job, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}", "job-controller")
        job_rt = s.kind("batch/v1", "Job")
        with s.lock:
            live = s._entry(job_rt, ns, meta["name"])
            if live is not None:
                status = {"active": len(self._owned("Pod", job)), "startTime": now_iso(),
                          "uncountedTerminatedPods": {}}
                s.update_rt(job_rt, {**live.obj, "status": status}, meta["name"], ns, KCM, subresource="status")


    def _job_suspended(self, job: dict) -> None:
        """Active pods are deleted and the Suspended condition set."""
        s = self.store
        meta = job["metadata"]
        ns = meta["namespace"]
        for pod in self._owned("Pod", job):
            try:
                s.delete_rt(s.kind("v1", "Pod"), pod["metadata"]["name"], ns)
            except ApiError:
                continue
            self._event(job, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}", "job-controller")
        job_rt = s.kind("batch/v1", "Job")
        with s.lock:
            live = s._entry(job_rt, ns, meta["name"])
            if live is not None:
                at = now_iso()
                status = {"conditions": [{  # active: 0 is omitted (omitempty), as the job controller writes it
                    "type": "Suspended", "status": "True", "reason": "JobSuspended", "message": "Job suspended",
                    "lastProbeTime": at, "lastTransitionTime": at}], "uncountedTerminatedPods": {}}
                s.update_rt(job_rt, {**live.obj, "status": status}, meta["name"], ns, KCM, subresource="status")


def _ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def _max_unavailable(d: dict) -> int:
    """The Pods a rolling update may have unavailable (maxUnavailable, default 25%, rounded down), as the
    deployment controller computes it for its Available condition; 0 for Recreate or no replicas."""
    spec = d.get("spec") or {}
    replicas = spec.get("replicas", 1)
    strategy = spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate" or not replicas:
        return 0
    value = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25%")
    if isinstance(value, str) and value.endswith("%") and value[:-1].isdigit():
        return min(replicas, replicas * int(value[:-1]) // 100)
    return min(replicas, value) if isinstance(value, int) else 0


def _hash(value: object) -> str:
    digest = hashlib.sha256(repr(sorted(_flat(value))).encode()).hexdigest()
    return "".join("bcdfghjklmnpqrstvwxz2456789"[int(c, 16)] for c in digest[:9])


def _flat(value: object, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in _flat(v, f"{prefix}.{k}")]
    if isinstance(value, list):
        return [t for i, v in enumerate(value) for t in _flat(v, f"{prefix}[{i}]")]
    return [(prefix, repr(value))]


def _strip_times(status: dict) -> dict:
    conds = [{k: v for k, v in c.items() if k not in ("lastTransitionTime", "lastUpdateTime")}
             for c in status.get("conditions") or ()]
    return {**status, "conditions": conds}


__all__ = ["Controllers", "selector_matches"]
