"""The Git host's webhook reaches the applier that leads: its pod carries LABEL while it leads.

Both replicas are Ready (a spare must be, or rollouts and drains would wait for it), so a Service selecting both
would hand half the pushes to the spare, which applies nothing. The webhook Service (manifests/components/
applier-webhook) selects LABEL too: the leader sets it on its own pod ($POD_NAMESPACE/$POD_NAME) when it starts to
lead and removes it when it stops; a process removes it before it competes for the Lease, since a crashed
leader's container restarts in the same pod, as a spare.
"""

from __future__ import annotations

import logging
import os

from kubedr.apierrors import ApiError
from kubedr.kubeapi import Cluster

log = logging.getLogger("kubedr.applier.routing")

LABEL = "kubedr.io/webhook"
VALUE = "serving"


def mark(cluster: Cluster, serving: bool) -> None:
    """Set (serving) or remove LABEL on this process's pod; nothing outside a pod; a failure is one log line."""
    namespace, name = os.environ.get("POD_NAMESPACE"), os.environ.get("POD_NAME")
    if not namespace or not name:
        return
    try:
        cluster.request("PATCH", f"/api/v1/namespaces/{namespace}/pods/{name}",
                        {"metadata": {"labels": {LABEL: VALUE if serving else None}}},
                        content_type="application/merge-patch+json")
    except (ApiError, OSError) as exc:
        log.warning("pod %s/%s: could not %s the label %s (the webhook Service routes by it): %s", namespace, name,
                    "set" if serving else "remove", LABEL, " ".join(str(exc).split()))
