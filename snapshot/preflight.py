"""Alias preflight: the target must use the source's hostname aliases; checked before anything is touched."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubedr.snapshot import facts, kubeadm
from kubedr.snapshot.manifest import Manifest


class PreflightError(Exception):
    """The target does not match the snapshot (aliases, cluster, set); nothing was touched."""


@dataclass
class Target:
    """What the restore is asked to do on this node."""

    node: str  # this node's name
    member: str  # the etcd member restored here
    initial_cluster: list[tuple[str, str]]  # (member, peer URL), one cluster for every member
    target_root: Path | None = None
    cluster_config: dict[str, Any] | None = None  # this node's ClusterConfiguration, when readable
    cluster_config_from: str = ""


@dataclass
class Result:
    """Checks passed (for the plan) and problems found (a refusal unless forced)."""

    passed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def resolve(host: str) -> list[str]:
    """Addresses a host name resolves to on this node ([] when it does not)."""
    try:
        return sorted({str(ai[4][0]) for ai in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)})
    except (socket.gaierror, UnicodeError):
        return []


def local_address(addr: str) -> bool:
    """The address belongs to this node: something here could listen on it."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((addr, 0))
        except OSError:
            return False
    return True


def check_set(m: Manifest, t: Target) -> tuple[str, str | None]:
    """Every node the set expects has stored its files."""
    if m.missing:
        return "", (f"snapshot set {m.cluster}/{m.id} is missing node(s) {', '.join(m.missing)} "
                    f"(has {', '.join(m.present)})")
    return f"set complete: {', '.join(m.present)}", None


def check_node_files(m: Manifest, t: Target) -> tuple[str, str | None]:
    """This node's own files are in the set (when files are placed)."""
    if t.target_root is None:
        return "", None
    if t.node not in m.present and not m.expected_nodes:
        return f"files of {m.node}, the only node of snapshot {m.id}", None
    if t.node not in m.present:
        return "", f"snapshot set {m.cluster}/{m.id} has no files of node {t.node} (has {', '.join(m.present)})"
    return f"files of node {t.node} in the set", None


def check_member(m: Manifest, t: Target) -> tuple[str, str | None]:
    """The member restored here is one of the cluster's members."""
    names = sorted({n for n, _ in t.initial_cluster})
    if t.member not in names:
        return "", (f"alias {t.member}: not an etcd member of snapshot {m.id} (members {', '.join(names)}); "
                    f"this node is {t.node}")
    return f"member {t.member} of {', '.join(names)}", None


def check_peer_hosts(m: Manifest, t: Target) -> tuple[str, str | None]:
    """Every peer host resolves here, and this member's to an address of this node."""
    for name, url in t.initial_cluster:
        host = facts.host_of(url)
        addrs = resolve(host)
        if not addrs:
            return "", f"alias {host} (peer URL of member {name}) does not resolve on this node"
        if name == t.member and not any(local_address(a) for a in addrs):
            return "", (f"alias {host} (peer URL of member {name}, restored here) resolves to {', '.join(addrs)},"
                        " not an address of this node")
    return f"peer hosts resolve: {', '.join(sorted({facts.host_of(u) for _, u in t.initial_cluster}))}", None


def check_endpoint(m: Manifest, t: Target) -> tuple[str, str | None]:
    """The control-plane endpoint resolves here and is the one this node's admin.conf uses."""
    if not m.facts.endpoint:
        return "", None
    host = facts.host_of(m.facts.endpoint)
    if not resolve(host):
        return "", f"alias {host} (control-plane endpoint {m.facts.endpoint}) does not resolve on this node"
    if t.target_root is not None:
        here = facts.kubeconfig_endpoint(t.target_root / facts.ADMIN_CONF)
        if here and here != m.facts.endpoint:
            return "", (f"alias {m.facts.endpoint} (control-plane endpoint): this node's "
                        f"{t.target_root / facts.ADMIN_CONF} points at {here}")
    return f"control-plane endpoint {m.facts.endpoint} resolves", None


def check_cluster_config(m: Manifest, t: Target) -> tuple[str, str | None]:
    """This node's ClusterConfiguration names the same cluster and endpoint."""
    cc = t.cluster_config
    if not cc:
        return "", None
    name, endpoint = str(cc.get("clusterName", "")), facts.host_port(cc.get("controlPlaneEndpoint", ""))
    if m.facts.cluster_name and name and name != m.facts.cluster_name:
        return "", (f"snapshot of cluster {m.facts.cluster_name}: this node's ClusterConfiguration "
                    f"({t.cluster_config_from}) is cluster {name}")
    if m.facts.endpoint and endpoint and endpoint != m.facts.endpoint:
        return "", (f"alias {m.facts.endpoint} (control-plane endpoint): this node's ClusterConfiguration "
                    f"({t.cluster_config_from}) has {endpoint}")
    return f"ClusterConfiguration ({t.cluster_config_from}) matches", None


# Every check, in order: (what it is about, function). Each returns (passed line, problem).
CHECKS: tuple[tuple[str, Callable[[Manifest, Target], tuple[str, str | None]]], ...] = (
    ("set", check_set),
    ("node files", check_node_files),
    ("member", check_member),
    ("peer hosts", check_peer_hosts),
    ("endpoint", check_endpoint),
    ("ClusterConfiguration", check_cluster_config),
)


def run(m: Manifest, t: Target, force: bool = False) -> Result:
    """Run every check; a problem refuses the restore (one line) unless forced."""
    out = Result()
    for _, check in CHECKS:
        passed, problem = check(m, t)
        if problem:
            out.problems.append(problem)
        elif passed:
            out.passed.append(passed)
    if out.problems and not force:
        raise PreflightError("; ".join(out.problems) + " (--force restores anyway)")
    return out


def target_cluster_config(path: str | None, target_root: Path | None) -> tuple[dict[str, Any] | None, str]:
    """This node's ClusterConfiguration: the file given, else its cluster's kubeadm-config via admin.conf."""
    import yaml

    if path:
        try:
            docs = list(yaml.safe_load_all(Path(path).read_text()))
        except (OSError, yaml.YAMLError) as exc:
            raise PreflightError(f"--kubeadm-config {path}: {exc}") from exc
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") == "ClusterConfiguration":
                return doc, path
            if isinstance(doc, dict) and doc.get("kind") == "ConfigMap":
                return kubeadm.cluster_configuration(doc.get("data")), path
        raise PreflightError(f"--kubeadm-config {path}: no ClusterConfiguration in it")
    admin = target_root / facts.ADMIN_CONF if target_root else None
    if admin is None or not facts.kubeconfig_endpoint(admin):
        return None, ""
    found = kubeadm.read_cluster_configuration(str(admin))
    return (found, f"kubeadm-config via {admin}") if found else (None, "")
