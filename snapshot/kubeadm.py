"""The kubeadm files of a control-plane node and the cluster facts that go with a snapshot."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubedr.snapshot.bundle import BundleFile

if TYPE_CHECKING:
    from kubedr.kubeapi import Cluster

log = logging.getLogger("kubedr.snapshot")


@dataclass(frozen=True)
class Source:
    """Files under a directory of the node (relative to --root), stored in the bundle under a prefix."""

    prefix: str  # name prefix inside the bundle
    directory: str  # path on the node, relative to the root
    patterns: tuple[str, ...]  # globs relative to the directory; "**" is the whole tree (see exclude)
    backup: str  # on restore, keep a copy of what was there: "tree" (the whole directory) or "files"
    exclude: tuple[str, ...] = ()  # top-level directories a "**" walk skips


# What is bundled, and where restore puts it back (under --target-root). The kubelet's pods (and the volume
# mounts of plugins) are left out, as the seed does; a "**" walk never crosses into another filesystem.
SOURCES: tuple[Source, ...] = (
    Source("kubernetes", "etc/kubernetes", ("pki/**/*", "*.conf", "manifests/*.yaml"), "tree"),
    Source("kubelet", "var/lib/kubelet", ("**",), "files", ("pods", "plugins", "plugins_registry", "pod-resources")),
    Source("cni", "var/lib/cni", ("**",), "files"),
)
CLUSTER_PREFIX = "cluster"  # kubeadm-config and the node list: informational, never placed


def _walk(base: Path, exclude: tuple[str, ...]) -> list[Path]:
    """Files and symlinks under base, skipping the excluded top-level dirs and other filesystems."""
    if not base.is_dir():
        return []
    dev = base.stat().st_dev
    out: list[Path] = []
    for dirpath, dirs, files in os.walk(base):
        here = Path(dirpath)
        dirs[:] = sorted(d for d in dirs if not (here == base and d in exclude)
                         and ((here / d).is_symlink() or (here / d).stat().st_dev == dev))
        out += [here / d for d in dirs if (here / d).is_symlink()]
        out += [here / f for f in sorted(files)]
    return out


def collect(root: Path) -> list[BundleFile]:
    """Every kubeadm file present under root, as bundle entries; missing ones are simply absent."""
    entries: list[BundleFile] = []
    for src in SOURCES:
        base = root / src.directory
        seen: set[Path] = set()
        for pattern in src.patterns:
            found = _walk(base, src.exclude) if pattern == "**" else sorted(base.glob(pattern))
            for path in found:
                if path in seen:
                    continue
                name = f"{src.prefix}/{path.relative_to(base).as_posix()}"
                if path.is_symlink():  # kubelet-client-current.pem points at the newest client certificate
                    seen.add(path)
                    entries.append(BundleFile(name, link=os.readlink(path)))
                elif path.is_file():
                    seen.add(path)
                    entries.append(BundleFile(name, path=path))
    if not entries:
        log.warning("no kubeadm files under %s (looked for %s)", root,
                    ", ".join(f"{s.directory}/{p}" for s in SOURCES for p in s.patterns))
    return entries


def destination(name: str, target_root: Path) -> tuple[Source, Path] | None:
    """Where a bundled file goes back on restore, or None when it is not placed."""
    for src in SOURCES:
        if name.startswith(src.prefix + "/"):
            return src, target_root / src.directory / name[len(src.prefix) + 1:]
    return None


def default_kubeconfig(root: Path, given: str | None) -> str | None:
    """The kubeconfig for cluster facts: the flag, $KUBECONFIG, in-cluster (None), then the node's admin.conf."""
    if given:
        return given
    if os.environ.get("KUBECONFIG"):
        return os.environ["KUBECONFIG"]
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None  # a CronJob: its service account has just the read access it needs
    for name in ("admin.conf", "super-admin.conf"):
        if (root / "etc/kubernetes" / name).is_file():
            return str(root / "etc/kubernetes" / name)
    return None


@dataclass
class ApiFacts:
    """What the API says at save time: bundle entries (kubeadm-config, node list) and the parsed parts."""

    entries: list[BundleFile] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    control_plane: list[str] = field(default_factory=list)
    cluster_configuration: dict[str, Any] = field(default_factory=dict)


CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")


def cluster_configuration(configmap_data: dict[str, Any] | None) -> dict[str, Any]:
    """kubeadm's ClusterConfiguration from the kubeadm-config ConfigMap's data, {} when absent or unreadable."""
    import yaml

    try:
        doc = yaml.safe_load((configmap_data or {}).get("ClusterConfiguration") or "")
    except yaml.YAMLError:
        return {}
    return doc if isinstance(doc, dict) else {}


KUBEADM_CONFIG = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config"


def _cluster(kubeconfig: str | None) -> Cluster:
    from kubedr.kube import api_client
    from kubedr.kubeapi import Cluster

    return Cluster(api_client(kubeconfig))


def cluster_facts(kubeconfig: str | None) -> ApiFacts:
    """The kubeadm-config ConfigMap and the node list, when the API answers; skipped otherwise (an API server that
    does not answer costs one request timeout, not one per read)."""
    from kubedr.kubeapi import Unreachable

    out = ApiFacts()
    if not kubeconfig and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        log.info("no kubeconfig: kubeadm-config and node list not included")
        return out
    try:
        api = _cluster(kubeconfig)
    except Exception as exc:  # a broken kubeconfig must not cost the snapshot
        log.warning("kubeconfig %s not usable (%s): kubeadm-config and node list not included", kubeconfig,
                    _first_line(exc))
        return out
    try:
        cm = api.request("GET", KUBEADM_CONFIG)
        out.cluster_configuration = cluster_configuration(cm.get("data"))
        out.entries.append(BundleFile(f"{CLUSTER_PREFIX}/kubeadm-config.json",
                                      data=json.dumps(cm, indent=2, sort_keys=True).encode(), mode=0o644))
    except Unreachable as exc:
        log.warning("the API did not answer (%s): kubeadm-config and node list not included", exc)
        return out
    except Exception as exc:  # optional: say why it is missing
        log.warning("kubeadm-config ConfigMap not read (%s): not included", _first_line(exc))
    try:
        nodes = api.request("GET", "/api/v1/nodes")
        metas = [n.get("metadata") or {} for n in nodes.get("items") or []]
        metas = [m for m in metas if m.get("name")]
        out.nodes = sorted(str(m["name"]) for m in metas)
        out.control_plane = sorted(str(m["name"]) for m in metas
                                   if set(m.get("labels") or {}) & set(CONTROL_PLANE_LABELS))
        out.entries.append(BundleFile(f"{CLUSTER_PREFIX}/nodes.json", mode=0o644,
                                      data=json.dumps(nodes, indent=2).encode()))
    except Exception as exc:
        log.warning("node list not read (%s): not included", _first_line(exc))
    return out


def read_cluster_configuration(kubeconfig: str) -> dict[str, Any]:
    """The ClusterConfiguration of the cluster a kubeconfig points at; {} when the API does not answer."""
    try:
        cm = _cluster(kubeconfig).request("GET", KUBEADM_CONFIG, timeout=(2, 5))
        return cluster_configuration(cm.get("data"))
    except Exception as exc:  # optional: the preflight says it was not readable
        log.info("ClusterConfiguration not read through %s (%s)", kubeconfig, _first_line(exc))
        return {}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
