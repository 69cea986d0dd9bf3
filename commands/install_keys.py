"""The keys `kubedr install` makes, each as a Secret in the one cluster it belongs to: one table.

A key that exists is kept as it is (install never rotates one); one that is there but unusable is named in one
line and left alone; only an absent key is made. The private parts never leave their Secret except through
install's memory: what travels to the other side (recipients, allowed signers) is derived from them.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

from kubedr import sealing, signing
from kubedr.apierrors import NotFound
from kubedr.kubeapi import Cluster

NAMESPACE = "kubedr-system"


@dataclass(frozen=True)
class Key:
    """One key: where it lives (side, Secret, file in it), how to make one and how to read one."""

    side: str  # the cluster that holds it: primary | secondary
    secret: str  # the Secret the manifests mount it from
    item: str  # its file in that Secret (the name the config or env points at)
    what: str  # for messages
    make: Callable[[], bytes]  # a new key, as that file's content
    public: Callable[[bytes, str], str]  # the part that may travel ('' for none); ValueError when unusable
    exclusive: bool  # never in the other cluster (a failback pair holds the exporter's keys on both sides)


def _identity_public(data: bytes, where: str) -> str:
    identities = sealing.parse_identities(data.decode("utf-8", "replace"), where)
    if len(identities) != 1:
        raise sealing.SealingError(f"{where}: expected one age identity, found {len(identities)}")
    return str(identities[0].to_public())


def _signing_public(data: bytes, where: str) -> str:
    return signing.public_key(signing.parse_private_key(data, where))


def _digest_check(data: bytes, where: str) -> str:
    sealing.parse_digest_key(data.decode("ascii", "replace"), where)
    return ""


KEYS = (
    Key("secondary", "kubedr-age-identity", "identity.txt", "the age identity (unseals Secrets)",
        lambda: sealing.new_identity_file().encode(), _identity_public, exclusive=True),
    Key("primary", "kubedr-signing-key", "signing.key", "the exporter's signing key",
        signing.new_private_key, _signing_public, exclusive=False),
    Key("primary", "kubedr-digest-key", "digest.key", "the digest key (keeps sealed Secrets stable)",
        lambda: sealing.digest_key_file().encode(), _digest_check, exclusive=False),
)


@dataclass
class Found:
    """One key as install found it (or made it, not stored yet)."""

    key: Key
    data: bytes = b""  # the key file (a new one when absent)
    public: str = ""  # its travelling part
    new: bool = False  # made now: no Secret holds it yet
    problem: str = ""  # why the Secret there cannot be used ('' when it can)


def find(cluster: Cluster, key: Key) -> Found:
    """The key from its Secret; a new one (not stored) when there is none."""
    try:
        secret = cluster.request("GET", f"/api/v1/namespaces/{NAMESPACE}/secrets/{key.secret}")
    except NotFound:
        data = key.make()
        return Found(key, data, key.public(data, key.secret), new=True)
    where = f"Secret {NAMESPACE}/{key.secret} in the {key.side}"
    raw = (secret.get("data") or {}).get(key.item)
    if raw is None:
        return Found(key, problem=f"{where} has no {key.item}")
    data = base64.b64decode(raw)  # the API server holds only valid base64
    try:
        return Found(key, data, key.public(data, f"{where}: {key.item}"))
    except (ValueError, signing.SigningError) as exc:  # SealingError is a ValueError; both name where
        return Found(key, problem=str(exc))


def secret(name: str, files: dict[str, bytes], labels: dict[str, str]) -> dict[str, object]:
    """A Secret of files in kubedr's namespace, labelled."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": dict(labels)},
            "data": {item: base64.b64encode(data).decode() for item, data in files.items()}}
