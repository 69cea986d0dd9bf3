"""One way to reach a cluster: kubeconfig (optionally a context) or the in-cluster service account; the base
client (kubeapi.Cluster) talks over the connection this makes."""

from __future__ import annotations

import os
import re

import yaml
from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from kubedr.config import UsageError


class KubeconfigError(UsageError):
    """The kubeconfig (or the in-cluster service account) cannot be used; one line naming the file."""


def api_client(kubeconfig: str | None = None, context: str | None = None, pool: int = 16) -> client.ApiClient:
    """An ApiClient; in-cluster config when no kubeconfig is given or found; KubeconfigError when unusable."""
    conf = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG")
    in_cluster = not path and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    try:
        if in_cluster:
            config.load_incluster_config(client_configuration=conf)
        else:
            config.load_kube_config(config_file=path, context=context, client_configuration=conf)
    except (ConfigException, OSError, yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError) as exc:
        where = "in-cluster service account" if in_cluster else f"kubeconfig {path or '~/.kube/config'}"
        raise KubeconfigError(f"{where}: {_first_line(exc)}") from None
    conf.connection_pool_maxsize = pool
    return client.ApiClient(conf)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:1] + lines[1:2]) if isinstance(exc, yaml.YAMLError) else (lines[0] if lines else
                                                                                     type(exc).__name__)


_KUBE_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key of an API version as apimachinery orders them: GA, beta, alpha (higher numbers first), then others."""
    m = _KUBE_VERSION.match(version)
    if not m:
        return (3, 0, 0, version)  # not Kubernetes-shaped: after all others, alphabetically
    level = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    return (level, -int(m.group(1)), -int(m.group(3) or 0), "")
