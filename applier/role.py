"""Each cluster's own record of its role (`kubedr-role` in kubedr-system), written by promote and demote.

The branch says who may export; this record says what the cluster itself was told last. An applier on a
cluster recorded as the writer applies nothing (it would apply the cluster's own exports back onto it), until
`kubedr demote` records it a standby again.
"""

from __future__ import annotations

import logging
from typing import Any

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


def serving(cluster: Cluster, name: str | None = None, source: Any = None) -> bool:
    """True when this cluster is the writer, by its own record or (given its name) by the branch's role file:
    the applier then skips its rounds (logged once). A cluster recorded as standby applies."""
    rec = read_role(cluster)
    state = f"{rec.get('cluster')}@{rec.get('epoch')}" if rec.get("role") == "writer" else ""
    if not state and name and rec.get("role") != "standby" and source is not None:
        writer = _branch_writer(source)
        state = f"{writer.cluster}@{writer.epoch}" if writer is not None and writer.cluster == name else ""
    if _said.get(id(cluster)) != state:
        _said[id(cluster)] = state
        if state:
            log.warning("this cluster is the writer (%s): nothing is applied until `kubedr demote` makes it a "
                        "standby", state.replace("@", " at epoch "))
    return bool(state)


def _branch_writer(source: Any) -> roles.Writer | None:
    """The role file at the head of the applier's source, None when absent or unreadable."""
    head = source.head()
    blob = source.tree(head).get(roles.WRITER_PATH) if head else None
    if blob is None:
        return None
    try:
        return roles.parse(next(iter(source.read_blobs([blob]))))
    except roles.RoleError as exc:
        log.error("%s", exc)
        return None
