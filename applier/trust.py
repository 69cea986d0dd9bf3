"""Only signed history is applied: every commit since the last applied one must verify, or be acknowledged.

The allowed signers come from `--allowed-signers FILE` (git's allowed-signers format) or, without it, from the
`trust.allowed_signers` list of `.kubedr/policy.yaml` at the trust anchor: the last applied commit that changed
the policy with a good signature. A key is trusted only once a commit signed by an already allowed key adds it;
an acknowledged commit never moves the anchor (on a secondary that never applied anything, the policy of the
newest commit is trusted on first use; give the flag to anchor trust outside the repo).

The first commit that does not verify stops the applier there; history is never rewritten, so it resumes
once a signed commit carries the trailer `Kubedr-Acknowledges: <sha>` (`kubedr trust ack`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kubedr import policyfile, signing
from kubedr.applier.fetch import Source
from kubedr.applier.policy import POLICY_PATH
from kubedr.signing import Verdict

log = logging.getLogger("kubedr.applier.trust")


@dataclass(frozen=True)
class Untrusted:
    """The first commit that may not be applied: its sha, who signed it (if anyone) and why it is refused."""

    sha: str
    signer: str
    reason: str

    def line(self) -> str:
        by = f", signer {self.signer}" if self.signer else ""
        return (f"untrusted commit {self.sha[:12]} ({self.reason}{by}): nothing past it is applied until a "
                f"person with an allowed key acknowledges it (kubedr trust ack {self.sha[:12]})")


@dataclass(frozen=True)
class Gated:
    """The newest commit that may be applied (None: not even the first one), and what stopped there."""

    target: str | None
    untrusted: Untrusted | None = None
    again: bool = False  # a signed commit changed the policy's signers: check the rest with them next round
    anchor: str | None = None  # policy mode: the commit whose policy holds the signers in force


def policy_signers(data: bytes) -> list[str]:
    """The `trust.allowed_signers` lines of a policy file ([] when absent or unreadable)."""
    try:
        lines = policyfile.section(data, "trust").get("allowed_signers")
    except policyfile.PolicyFileError:
        return []
    return [str(x).strip() for x in lines or [] if str(x).strip()]


class Gate:
    """Decides how far the applier may go; remembers verdicts (a commit's signature never changes)."""

    def __init__(self, source: Source, allowed_signers: str | None) -> None:
        self.source = source
        self.flag_file = allowed_signers
        self._verdicts: dict[tuple[str, str], Verdict] = {}  # (signers digest, sha) -> verdict
        self._files: dict[str, str] = {}  # signers digest -> file holding them (policy mode)
        self._tmp: str | None = None  # where the policy's signers are written for ssh-keygen
        self._lost: set[str] = set()  # recorded anchors found missing from the repo (said once)

    def _signers_file(self, anchor: str) -> str | None:
        """The allowed-signers file in force: the flag's, else the policy's at the anchor commit."""
        if self.flag_file:
            return self.flag_file
        blob = self.source.file(anchor, POLICY_PATH)
        lines = policy_signers(next(iter(self.source.read_blobs([blob])))) if blob else []
        if not lines:
            return None
        text = "\n".join(lines) + "\n"
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        if digest not in self._files:
            self._tmp = self._tmp or tempfile.mkdtemp(prefix="kubedr-signers-")
            path = os.path.join(self._tmp, f"allowed_signers-{digest}")
            Path(path).write_text(text)
            self._files[digest] = path
        return self._files[digest]

    def _commits(self, base: str | None, target: str) -> list[str]:
        """Commits after base up to target, ancestors first; the whole history when base is not an ancestor."""
        if not self.source.reach(base, target):
            self.source.reach(None, target)  # the whole history is checked: a shallow mirror fetches all of it
        after = base if base and self.source.is_ancestor(base, target) else None
        return [sha for sha, _ in self.source.ancestry(target, after)]

    def admit(self, base: str | None, target: str, anchor: str | None = None) -> Gated:
        """How far past base the applier may go toward target (all the way when trust is not configured)."""
        if base == target:
            return Gated(target, anchor=anchor)
        anchor = None if self.flag_file else (anchor or base or target)
        if anchor:
            self.source.reach(anchor, target)  # its policy is read: a shallow mirror fetches back to it
        signers = self._signers_file(anchor or target)
        if signers is None:
            return Gated(target)  # no --allowed-signers and no trust section in the policy: trust is off
        if not base and not self.flag_file:
            log.warning("trusting the allowed signers in %s of %s on first use; --allowed-signers anchors "
                        "trust outside the repo", POLICY_PATH, target[:12])
        shas = self._commits(base, target)
        verdicts = self._verify(shas, signers)
        acked = {a.lower() for v in verdicts if v.good for a in v.acknowledges}
        changers = self._policy_changers(base, target) if not self.flag_file else set()
        last, moved = base, anchor
        for v in verdicts:
            if v.good or v.sha in acked:
                last = v.sha
                if v.good and v.sha in changers:
                    moved = v.sha  # a signed policy change: its signers hold from here on
                continue
            if moved != anchor:
                return Gated(last, anchor=moved, again=True)  # check the rest with the new signers
            return Gated(last, Untrusted(v.sha, v.signer, v.reason), anchor=anchor)
        return Gated(target, anchor=moved)

    def _verify(self, shas: list[str], signers: str) -> list[Verdict]:
        """Each commit's verdict against the signers file (remembered: a signature never changes)."""
        key = hashlib.sha256(Path(signers).read_bytes()).hexdigest()
        unknown = [s for s in shas if (key, s) not in self._verdicts]
        local = self.source.local
        for sha, verdict in signing.verify(unknown, signers, cwd=self.source.gitdir if local else None,
                                           git_dir=None if local else self.source.gitdir,
                                           reader=self.source.commit_reader).items():
            self._verdicts[(key, sha)] = verdict
        return [self._verdicts.get((key, s)) or Verdict(s, "N", "") for s in shas]

    def is_on(self, anchor: str | None) -> bool:
        """Whether only signed history may be applied here: --allowed-signers, or a policy anchor this secondary
        recorded (never the branch's own say-so: a rewritten head could name any key)."""
        return bool(self.flag_file or anchor)

    def acknowledgements(self, shas: list[str], anchor: str | None) -> dict[str, tuple[str, ...]]:
        """The commits among shas whose signature verifies against the signers in force (the flag's, or the
        recorded anchor's policy), and what each acknowledges; none when the anchor left the repo."""
        if not self.flag_file and not (anchor and self.source.has(anchor)):
            if anchor and anchor not in self._lost:
                self._lost.add(anchor)
                log.error("the trust anchor %s is not in the repo: no acknowledgement verifies until "
                          "--allowed-signers anchors trust outside it", anchor[:12])
            return {}
        signers = self.flag_file or self._signers_file(str(anchor))
        if signers is None:
            return {}
        return {v.sha: v.acknowledges for v in self._verify(shas, signers) if v.good}

    def _policy_changers(self, base: str | None, target: str) -> set[str]:
        """Commits whose policy file differs from each parent's (read entry by entry, not `rev-list -- path`,
        which dies on a hostile tree)."""
        changers = set()
        for sha, parents in self.source.ancestry(target, base):
            mine = self.source.file(sha, POLICY_PATH)
            if all(self.source.file(p, POLICY_PATH) != mine for p in parents) and (parents or mine is not None):
                changers.add(sha)
        return changers
