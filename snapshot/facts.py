"""The facts a restore checks, read at save: etcd members, control-plane endpoint, API server SANs, nodes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from kubedr.snapshot import etcd
from kubedr.snapshot.kubeadm import ApiFacts
from kubedr.snapshot.manifest import EtcdMember, Facts

log = logging.getLogger("kubedr.snapshot")
API_CERT = "etc/kubernetes/pki/apiserver.crt"
ADMIN_CONF = "etc/kubernetes/admin.conf"


def api_sans(root: Path) -> list[str]:
    """DNS names and IPs of the node's API server certificate; [] when it is absent or not a certificate."""
    path = root / API_CERT
    if not path.is_file():
        return []
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound) as exc:
        log.warning("%s: SANs not read (%s)", path, exc)
        return []
    return [*sans.get_values_for_type(x509.DNSName), *(str(ip) for ip in sans.get_values_for_type(x509.IPAddress))]


def kubeconfig_endpoint(path: Path) -> str:
    """host:port of the current cluster's server in a kubeconfig (kubeadm writes the control-plane endpoint)."""
    try:
        doc = yaml.safe_load(path.read_text()) or {}
        current: dict[str, Any] = next((c["context"] for c in doc.get("contexts") or [] if c.get("name") == doc.get("current-context")),
                       {})
        cluster: dict[str, Any] = next((c["cluster"] for c in doc.get("clusters") or []
                        if not current or c.get("name") == current.get("cluster")), {})
        return host_port(cluster.get("server", ""))
    except (OSError, yaml.YAMLError, AttributeError, KeyError, TypeError):
        return ""


def host_port(url_or_endpoint: str) -> str:
    """host:port of a URL or an endpoint as kubeadm accepts it (host, host:port); default port 6443."""
    if not url_or_endpoint:
        return ""
    parts = urlsplit(url_or_endpoint if "//" in url_or_endpoint else f"//{url_or_endpoint}")
    if not parts.hostname:
        return ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port or 6443}"


def host_of(endpoint: str) -> str:
    """The host part of host:port or of a URL."""
    return urlsplit(endpoint if "//" in endpoint else f"//{endpoint}").hostname or ""


def record(root: Path, api: ApiFacts, member: etcd.Member) -> Facts:
    """The facts of the cluster as the saving node sees them."""
    config = api.cluster_configuration
    endpoint = host_port(config.get("controlPlaneEndpoint", "")) or kubeconfig_endpoint(root / ADMIN_CONF)
    return Facts(cluster_name=str(config.get("clusterName", "")), endpoint=endpoint,
                 members=[EtcdMember(name, list(urls)) for name, urls in member.members],
                 api_sans=api_sans(root), control_plane_nodes=api.control_plane,
                 worker_nodes=sorted(set(api.nodes) - set(api.control_plane)))
