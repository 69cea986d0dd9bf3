"""The project's manifests with kubedr install's values filled into the two overlays, as a tree of files.

The same tree is rendered (kubedr.commands.kustomize) and applied, or written to --output-dir for kustomize
itself. Only the overlays change: their config.yaml from SETTINGS, the age recipients and allowed signers
(public keys only), the image, the install label, and the components an option switches on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubedr.commands import kustomize
from kubedr.commands.shipped import shipped

OVERLAYS = {"primary": "overlays/primary", "secondary": "overlays/secondary"}
IMAGE = "ghcr.io/kubedr/kubedr"  # the name the manifests use (their images: entries match it)
INSTALLED_BY = ("app.kubernetes.io/managed-by", "kubedr-install")  # on everything install makes
HEADER = ("# Written by `kubedr install` from its options (and the keys it keeps in the clusters); run it again "
          "to change them.\n")
KEEP = object()  # a setting's value that leaves the template's own


@dataclass(frozen=True)
class Setting:
    """One install option written into an overlay's config.yaml."""

    option: str  # the install option (argparse dest) the value comes from
    overlay: str  # primary | secondary
    section: str  # the command's section in that overlay's config.yaml
    key: str  # the setting in that section; None as the value removes it, KEEP leaves the template's


SETTINGS = (
    Setting("repo", "primary", "export", "repo"),
    Setting("branch", "primary", "export", "branch"),
    Setting("primary_cluster_name", "primary", "export", "cluster_name"),
    Setting("namespaces", "primary", "export", "namespaces"),
    Setting("all_namespaces", "primary", "export", "all_namespaces"),
    Setting("exclude_namespaces", "primary", "export", "exclude_namespaces"),
    Setting("snapshot_store", "primary", "snapshot", "store"),
    Setting("primary_cluster_name", "primary", "snapshot", "cluster"),
    Setting("repo", "secondary", "apply", "repo"),
    Setting("branch", "secondary", "apply", "branch"),
    Setting("secondary_cluster_name", "secondary", "apply", "cluster_name"),
)

# component -> (the option that switches it on, the config.yaml section that goes with it)
OPTIONAL_COMPONENTS = {"../../components/snapshot": ("snapshot_store", "snapshot")}


@dataclass(frozen=True)
class Values:
    """What install fills in."""

    settings: dict[str, Any]  # option -> value (None: remove the key, KEEP: the template's)
    recipients: list[str]  # age public keys Secrets and snapshots are sealed to
    signers: list[tuple[str, str]]  # (principal, OpenSSH public key) whose commits the applier applies
    image: str = ""  # the kubedr image; '' keeps the manifests' own


def manifests() -> dict[str, bytes]:
    """The manifests kubedr ships, as a tree."""
    return read_tree(shipped("manifests", "manifests"))


def read_tree(root: Path) -> dict[str, bytes]:
    """Every file under root, by its posix path relative to root."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def fill(source: dict[str, bytes], values: Values) -> dict[str, bytes]:
    """The tree with both overlays' files written from values."""
    tree = dict(source)
    for overlay, where in OVERLAYS.items():
        kustomization = yaml.safe_load(tree[f"{where}/kustomization.yaml"])
        config = yaml.safe_load(tree[f"{where}/config.yaml"])
        for component, (option, section) in OPTIONAL_COMPONENTS.items():
            if component in (kustomization.get("components") or []) and not values.settings.get(option):
                kustomization["components"].remove(component)
                config.pop(section, None)
        for setting in SETTINGS:
            value = values.settings.get(setting.option)
            if setting.overlay != overlay or setting.section not in config or value is KEEP:
                continue
            if value is None:
                config[setting.section].pop(setting.key, None)
            else:
                config[setting.section][setting.key] = value
        for labels in kustomization.get("labels") or []:
            labels["pairs"][INSTALLED_BY[0]] = INSTALLED_BY[1]
        if values.image:
            kustomization["images"] = [_image_entry(values.image)]
        tree[f"{where}/kustomization.yaml"] = _yaml(kustomization)
        tree[f"{where}/config.yaml"] = _yaml(config)
    tree["overlays/primary/recipients.txt"] = (
        HEADER + "# age public keys (one per line) that Secrets and snapshot bundles are sealed to\n"
        + "".join(f"{r}\n" for r in values.recipients)).encode()
    tree["overlays/secondary/allowed_signers"] = (
        HEADER + "# who may sign the commits the applier applies (git's allowed-signers format)\n"
        + "".join(f'{who} namespaces="git" {key}\n' for who, key in values.signers)).encode()
    return tree


def render(tree: dict[str, bytes], overlay: str) -> list[dict[str, Any]]:
    """The objects of one overlay (primary | secondary), as `kubectl kustomize` gives them."""
    return kustomize.build(tree, OVERLAYS[overlay])


def write_tree(tree: dict[str, bytes], root: Path) -> list[str]:
    """Write the tree under root (only files whose content differs); the paths written."""
    written = []
    for rel, data in sorted(tree.items()):
        target = root / rel
        if target.is_file() and target.read_bytes() == data:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
        written.append(rel)
    return written


def _image_entry(image: str) -> dict[str, str]:
    name, tag, digest = kustomize.split_image(image)
    entry = {"name": IMAGE, "newName": name}
    if digest:
        entry["digest"] = digest
    elif tag:
        entry["newTag"] = tag
    return entry


def _yaml(doc: Any) -> bytes:
    return (HEADER + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)).encode()
