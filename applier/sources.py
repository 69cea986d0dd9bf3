"""Sources: one secondary for several primaries, each a repo and branch with a name and records of its own.

A source is named by `--source NAME` (default: derived from the repo and branch). It keeps its records in
kubedr-system under names of its own (`kubedr-status.NAME`, `kubedr-mode.NAME`, `kubedr-role.NAME`,
`kubedr-role-scan.NAME`, `kubedr-inventory.NAME.NN`, labelled `kubedr.io/source: NAME`), and every object it
applies carries the label `kubedr.io/source: NAME` (applier.owners): another source never changes, holds or
prunes it.

A kubedr from before sources kept one set of records (`kubedr-status`, `kubedr-mode`, ...). They belong to the
source whose name their recorded repo and branch derive: the first command of that source that writes moves
them under its names, each key under the field manager that wrote it, the status record last (copied last,
deleted last, so a kill at any point is finished by the next run); read-only commands read them where they are.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass

from kubedr import roles
from kubedr.applier.fetch import is_local
from kubedr.applier.state import (
    STATE_MANAGER,
    copy_state,
    delete_state,
    get_state,
    labels_of_state,
    list_state,
    put_state,
)
from kubedr.config import UsageError
from kubedr.kubeapi import Cluster
from kubedr.remote import identity

log = logging.getLogger("kubedr.applier.sources")

SOURCE_LABEL = "kubedr.io/source"  # on every object a source applied, and on its records
STATE_LABEL = "kubedr.io/state"  # which record a ConfigMap of kubedr-system is (RECORDS)
INVENTORY_LABEL = "kubedr.io/inventory"
MAX_NAME = 40  # a label value, and inside every record's name: `kubedr-inventory.` + NAME + `.NN` stays short
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

STATUS = "kubedr-status"
MODE = "kubedr-mode"
SCAN = "kubedr-role-scan"
INVENTORY = "kubedr-inventory"
# the records of one source: base name (before sources, the whole name) -> the kind of record
RECORDS: dict[str, str] = {STATUS: "status", MODE: "mode", roles.ROLE_CONFIGMAP: "role", SCAN: "role-scan"}
BUCKETS = 16  # inventory ConfigMaps per source (applier.inventory spreads entries over them)


def key(repo: str, branch: str) -> str:
    """One repo and branch, however its URL is spelled."""
    return f"{identity(repo)}#{branch}"


def check_name(name: str) -> str:
    """A source name as given; UsageError when it cannot name records and labels."""
    if len(name) > MAX_NAME or not _NAME.match(name):
        raise UsageError(f"--source {name!r}: use lower-case letters, digits and '-' (not first or last), at most "
                         f"{MAX_NAME} characters")
    return name


def derive(repo: str, branch: str) -> str:
    """The default name of a source: the repo's last path element, the branch and a short hash of both (two
    repos of one name on different hosts stay two sources): `cluster-config-main-3f2c1a`."""
    def slug(text: str, size: int) -> str:
        return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:size].strip("-")

    where = os.path.abspath(os.path.expanduser(repo.removeprefix("file://"))) if is_local(repo) else identity(repo)
    ident = f"{where}#{branch}"  # a local path as given: a git-sync `current` link names one source, not each target
    base = slug(where.rstrip("/").rpartition("/")[2].removesuffix(".git"), 20) or "repo"
    digest = hashlib.sha256(ident.encode()).hexdigest()[:6]
    return "-".join(p for p in (base, slug(branch, 12), digest) if p)


@dataclass(frozen=True)
class Records:
    """Where one source keeps its records on the secondary."""

    source: str
    legacy: bool = False  # the records of a kubedr before sources, not moved yet: read where they are

    def name(self, base: str) -> str:
        """The ConfigMap of one record (base: kubedr-status, kubedr-mode, ...)."""
        return base if self.legacy else f"{base}.{self.source}"

    def bucket(self, number: int) -> str:
        """The ConfigMap of one inventory bucket."""
        return f"{INVENTORY}-{number:02d}" if self.legacy else f"{INVENTORY}.{self.source}.{number:02d}"

    def labels(self, record: str) -> dict[str, str]:
        """The labels of a record's ConfigMap (record: status, mode, role, role-scan, inventory)."""
        inventory = {INVENTORY_LABEL: "true"} if record == "inventory" else {}
        return inventory if self.legacy else {**inventory, SOURCE_LABEL: self.source, STATE_LABEL: record}

    def inventory_selector(self) -> str:
        return f"{INVENTORY_LABEL}=true," + (f"!{SOURCE_LABEL}" if self.legacy else f"{SOURCE_LABEL}={self.source}")

    def get(self, cluster: Cluster, base: str) -> dict[str, str] | None:
        """The data of one record, None when absent."""
        return get_state(cluster, self.name(base))

    def put(self, cluster: Cluster, base: str, data: dict[str, str], manager: str = STATE_MANAGER) -> None:
        """Write one record (the manager's keys)."""
        put_state(cluster, self.name(base), data, self.labels(RECORDS[base]), manager)


def legacy_source(cluster: Cluster) -> str | None:
    """The source the records of a kubedr before sources belong to (named from their repo and branch); None
    when there are none."""
    data = get_state(cluster, STATUS)
    if data is None or not data.get("repo"):
        return None
    return derive(data["repo"], data.get("branch") or "main")


def move_legacy(cluster: Cluster, records: Records) -> bool:
    """Move the records of a kubedr before sources under this source's names (those it lacks), then remove them;
    the status record last. True when there was something to move."""
    inventory = Records(records.source, legacy=True).inventory_selector()
    buckets = {name: int(name.rpartition("-")[2]) for name in list_state(cluster, inventory)
               if re.fullmatch(rf"{INVENTORY}-\d\d", name)}
    moved = []
    for old, number in sorted(buckets.items()):
        if get_state(cluster, records.bucket(number)) is None and copy_state(cluster, old, records.bucket(number),
                                                                             records.labels("inventory")):
            moved.append(old)
    for base in (MODE, roles.ROLE_CONFIGMAP, SCAN, STATUS):
        if get_state(cluster, records.name(base)) is None and copy_state(cluster, base, records.name(base),
                                                                         records.labels(RECORDS[base])):
            moved.append(base)
    for old in [*sorted(buckets), MODE, roles.ROLE_CONFIGMAP, SCAN, STATUS]:
        delete_state(cluster, old)
    if moved:
        log.warning("source %s: the records of kubedr before sources (%s) are now this source's (%s)", records.source,
                    ", ".join(moved), ", ".join(records.name(b) for b in (STATUS, MODE, roles.ROLE_CONFIGMAP, SCAN)))
    return bool(moved)


def open_records(cluster: Cluster, source: str, write: bool) -> Records:
    """The records of a source; the ones of a kubedr before sources when they are this source's: moved when the
    command writes, else read where they are."""
    if legacy_source(cluster) != source:
        return Records(source)
    if not write:
        return Records(source, legacy=True)
    move_legacy(cluster, Records(source))
    return Records(source)


def sources_on(cluster: Cluster) -> list[str]:
    """The names of the sources with records on this secondary (those of a kubedr before sources included)."""
    found = {labels[SOURCE_LABEL] for labels in labels_of_state(cluster, SOURCE_LABEL).values()
             if labels.get(SOURCE_LABEL)}
    legacy = legacy_source(cluster)
    return sorted(found | ({legacy} if legacy else set()))


def pick(cluster: Cluster, given: str | None, write: bool) -> Records:
    """The records of --source, or of the one source on this secondary; UsageError when it takes a choice."""
    if given:
        return open_records(cluster, check_name(given), write)
    found = sources_on(cluster)
    if len(found) == 1:
        return open_records(cluster, found[0], write)
    if not found:
        raise UsageError("no source has applied to this secondary yet: give --source NAME")
    raise UsageError(f"this secondary serves {len(found)} sources ({', '.join(found)}): give --source NAME")
