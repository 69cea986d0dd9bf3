"""Nothing skipped in silence: which served types are watched, which are not and why, and per watched type how
many objects are exported and how many a sanitize rule skipped."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kubedr.kubeapi import Resource

log = logging.getLogger("kubedr.exporter.coverage")

Key = tuple[str, str]  # (group, kind), as the repo layout names a type

# Why a served resource is not watched: category -> (uncovered in scope, text). Uncovered ones are WARNINGs.
REASONS: dict[str, tuple[bool, str]] = {
    "create-only": (False, "no list/watch verb: not stored, a request/response API"),
    "no-list-watch": (True, "no list/watch verb: its objects cannot be followed"),
    "excluded-kind": (False, "excluded kind"),
    "out-of-scope": (False, "out of scope: cluster-scoped and not a dependency of the chosen namespaces "
                            "(add it with --cluster-scoped-kinds)"),
    "secrets-not-sealed": (False, "excluded: Secrets are exported only sealed (give --recipient)"),
    "discovery-failed": (True, "discovery failed"),
    "list-failed": (True, "list failed, its files are kept as they are"),
}


@dataclass(frozen=True)
class Unwatched:
    """A discovered resource (or a whole group-version whose discovery failed) that has no watch."""

    group: str
    version: str
    plural: str
    kind: str
    reason: str  # a REASONS key
    detail: str = ""

    @property
    def name(self) -> str:
        if not self.plural:  # a whole group-version whose discovery failed
            return self.group or "core"
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def uncovered(self) -> bool:
        return REASONS[self.reason][0]

    def __str__(self) -> str:
        text = REASONS[self.reason][1]
        return f"{self.name} ({self.version}): {text}" + (f": {self.detail}" if self.detail else "")


@dataclass
class Watched:
    """A watched type, the version chosen for it, and its object counts."""

    rtype: Resource
    preferred: str  # the group's preferred version (differs from rtype.version when not served there)
    exported: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # rule id -> objects
    orphans: Counter[str] = field(default_factory=Counter)  # controller kind -> exported children of it

    def __str__(self) -> str:
        where = self.rtype.version + ("" if self.rtype.version == self.preferred
                                      else f", not served at the preferred {self.preferred}")
        rules = ", ".join(f"{rule}: {n}" for rule, n in sorted(self.skipped.items()))
        skipped = f", {sum(self.skipped.values())} skipped by rule ({rules})" if self.skipped else ""
        kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(self.orphans.items()))
        orphans = (f", {sum(self.orphans.values())} of them controlled by a kind not exported ({kinds})"
                   if self.orphans else "")
        return f"{self.rtype} ({where}): {self.exported} exported{orphans}{skipped}"


class Tally:
    """Objects a sanitize rule skipped, per type and path (the latest decision about a path wins)."""

    def __init__(self) -> None:
        self.paths: dict[Key, dict[str, str]] = defaultdict(dict)

    def note(self, key: Key, path: str, rule: str | None) -> None:
        """Record that a path is skipped by rule, or (None) that it is not skipped any more."""
        if rule is None:
            known = self.paths.get(key)
            if known:
                known.pop(path, None)
        else:
            self.paths[key][path] = rule

    def synced(self, key: Key, seen: set[str]) -> None:
        """After a full list: paths not listed are gone."""
        known = self.paths.get(key)
        if known:
            for path in [p for p in known if p not in seen]:
                del known[path]

    def counts(self) -> dict[Key, Counter[str]]:
        """Rule -> objects per type; safe while the committer thread writes (list() copies under the GIL)."""
        return {key: Counter(list(paths.values())) for key, paths in list(self.paths.items()) if paths}


@dataclass
class Report:
    """The coverage of one exporter at one moment."""

    watched: list[Watched]
    unwatched: list[Unwatched]

    @property
    def uncovered(self) -> list[Unwatched]:
        return [u for u in self.unwatched if u.uncovered]

    def summary(self) -> str:
        """The whole report in one line: counts per rule and per reason, and the types not covered by name."""
        reasons = Counter(u.reason for u in self.unwatched)
        rules: Counter[str] = Counter()
        for w in self.watched:
            rules.update(w.skipped)
        other = [w for w in self.watched if w.rtype.version != w.preferred]
        uncovered = sorted(f"{u.name} ({u.reason})" for u in self.uncovered)
        orphans = sum(sum(w.orphans.values()) for w in self.watched)
        return (f"coverage: {len(self.watched)} types watched ({len(other)} at a non-preferred version), "
                f"{sum(w.exported for w in self.watched)} objects exported, "
                f"{sum(rules.values())} skipped by rule"
                + (f" ({', '.join(f'{r} {n}' for r, n in sorted(rules.items()))})" if rules else "")
                + (f", {orphans} exported though controlled (the controller's kind is not exported)" if orphans else "")
                + f"; {len(self.unwatched)} not watched"
                + (f" ({', '.join(f'{n} {r}' for r, n in sorted(reasons.items()))})" if reasons else "")
                + (f"; {len(uncovered)} NOT COVERED: {', '.join(uncovered[:5])}"
                   + (f" and {len(uncovered) - 5} more" if len(uncovered) > 5 else "") if uncovered else ""))

    def lines(self) -> list[str]:
        """The report as text, one line per type."""
        out = [self.summary()]
        out += [f"  watched      {w}" for w in sorted(self.watched, key=lambda w: str(w.rtype))]
        out += [f"  {'NOT COVERED' if u.uncovered else 'not watched'}  {u}"
                for u in sorted(self.unwatched, key=lambda u: (not u.uncovered, u.name))]
        return out

    def log(self) -> None:
        """One line (INFO; WARNING when a type in scope is not covered); one per type at DEBUG."""
        log.log(logging.WARNING if self.uncovered else logging.INFO, "%s (per type: kubedr export --explain, "
                "or --log-level DEBUG)", self.summary())
        if not log.isEnabledFor(logging.DEBUG):
            return
        for w in sorted(self.watched, key=lambda w: str(w.rtype)):
            log.debug("watched %s", w)
        for u in sorted(self.unwatched, key=lambda u: u.name):
            log.debug("%s: %s", "NOT COVERED" if u.uncovered else "not watched", u)


def build(watched: Iterable[Resource], preferred: Mapping[str, str], unwatched: Iterable[Unwatched],
          exported: Mapping[Key, int], skipped: Mapping[Key, Counter[str]],
          orphans: Mapping[Key, Counter[str]] | None = None) -> Report:
    """Join what discovery chose with the object counts of the recorder (or of an --explain pass)."""
    rows = [Watched(t, preferred.get(t.group, t.version), exported.get(t.key, 0), Counter(skipped.get(t.key, {})),
                    Counter((orphans or {}).get(t.key, {})))
            for t in watched]
    return Report(rows, list(unwatched))
