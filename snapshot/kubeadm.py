"""The kubeadm files of a control-plane node and the cluster facts that go with a snapshot."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from kubedr.snapshot.bundle import Entry

log = logging.getLogger("kubedr.snapshot")


@dataclass(frozen=True)
class Source:
    """Files under a directory of the node (relative to --root), stored in the bundle under a prefix."""

    prefix: str  # name prefix inside the bundle
    directory: str  # path on the node, relative to the root
    patterns: tuple[str, ...]  # globs relative to the directory
    backup: str  # on restore, keep a copy of what was there: "tree" (the whole directory) or "files"


# What is bundled, and where restore puts it back (under --target-root).
SOURCES: tuple[Source, ...] = (
    Source("kubernetes", "etc/kubernetes", ("pki/**/*", "*.conf", "manifests/*.yaml"), "tree"),
    Source("kubelet", "var/lib/kubelet", ("kubeadm-flags.env",), "files"),
)
CLUSTER_PREFIX = "cluster"  # kubeadm-config and the node list: informational, never placed


def collect(root: Path) -> list[Entry]:
    """Every kubeadm file present under root, as bundle entries; missing ones are simply absent."""
    entries: list[Entry] = []
    for src in SOURCES:
        base = root / src.directory
        seen: set[Path] = set()
        for pattern in src.patterns:
            for path in sorted(base.glob(pattern)):
                if path.is_file() and not path.is_symlink() and path not in seen:
                    seen.add(path)
                    entries.append(Entry(f"{src.prefix}/{path.relative_to(base).as_posix()}", path=path))
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


def cluster_facts(kubeconfig: str | None) -> tuple[list[Entry], list[str]]:
    """The kubeadm-config ConfigMap and the node list, when the API is reachable; skipped otherwise."""
    if not kubeconfig and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        log.info("no kubeconfig: kubeadm-config and node list not included")
        return [], []
    try:
        from kubernetes import client

        from kubedr.kube import api_client

        api = api_client(kubeconfig)
    except Exception as exc:  # a broken kubeconfig must not cost the snapshot
        log.warning("kubeconfig %s not usable (%s): kubeadm-config and node list not included", kubeconfig,
                    _first_line(exc))
        return [], []
    core = client.CoreV1Api(api)
    entries: list[Entry] = []
    names: list[str] = []
    try:
        cm = core.read_namespaced_config_map("kubeadm-config", "kube-system", _request_timeout=(5, 15))
        doc = api.sanitize_for_serialization(cm)
        entries.append(Entry(f"{CLUSTER_PREFIX}/kubeadm-config.json",
                             data=json.dumps(doc, indent=2, sort_keys=True).encode(), mode=0o644))
    except Exception as exc:  # optional: say why it is missing
        log.warning("kubeadm-config ConfigMap not read (%s): not included", _first_line(exc))
    try:
        nodes = core.list_node(_request_timeout=(5, 30))
        names = sorted(n.metadata.name for n in nodes.items)
        entries.append(Entry(f"{CLUSTER_PREFIX}/nodes.json", mode=0o644,
                             data=json.dumps(api.sanitize_for_serialization(nodes), indent=2).encode()))
    except Exception as exc:
        log.warning("node list not read (%s): not included", _first_line(exc))
    return entries, names


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
