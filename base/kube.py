"""One way to reach a cluster: kubeconfig (optionally a context) or the in-cluster service account; the base
client (kubeapi.Cluster) talks over the connection this makes."""

from __future__ import annotations

import os
import re

from kubernetes import client, config


def api_client(kubeconfig: str | None = None, context: str | None = None, pool: int = 16) -> client.ApiClient:
    """An ApiClient; in-cluster config when no kubeconfig is given or found."""
    conf = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path or not os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_kube_config(config_file=path, context=context, client_configuration=conf)
    else:
        config.load_incluster_config(client_configuration=conf)
    conf.connection_pool_maxsize = pool
    return client.ApiClient(conf)


_KUBE_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key of an API version as apimachinery orders them: GA, beta, alpha (higher numbers first), then others."""
    m = _KUBE_VERSION.match(version)
    if not m:
        return (3, 0, 0, version)  # not Kubernetes-shaped: after all others, alphabetically
    level = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    return (level, -int(m.group(1)), -int(m.group(3) or 0), "")
