"""The exporter's scope at run time: read the repo policy, apply it, and react to commits others push.

Flags (or $KUBEDR_*, or the config file) win; the policy's `export:` section fills the rest (exporter/scope.py).
A changed scope re-lists every type and commits what it adds and removes in one `scope` commit; object files
that commits of others touched are listed again and written back in one `resync` commit.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kubedr import contract
from kubedr.exporter import scope
from kubedr.exporter.committer import NextCommit
from kubedr.exporter.gitstore import GitStore
from kubedr.exporter.gittree import with_trailer
from kubedr.exporter.observer import Observer
from kubedr.exporter.recorder import Recorder
from kubedr.exporter.selection import Selection
from kubedr.policyfile import POLICY_PATH

log = logging.getLogger("kubedr.exporter")


class Scoper:
    """Owns the effective scope: configures selection and recorder, writes the scope file, re-lists on change."""

    def __init__(self, flags: dict[str, Any], store: GitStore, selection: Selection, recorder: Recorder,
                 next_commit: NextCommit, observer: Observer) -> None:
        self.flags = flags
        self.store = store
        self.selection = selection
        self.recorder = recorder
        self.next = next_commit  # the scope file goes into it; a changed scope holds it for the re-lists
        self.observer = observer
        self.scope = scope.effective(flags, {})
        selection.configure(self.scope)

    def apply_policy(self, initial: bool = False) -> bool:
        """Read the repo policy's export section; take the new effective scope if it changed (True)."""
        data = self.store.read_file(POLICY_PATH)  # from git objects: a regular file or nothing
        try:
            new = scope.effective(self.flags, scope.parse_policy(data))
            rules = scope.ignore_rules(new.ignore)
        except scope.ScopeError as exc:
            if initial and "namespaces" not in self.flags:  # never guess which namespaces from a broken policy
                raise scope.ScopeError(f"{exc} (fix the policy or give --namespaces / --all-namespaces)") from exc
            log.error("%s; keeping the scope in force (%s)", exc, "flags only" if initial else "as it was")
            if not initial:
                return False
            new, rules = self.scope, []
        if new.origin["namespaces"] == "default":
            msg = (f"no namespaces chosen: give --namespaces a,b or --all-namespaces, or export.namespaces in the "
                   f"repo's {POLICY_PATH} ([] for all)")
            if initial:
                raise scope.ScopeError(msg)
            log.error("%s; keeping the scope in force", msg)
            return False
        changed = new != self.scope
        self.scope = new
        self.selection.configure(new)
        self.recorder.ignore = rules
        self._write_scope(new.document())
        log.info("export scope: %s", new.describe())
        return changed

    def _write_scope(self, data: bytes) -> None:
        if self.store.read_file(scope.SCOPE_PATH) == data:
            self.next.extra.pop(scope.SCOPE_PATH, None)
        else:
            self.next.extra[scope.SCOPE_PATH] = data

    def on_foreign(self, paths: list[str]) -> None:
        """Commits others pushed changed these paths: re-read the policy, re-list the types they touched."""
        keys: set[tuple[str, str]] = set()
        for path in paths:
            try:
                ref = contract.ref_of_path(path)
            except contract.ManifestError:
                ref = None
            if ref is not None:
                keys.add((ref.group, ref.kind))
                self.recorder.index[(ref.group, ref.kind)].add(path)
        if POLICY_PATH in paths or scope.SCOPE_PATH in paths:
            if self.apply_policy():
                self.next.hold(self.observer.refresh() | self.observer.relist(), "scope")
                return
        if not keys:
            return
        watched = self.observer.relist(keys)
        for key in keys - watched - self.recorder.frozen_types:
            if key[0] not in self.observer.failed_groups:
                self.recorder.synced(key, set(), time.monotonic())  # not exported at all: the files go
        log.warning("commits not made by this exporter changed %d file(s); writing back the cluster's state",
                    len(paths))
        self.next.hold(watched, "resync")

    def annotate(self, diff: list[tuple[str, str]], text: str) -> str:
        """A commit that changes the scope file says so, with the scope as a trailer."""
        if not any(p == scope.SCOPE_PATH for _, p in diff):
            return text
        if len(diff) == 1:
            text = f"export scope changed\n\n{self.scope.describe()}\n\n" + text.split("\n\n", 1)[1].lstrip("\n")
        return with_trailer(text, scope.SCOPE_TRAILER, self.scope.trailer())
