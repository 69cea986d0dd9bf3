"""Each cluster's own record of its role (`kubedr-role` in kubedr-system), written by promote and demote.

The branch says who may export; this record says what the cluster itself was told last. An applier on a
cluster recorded as the writer applies nothing (it would apply the cluster's own exports back onto it), until
`kubedr demote` records it a standby again.
"""

from __future__ import annotations

import logging

from kubedr.applier.client import Cluster, get_state, put_state

from kubedr import roles

log = logging.getLogger("kubedr.applier.role")
_said: dict[int, str] = {}


def read_role(cluster: Cluster) -> dict[str, str]:
    """The recorded role ({} when promote or demote never ran against this cluster)."""
    return get_state(cluster, roles.ROLE_CONFIGMAP) or {}


def record_role(cluster: Cluster, name: str, role: str, epoch: int, **extra: str) -> None:
    """Record `role` (writer | standby) of cluster `name` at `epoch`, with when and any detail."""
    put_state(cluster, roles.ROLE_CONFIGMAP, {"cluster": name, "role": role, "epoch": str(epoch),
                                             "changedAt": roles.iso(), **extra})


def serving(cluster: Cluster) -> bool:
    """True when this cluster is recorded as the writer: the applier then skips its rounds (logged once)."""
    rec = read_role(cluster)
    state = f"{rec.get('cluster')}@{rec.get('epoch')}" if rec.get("role") == "writer" else ""
    if _said.get(id(cluster)) != state:
        _said[id(cluster)] = state
        if state:
            log.warning("this cluster (%s) was promoted to writer at epoch %s: nothing is applied until "
                        "`kubedr demote` makes it a standby again", rec.get("cluster"), rec.get("epoch"))
    return bool(state)
