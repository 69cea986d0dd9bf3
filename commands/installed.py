"""What `kubedr install` made in a cluster, found by its label in every kind the cluster serves, and the two
writes install and uninstall make (server-side apply as `kubedr-install`, delete)."""

from __future__ import annotations

import json
import logging
from typing import Any

from kubedr import contract
from kubedr.apierrors import ApiError, NotFound
from kubedr.commands.install_tree import INSTALLED_BY
from kubedr.kubeapi import Cluster
from kubedr.listwatch import pages

FIELD_MANAGER = "kubedr-install"
SELECTOR = f"{INSTALLED_BY[0]}={INSTALLED_BY[1]}"
# on kubedr's namespace when install created it: uninstall deletes only such a namespace, never one it found
CREATED = "kubedr.io/created-by-install"
PAGE = 500
log = logging.getLogger("kubedr.install")

Obj = dict[str, Any]


def labelled(cluster: Cluster) -> list[Obj]:
    """Every object carrying install's label, of every kind the cluster serves that can be listed (a group whose
    discovery does not answer is named in one line and left out: an aggregated API whose server is down, say)."""
    found = cluster.discover()
    for (group, version), exc in sorted(found.failed.items()):
        log.warning("%s: %s does not answer (%s): its objects are not looked at", cluster.server,
                    f"{group}/{version}" if group else version, exc)
    objs: list[Obj] = []
    for resource in found.resources:
        if "list" not in resource.verbs:
            continue
        try:
            for page, _ in pages(cluster, resource, label_selector=SELECTOR, page_size=PAGE):
                objs += page
        except NotFound:  # the kind went away meanwhile (a CRD being deleted)
            continue
        except ApiError as exc:
            log.warning("%s: cannot list %s (%s): its objects are not looked at", cluster.server, resource, exc)
    return objs


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
