"""What `kubedr install` made in a cluster, found by its label in every kind the cluster serves, and the two
writes install and uninstall make (server-side apply as `kubedr-install`, delete)."""

from __future__ import annotations

import json
import logging
from typing import Any

from kubedr import contract
from kubedr.apierrors import ApiError, NotFound
from kubedr.commands.install_tree import INSTALLED_BY
from kubedr.kubeapi import Cluster, Resource

FIELD_MANAGER = "kubedr-install"
SELECTOR = f"{INSTALLED_BY[0]}={INSTALLED_BY[1]}"
# on kubedr's namespace when install created it: uninstall deletes only such a namespace, never one it found
CREATED = "kubedr.io/created-by-install"
PAGE = 500
log = logging.getLogger("kubedr.install")

Obj = dict[str, Any]


def served(cluster: Cluster) -> list[Resource]:
    """Every listable resource type, at its group's preferred version (a group that does not answer is named in
    one line and left out: an aggregated API whose server is down, say)."""
    versions = ["v1"] + [g["preferredVersion"]["groupVersion"] for g in cluster.get("/apis").get("groups", [])
                         if g.get("preferredVersion")]
    out = []
    for gv in versions:
        try:
            doc = cluster.get("/api/v1" if gv == "v1" else f"/apis/{gv}")
        except NotFound:  # a group going away (a CRD being deleted)
            continue
        except ApiError as exc:
            log.warning("%s: %s does not answer (%s): its objects are not looked at", cluster.server, gv, exc)
            continue
        out += [Resource(gv, r["kind"], r["name"], bool(r.get("namespaced"))) for r in doc.get("resources", [])
                if "/" not in r["name"] and "list" in (r.get("verbs") or [])]
    return out


def labelled(cluster: Cluster) -> list[Obj]:
    """Every object carrying install's label, of every kind."""
    found: list[Obj] = []
    for resource in served(cluster):
        query: dict[str, Any] = {"labelSelector": SELECTOR, "limit": PAGE}
        while True:
            try:
                page = cluster.get(resource.path(), query)
            except NotFound:
                break
            except ApiError as exc:
                log.warning("%s: cannot list %s (%s): its objects are not looked at", cluster.server,
                            resource.plural, exc)
                break
            for item in page.get("items") or []:
                found.append({"apiVersion": resource.group_version, "kind": resource.kind, **item})
            query["continue"] = (page.get("metadata") or {}).get("continue")
            if not query["continue"]:
                break
    return found


def path_of(cluster: Cluster, obj: Obj) -> str:
    """The object's URL path; NotFound when the cluster does not serve its kind."""
    resource = cluster.resource_for(str(obj["apiVersion"]), str(obj["kind"]))
    if resource is None:
        raise NotFound(404, "NotFound", f"the cluster does not serve {obj['kind']} in {obj['apiVersion']}")
    meta = obj["metadata"]
    return resource.path(meta.get("namespace") or "", meta["name"])


def get(cluster: Cluster, obj: Obj) -> Obj | None:
    """The live object, None when absent."""
    try:
        live: Obj = cluster.request("GET", path_of(cluster, obj))
    except NotFound:
        return None
    return live


def apply(cluster: Cluster, obj: Obj, dry_run: bool = False) -> Obj:
    """Server-side apply as install's field manager (taking over fields others set); the object as it is now."""
    query = {"fieldManager": FIELD_MANAGER, "force": "true", "dryRun": "All" if dry_run else None}
    answer: Obj = cluster.request("PATCH", path_of(cluster, obj), json.dumps(obj), query,
                                  "application/apply-patch+yaml")
    return answer


def delete(cluster: Cluster, obj: Obj) -> None:
    """Delete it (its dependents go with it); gone already is fine."""
    try:
        cluster.request("DELETE", path_of(cluster, obj), {"propagationPolicy": "Background"})
    except NotFound:
        pass


def name(obj: Obj) -> str:
    """`apps/Deployment kubedr-system/kubedr-exporter`."""
    return contract.ref_of(obj).display


def identity(obj: Obj) -> tuple[str, str, str, str]:
    """(group, kind, namespace, name): one object across versions."""
    ref = contract.ref_of(obj)
    return ref.group, ref.kind, ref.namespace, ref.name
