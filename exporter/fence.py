"""The exporter's side of the writer role: push only as the branch's writer, under the epoch it holds.

An exporter claims the role at start: it waits (pushing nothing, touching nothing in its clone, holding no lock)
while the branch names another cluster, or while its clone holds commits made under an older epoch (those are
for `kubedr demote` to move aside). Once it exports, every push checks the role in the tree it pushes onto; a
role that moved stops the pipeline, and the exporter goes back to waiting. The state is in the log, /readyz,
the metrics `kubedr_exporter_fenced` and `kubedr_exporter_writer_epoch`, and `kubedr status`.
"""

from __future__ import annotations

import logging
import threading

from kubedr import git, metrics, roles
from kubedr.exporter.gitstore import GitStore, StorageFull
from kubedr.remote import scrub

log = logging.getLogger("kubedr.exporter.fence")

ROLE_REF = "refs/kubedr/role-check"  # the waiting exporter's view of the branch (never the tracking ref)


class Fence:
    """Decides whether this exporter may push; remembers the role it exports under."""

    def __init__(self, store: GitStore, cluster: str) -> None:
        self.store = store
        self.cluster = cluster
        self.held: roles.Writer | None = None  # the role this exporter commits under (None: no role file yet)
        self.reason: str | None = None  # why it is fenced; None while it may push
        self._said = False  # the role it exports under was logged

    @property
    def gitdir(self) -> str:
        return str(self.store.workdir / ".git")

    def _set(self, reason: str | None, settling: bool = False, waiting: bool = False) -> str | None:
        if reason != self.reason or not (reason or self._said):
            self._said = reason is None
            if settling:  # its own role under a newer epoch: claimed afresh at once, nothing to do for anyone
                log.info("%s", reason)
            elif reason and waiting:  # at start: a standby's exporter waits by design
                log.warning("fenced: %s; this exporter (%s) exports once the branch names it, reading the role "
                            "again meanwhile", reason, self.cluster)
            elif reason:  # the role moved away under a running exporter
                log.error("fenced: %s; this exporter (%s) pushes nothing and keeps its local commits in %s",
                          reason, self.cluster, self.store.workdir)
            elif self.held:
                log.info("writer of %s: %s at epoch %s", self.store.branch, self.cluster, self.held.epoch)
            else:
                log.info("%s names no writer (%s): exporting as %s", self.store.branch, roles.WRITER_PATH,
                         self.cluster)
        self.reason = reason
        metrics.EXPORT_FENCED.set(1 if reason else 0)
        metrics.EXPORT_EPOCH.set(self.held.epoch if self.held and not reason else 0)
        return reason

    def _judge(self, writer: roles.Writer | None) -> str | None:
        return self._set(roles.fence_reason(writer, self.cluster, self.held_epoch), roles.settling(writer, self.cluster))

    @property
    def held_epoch(self) -> int:
        return self.held.epoch if self.held else 0

    def trailers(self) -> list[str]:
        """Role trailers for the next commit (the role this exporter holds)."""
        return roles.trailers(self.held)

    # -- while exporting: the pusher asks before every push ------------------------------------------------
    def check(self) -> str | None:
        """Reason not to push onto the remote as last fetched (the tracking ref); None: push."""
        tracking = f"refs/remotes/origin/{self.store.branch}"
        try:
            writer = roles.read_writer(self.gitdir, tracking)
        except roles.RoleError as exc:
            return self._set(str(exc))
        return self._judge(writer)

    def recheck(self) -> str | None:
        """While idle: read the branch's role afresh (its own ref, never the pusher's); the reason, or None."""
        try:
            proc = self.store.fetch_ref(ROLE_REF, timeout=60)
        except git.GitError:
            return None  # no answer in time: as unreachable
        if not proc.ok:
            return None  # unreachable: the pusher's own check decides when it can push again
        try:
            writer = roles.read_writer(self.gitdir, ROLE_REF)
        except roles.RoleError as exc:
            return self._set(str(exc))
        return self._judge(writer)

    # -- before exporting --------------------------------------------------------------------------------
    def claim(self) -> str | None:
        """Fetch the branch's role; None when this exporter may export now (and holds that role)."""
        self.store.prepare()
        try:
            proc = self.store.fetch_ref(ROLE_REF)
        except git.GitError as exc:  # no answer in time
            proc = git.Result(-1, b"", exc.reason.encode())
        known = ROLE_REF
        if not proc.ok:
            err = proc.stderr.decode(errors="replace").strip()
            if "couldn't find remote ref" in err:
                return self._take(None)  # an empty remote: nobody holds a role
            error = git.GitError("fetch", scrub(
                f"{' | '.join(ln.strip() for ln in err.splitlines() if ln.strip()) or proc.returncode} "
                f"(reading the writer role from {self.store.shown})", self.store.remote), proc.returncode,
                scrub(err, self.store.remote))
            self.store.check_storage(error, str(error))
            last = self._last_known()
            if last is None:
                raise error
            known = last
            log.warning("%s; exporting under the role last read (commits stay local until the remote is back)", error)
        try:
            writer = roles.read_writer(self.gitdir, known)
        except roles.RoleError as exc:
            return self._set(str(exc))
        if writer is not None and writer.cluster != self.cluster:
            return self._set(roles.fence_reason(writer, self.cluster, 0), waiting=True)
        stale = self.stale_commits(writer, known)
        if stale:
            return self._set(f"{len(stale)} local commit{'s' if len(stale) > 1 else ''} in {self.store.workdir} "
                             f"never reached the branch and were made under another role: run `kubedr demote` "
                             f"for {self.cluster} to move them to a side branch")
        return self._take(writer)

    def _last_known(self) -> str | None:
        """The newest local view of the branch (role check, else tracking ref), when the remote cannot be read."""
        for ref in (ROLE_REF, f"refs/remotes/origin/{self.store.branch}", f"refs/heads/{self.store.branch}"):
            if self.store.git("rev-parse", "-q", "--verify", ref, check=False).strip():
                return ref
        return None

    def _take(self, writer: roles.Writer | None) -> str | None:
        self.held = writer
        return self._set(None)

    def stale_commits(self, writer: roles.Writer | None, known: str = ROLE_REF) -> list[str]:
        """Local commits the branch lacks that were not made under this role (a previous epoch's)."""
        head = self.store.git("rev-parse", "-q", "--verify", f"refs/heads/{self.store.branch}", check=False).strip()
        if not head:
            return []
        commits = git.log([head, "--not", known], git_dir=self.gitdir, env=self.store.env)
        want = {str(writer.epoch) if writer else ""}
        if writer is not None and writer.epoch == 1:
            want.add("")  # made before the first role was given (to this cluster): nobody held one meanwhile
        return [c.sha for c in commits if " ".join(c.trailer(roles.EPOCH_TRAILER)) not in want]

    def wait(self, stop: threading.Event, interval: float) -> bool:
        """Wait until this exporter may export (True) or stop is set (False); errors are retried."""
        while not stop.is_set():
            try:
                if self.claim() is None:
                    return True
            except (git.GitError, StorageFull, OSError) as exc:
                log.warning("cannot read the writer role yet: %s", str(exc).splitlines()[0] if str(exc) else exc)
            stop.wait(interval)
        return False
