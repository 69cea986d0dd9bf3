"""What flows from the observer to the recorder: one event per object change or per finished (re)list."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ResourceType:
    """One listable+watchable API resource at its preferred version."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        """(group, kind): the identity the repo layout uses."""
        return (self.group, self.kind)

    @property
    def url(self) -> str:
        return (f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}") + f"/{self.plural}"

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


@dataclass
class Event:
    """ADDED/MODIFIED/DELETED (obj set) or SYNCED (a full list ended: seen holds every listed path)."""

    type: str
    rtype: ResourceType
    obj: dict[str, Any] | None = None
    received: float = 0.0
    seen: set[str] = field(default_factory=set)
