"""The kinds the emulator serves, as data: one row per resource, true to a real kube-apiserver's discovery."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

CRUD = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
# verbs of a custom resource, in the order the apiextensions server lists them
CR_VERBS = ("delete", "deletecollection", "get", "list", "patch", "create", "update", "watch")
SUB_VERBS = ("get", "patch", "update")


@dataclass(frozen=True)
class ServedResource:
    """One servable resource (a kind at one group/version) and the server behaviour tied to it."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # "status", "scale"
    verbs: tuple[str, ...] = CRUD
    generation: bool = False  # metadata.generation tracked (bumped when anything outside metadata/status changes)
    builtin: bool = True  # list items carry no kind/apiVersion for built-ins, as the real server encodes them
    singular: str = ""
    scale_path: str = ".spec.replicas"
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """The qualified resource name used in Status messages (`deployments.apps`, `configmaps`)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def storage_version_hash(self) -> str:
        digest = hashlib.sha256(f"{self.group}/{self.version}/{self.kind}".encode()).digest()
        return base64.b64encode(digest[:8]).decode()

    def discovery(self) -> list[dict]:
        """APIResource entries for this resource and its subresources, as /api/v1 or /apis/g/v list them."""
        main: dict = {"name": self.plural, "singularName": self.singular_name, "namespaced": self.namespaced,
                      "kind": self.kind, "verbs": list(self.verbs)}
        if self.short_names:
            main["shortNames"] = list(self.short_names)
        if self.categories:
            main["categories"] = list(self.categories)
        if "get" in self.verbs:  # a create-only resource (bindings) is not stored: no storage version
            main["storageVersionHash"] = self.storage_version_hash
        out = [main]
        for sub in self.subresources:
            entry = {"name": f"{self.plural}/{sub}", "singularName": "", "namespaced": self.namespaced,
                     "kind": self.kind, "verbs": list(SUB_VERBS)}
            if sub == "scale":
                entry = {**entry, "group": "autoscaling", "version": "v1", "kind": "Scale"}
            out.append(entry)
        return out


def _r(group: str, version: str, kind: str, plural: str, namespaced: bool = True, **kw) -> ServedResource:
    return ServedResource(group, version, kind, plural, namespaced, **kw)


WORKLOAD = dict(categories=("all",), generation=True)

# The built-in kinds the DR flow touches (shortNames, categories and subresources as a v1.30 server lists them).
BUILTINS: tuple[ServedResource, ...] = (
    _r("", "v1", "Namespace", "namespaces", False, short_names=("ns",), subresources=("status",),
       verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    _r("", "v1", "ConfigMap", "configmaps", short_names=("cm",)),
    _r("", "v1", "Secret", "secrets"),
    _r("", "v1", "ServiceAccount", "serviceaccounts", short_names=("sa",)),
    _r("", "v1", "Service", "services", short_names=("svc",), categories=("all",), subresources=("status",)),
    _r("", "v1", "Endpoints", "endpoints", short_names=("ep",), singular="endpoints"),
    _r("", "v1", "PersistentVolume", "persistentvolumes", False, short_names=("pv",), subresources=("status",)),
    _r("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", short_names=("pvc",), subresources=("status",)),
    _r("", "v1", "Pod", "pods", short_names=("po",), categories=("all",), subresources=("status",)),
    _r("", "v1", "Node", "nodes", False, short_names=("no",), subresources=("status",)),
    _r("", "v1", "Event", "events", short_names=("ev",)),
    _r("", "v1", "LimitRange", "limitranges", short_names=("limits",)),
    _r("", "v1", "ResourceQuota", "resourcequotas", short_names=("quota",), subresources=("status",)),
    _r("", "v1", "Binding", "bindings", verbs=("create",)),
    _r("apps", "v1", "Deployment", "deployments", short_names=("deploy",), subresources=("status", "scale"), **WORKLOAD),
    _r("apps", "v1", "ReplicaSet", "replicasets", short_names=("rs",), subresources=("status", "scale"), **WORKLOAD),
    _r("apps", "v1", "StatefulSet", "statefulsets", short_names=("sts",), subresources=("status", "scale"),
       **WORKLOAD),
    _r("apps", "v1", "DaemonSet", "daemonsets", short_names=("ds",), subresources=("status",), **WORKLOAD),
    _r("apps", "v1", "ControllerRevision", "controllerrevisions"),
    _r("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", short_names=("hpa",),
       categories=("all",), subresources=("status",)),
    _r("batch", "v1", "Job", "jobs", subresources=("status",), **WORKLOAD),
    _r("batch", "v1", "CronJob", "cronjobs", short_names=("cj",), subresources=("status",), **WORKLOAD),
    _r("networking.k8s.io", "v1", "Ingress", "ingresses", short_names=("ing",), subresources=("status",),
       generation=True),
    _r("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", short_names=("netpol",), generation=True),
    _r("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False, generation=True),
    _r("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", short_names=("pdb",), subresources=("status",),
       generation=True),
    _r("rbac.authorization.k8s.io", "v1", "Role", "roles"),
    _r("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings"),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    _r("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, short_names=("sc",)),
    _r("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False, short_names=("pc",), generation=True),
    _r("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False,
       short_names=("crd", "crds"), categories=("api-extensions",), subresources=("status",), generation=True),
    _r("coordination.k8s.io", "v1", "Lease", "leases"),
    _r("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", generation=True),
    _r("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations",
       False, categories=("api-extensions",), generation=True),
    _r("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations",
       False, categories=("api-extensions",), generation=True),
    _r("apiregistration.k8s.io", "v1", "APIService", "apiservices", False, categories=("api-extensions",),
       subresources=("status",)),
)

# Group order of /apis on a real server (its priority order); versions are the ones we serve.
GROUP_ORDER = ("apiregistration.k8s.io", "apps", "autoscaling", "batch", "networking.k8s.io", "policy",
               "rbac.authorization.k8s.io", "storage.k8s.io", "admissionregistration.k8s.io", "apiextensions.k8s.io",
               "scheduling.k8s.io", "coordination.k8s.io", "discovery.k8s.io")

# Names a valid object must have: DNS-1123 label for these kinds, a path segment for RBAC, subdomain otherwise.
NAME_RULE: dict[str, str] = {
    "Namespace": "label", "Service": "label",
    "Role": "path", "RoleBinding": "path", "ClusterRole": "path", "ClusterRoleBinding": "path",
}

# Field selectors a kind supports besides metadata.name and metadata.namespace.
FIELD_SELECTORS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName", "status.phase",
            "status.podIP", "status.nominatedNodeName"),
    "Secret": ("type",),
    "Event": ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
              "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
              "reportingComponent", "source", "type"),
    "Namespace": ("status.phase",),
    "ReplicaSet": ("status.replicas",),
    "Job": ("status.successful",),
}

# DELETE answers with the deleted object instead of a Status for these kinds (as their REST stores do).
RETURNS_DELETED_OBJECT = frozenset({"Pod", "Namespace", "CustomResourceDefinition", "Service"})


def crd_resource(crd: dict, version: dict) -> ServedResource:
    """The ServedResource a CustomResourceDefinition serves at one of its versions."""
    spec = crd["spec"]
    names = spec["names"]
    subs = tuple(s for s in ("status", "scale") if s in (version.get("subresources") or {}))
    scale_path = ((version.get("subresources") or {}).get("scale") or {}).get("specReplicasPath", ".spec.replicas")
    return ServedResource(
        group=spec["group"], version=version["name"], kind=names["kind"], plural=names["plural"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced", short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()), subresources=subs, verbs=CR_VERBS, generation=True,
        builtin=False, singular=names.get("singular") or names["kind"].lower(), scale_path=scale_path,
        extra={"crd": crd["metadata"]["name"], "listKind": names.get("listKind") or names["kind"] + "List"})
