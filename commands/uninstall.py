"""`kubedr uninstall`: remove what `kubedr install` made (everything carrying its label), and nothing else.

The namespace goes only when install created it (its annotation says so), and with it whatever kubedr's own
processes kept there (the applier's records, the Leases); a namespace install found keeps everything else,
losing only install's label. What the applier replicated stays (it is the standby's copy), and so does the config
repo: its history is the record. Safe to run again: what is gone already is skipped.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from kubedr import contract
from kubedr.commands import installed
from kubedr.config import UsageError
from kubedr.durations import DurationError, parse_duration
from kubedr.kubeapi import Cluster

log = logging.getLogger("kubedr.uninstall")
SIDES = ("primary", "secondary")
POLL = 0.5  # seconds between looks while waiting for deletions to finish


def add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    """Flags of `kubedr uninstall`."""
    for side in SIDES:
        p.add_argument(f"--{side}-kubeconfig", help=f"kubeconfig of the {side} cluster")
        p.add_argument(f"--{side}-context", help=f"context in the {side}'s kubeconfig")
    p.add_argument("--dry-run", action="store_true", help="print what would be removed, change nothing")
    p.add_argument("--timeout", default="2m", help="how long to wait until everything is gone (default 2m)")


def run(args: argparse.Namespace) -> int:
    """Remove install's objects from every cluster named; 0 once they are gone."""
    from kubedr.applier.order import plan_deletes
    from kubedr.kube import api_client

    if not (args.primary_kubeconfig or args.secondary_kubeconfig):
        raise UsageError("uninstall: name --primary-kubeconfig, --secondary-kubeconfig or both")
    try:
        timeout = parse_duration(args.timeout, "--timeout")
    except DurationError as exc:
        raise UsageError(str(exc)) from exc
    sides = {side: Cluster(api_client(getattr(args, f"{side}_kubeconfig"), getattr(args, f"{side}_context")))
             for side in SIDES if getattr(args, f"{side}_kubeconfig")}
    removed: dict[str, list[dict[str, Any]]] = {}
    for side, cluster in sides.items():
        found = installed.labelled(cluster)
        doomed = {contract.ref_of(o).name for o in found if o["kind"] == "Namespace" and _created(o)}
        deletes = [o for _, batch in plan_deletes((contract.ref_of(o), o) for o in found) for o in batch
                   if o["metadata"].get("namespace") not in doomed]
        for obj in deletes:
            kept = obj["kind"] == "Namespace" and not _created(obj)
            print(f"{side:<9}  {'release' if kept else 'delete':<7}  {installed.name(obj)}"
                  + ("  (it was there before install: only install's label leaves it)" if kept else ""))
        if not deletes:
            print(f"{side:<9}  nothing of kubedr install's")
        removed[side] = deletes
    print("kept: the objects the applier replicated (the standby's copy) and the config repo (its history)")
    if args.dry_run:
        print("dry run: nothing was changed")
        return 0
    for side, cluster in sides.items():
        for obj in removed[side]:
            if obj["kind"] == "Namespace" and not _created(obj):
                installed.apply(cluster, {"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": obj["metadata"]["name"]}})
            else:
                installed.delete(cluster, obj)
    return 0 if _wait_gone(sides, removed, timeout) else 1


def _created(namespace: dict[str, Any]) -> bool:
    return installed.CREATED in (namespace["metadata"].get("annotations") or {})


def _wait_gone(sides: dict[str, Cluster], removed: dict[str, list[dict[str, Any]]], timeout: float) -> bool:
    """Until every deleted object is gone (a namespace's content goes before it); False after timeout."""
    deadline = time.monotonic() + timeout
    left = {side: [o for o in objs if not (o["kind"] == "Namespace" and not _created(o))]
            for side, objs in removed.items()}
    while True:
        left = {side: [o for o in objs if installed.get(sides[side], o) is not None] for side, objs in left.items()}
        if not any(left.values()):
            return True
        if time.monotonic() > deadline:
            first = next(f"{side}: {installed.name(objs[0])}" for side, objs in left.items() if objs)
            log.error("uninstall: %d objects still there after %g s (first: %s)", sum(map(len, left.values())),
                      timeout, first)
            return False
        time.sleep(POLL)
